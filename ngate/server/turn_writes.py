"""Client response bytes written at the end of the event loop's turn.

Loopback TCP delivers a write in the writer's context and wakes the reader: a client that went
back to sleep between two of the proxy's responses (each request's own Python comes in between)
is woken, at a cost, for every response. Written together after the turn's callbacks (call_soon:
before the loop polls again), the responses of one turn find the clients awake
(bench/PROFILE.md, Session 9 (s9-clientwrite); upstream/pool.py HeadWrites does the same for
request heads to upstreams).

DeferredTransport stands between an HTTP/1.x client connection (server/connection.py) and its
transport, so every path to the socket goes through it and the order of the bytes is kept:
  write(data)   small immutable bytes (the connection's deferred ones included, at most
                DEFER_MAX) are kept and go out at the end of the turn, one write per connection
                per turn; anything else (a large or mutable chunk: static/sender.py's reused
                buffer, a long body) first writes what is deferred, then itself at once.
  close(), write_eof()   write what is deferred first (a close after a response, lingering close)
  detach()      the same, and hands over the transport (proxy/tunnel.py: a 101, then the tunnel)
  abort()       drops what is deferred (a reset sends nothing more)
  get_write_buffer_size()   counts the deferred bytes (send_timeout, static/sender.py)
On a quiet loop (the last turn that wrote responses wrote one) the first response of a turn
goes at once: TurnWrites says why. Backpressure is unchanged: the transport calls
pause_writing/resume_writing when the bytes reach it, at the latest at the end of the turn, and
a connection defers at most DEFER_MAX bytes. A connection closed meanwhile (the client reset
it) is skipped.

States of a DeferredTransport: idle (out is None) -> holding (out: bytes, registered in its
TurnWrites) -> idle again at the turn's end, or at once by a write it cannot hold, close,
write_eof, detach or abort.
"""
from __future__ import annotations

from .turn_batch import TurnBatch

DEFER_MAX = 16 * 1024       # deferred bytes per connection and turn; more go out at once


class TurnClock:
    """The wall-clock time of the loop's turn, as nginx's cached time (ngx_time_update, once
    per event loop iteration: a clock step shows at the next one). static/handler.py
    plain_file reads `wall` for its Date line, server/request_head.py `mono` (monotonic) for a
    request's start (nginx's r->start_msec: the cached time too); while one is None the reader
    calls the clock and keeps the result only when `turn` (the worker's TurnWrites, the last one
    made) has its turn_end scheduled, which clears both: a time never outlives the turn it was
    read in (a turn whose responses were not deferred keeps nothing)."""
    __slots__ = ("wall", "mono", "turn")

    def __init__(self) -> None:
        self.wall = None
        self.mono = None
        self.turn = None


CLOCK = TurnClock()


class TurnWrites(TurnBatch):
    """The worker's connections holding deferred bytes in this turn, flushed at its end; on a
    quiet loop the first response of a turn goes at once (server/turn_batch.py: the rule,
    shared with upstream/pool.py HeadWrites). The turn's end also clears CLOCK's time."""
    __slots__ = ("end",)

    def __init__(self, loop) -> None:
        super().__init__(loop)
        # turn_end bound once (the worker's one TurnWrites lives as long as the worker): no
        # bound method made per scheduling turn
        self.end = self.turn_end
        CLOCK.wall = CLOCK.mono = None
        CLOCK.turn = self

    def turn_end(self) -> None:
        CLOCK.wall = CLOCK.mono = None
        TurnBatch.turn_end(self)

    def defer(self, w, data: bytes) -> None:
        """`data` (small bytes) for `w`, which holds none: deferred to the turn's end, or
        written at once as a quiet loop's first (server/sending.py Sending.write has a copy)."""
        self.count += 1
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.end)
            if not self.busy:
                return w.transport.write(data)
        if data:
            w.out = data
            self.pending.append(w)

    def flush(self) -> None:
        pending = self.pending
        if not pending:
            return
        self.pending = []
        for w in pending:
            out = w.out                 # DeferredTransport.flush, written out
            if out is None:
                continue                # written already (a close, a large write, ...)
            w.out = None
            t = w.transport
            try:
                if not t.is_closing():
                    t.write(out)
            except RuntimeError:
                pass    # uvloop: the transport is closed; connection_lost is on its way
            except Exception as exc:    # a protocol's pause_writing failed: that one only
                self.loop.call_exception_handler({
                    "message": "client write failed at the end of the turn",
                    "exception": exc})
                t.abort()


class DeferredTransport:
    """A client connection's transport, its small writes deferred to the end of the loop's
    turn (module docstring)."""
    __slots__ = ("transport", "out", "turn")

    def __init__(self, transport, turn: TurnWrites) -> None:
        self.transport = transport
        self.out = None             # bytes deferred in this turn (registered in `turn`)
        self.turn = turn

    def write(self, data) -> None:
        # (server/sending.py Sending.write has a copy of the first case)
        out = self.out
        if data.__class__ is bytes:
            if out is None:
                if len(data) <= DEFER_MAX:
                    return self.turn.defer(self, data)
            elif len(out) + len(data) <= DEFER_MAX:
                self.out = out + data
                return
        if out is not None:
            self.out = None
            self.transport.write(out)
        self.transport.write(data)

    def writelines(self, chunks) -> None:
        for c in chunks:
            self.write(c)

    def flush(self) -> None:
        """Write what is deferred now (unless the connection was closed meanwhile; TurnWrites.flush
        has a copy)."""
        out = self.out
        if out is not None:
            self.out = None
            t = self.transport
            if not t.is_closing():
                try:
                    t.write(out)
                except RuntimeError:
                    pass    # uvloop: the transport is closed; connection_lost is on its way

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def abort(self) -> None:
        self.out = None
        self.transport.abort()

    def detach(self):
        """The transport itself, after what is deferred (the connection becomes a tunnel)."""
        self.flush()
        return self.transport

    def get_write_buffer_size(self) -> int:
        out = self.out
        size = self.transport.get_write_buffer_size()
        return size + len(out) if out is not None else size

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def is_reading(self) -> bool:
        return self.transport.is_reading()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def get_extra_info(self, name, default=None):
        return self.transport.get_extra_info(name, default)

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        self.transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self):
        return self.transport.get_write_buffer_limits()

    def set_protocol(self, protocol) -> None:
        self.transport.set_protocol(protocol)

    def get_protocol(self):
        return self.transport.get_protocol()

    # (no __getattr__: it would slow every attribute of the class, `out` and `turn` included)
