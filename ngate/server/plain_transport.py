"""Plain TCP client connections on the raw socket for their first request, then uvloop's.

uvloop's accept costs, per connection, more than the connection's own request needs: a
TCPTransport whose setup calls setsockopt(TCP_NODELAY), getsockname and getpeername, a
call_soon handle for connection_made and one for connection_lost, uv_close's callback and an
epoll_ctl DEL at the close (bench/PROFILE.md, Session 10 (s10-connsetup) and Session 11
(s11-connsetup)). A connection that asks one request and closes (`Connection: close`, a
WebSocket handshake) pays all of it for one request. Here the worker accepts itself and reads
and writes the socket in Python, as nginx does: accept4, one epoll_ctl ADD to the worker's own
epoll set (Poller), the reads and writes, close (the kernel drops the fd from the set).

A Python transport costs more than uvloop's C one for each read and write, so a connection that
stays (keep-alive) is handed to uvloop once its first request is answered: at its next read,
when its protocol said it was idle (`can_hand_over()`: no request in flight, nothing deferred
or buffered), the bytes read are passed on, then the fd leaves the Poller and
loop.connect_accepted_socket makes uvloop's transport from the socket (an EOF instead closes
the connection here). What the protocol writes or asks meanwhile is kept and replayed on
uvloop's transport once it is made (the `handing` state). An Upgrade tunnel's sides do the
same at their first read (proxy/tunnel.py Side.can_hand_over); an upstream connection
(upstream/connect.py) keeps this transport.

Sockets are the C type (_socket.socket, made from accept's fd), not socket.socket: its Python
__init__, enum conversions and close() cost frames per connection (a socket.socket is made at
a hand-over, which uvloop needs). The accepted socket stays in blocking mode (no FIONBIO
ioctl): every recv and send passes MSG_DONTWAIT; uvloop's uv_tcp_open makes it non-blocking at
the hand-over. TCP_NODELAY (which uvloop sets on every connection, and nginx when a connection
goes keep-alive or tunnels) is set before a connection's second write: its first write never
waits for Nagle (nothing is in flight before it).

PlainTransport states:
  open      registered in the Poller (EPOLLIN while reading, EPOLLOUT while a write is
            buffered); a write the socket does not take whole keeps the rest in `_out`, written
            when the socket is writable; past the high-water mark the protocol's
            pause_writing, at the low one resume_writing. EOF: eof_received(), then close
            unless it returned true.
  handing   (hand-over) out of the Poller, uvloop's transport being made: writes are kept,
            close/abort/pause/resume remembered; _Adopt.connection_made replays them
  adopted   uvloop's transport serves the connection; this one forwards to it (the protocol's
            references were swapped by its transport_adopted())
  closing   close() with bytes buffered: no reads; the socket closes once they are out
            (write_eof: the same, then SHUT_WR, reading on)
  closed    no reads or writes; the socket closes and connection_lost(exc) runs from the loop
            (call_soon: after the turn's callbacks so far, the access log's flush among them)
"""
from __future__ import annotations

import asyncio
import select
import socket

from ngate.observability import error_log
from ngate.server.raw_socket import WRITE_HIGH, WRITE_LOW, Listener, write_limits

_DONTWAIT = socket.MSG_DONTWAIT
_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_ERR = select.EPOLLERR | select.EPOLLHUP
_IN_ERR = _IN | _ERR
_READ = 262144                  # bytes per recv (uvloop's read buffer)
_HIGH = WRITE_HIGH
_LOW = WRITE_LOW
_Blocking = (BlockingIOError, InterruptedError)
_Socket = socket._socket.socket     # the C socket: socket.socket's Python __init__, its enum
_STREAM = int(socket.SOCK_STREAM)   # properties and its close() are frames per connection
_OPEN, _HANDING, _ADOPTED = 0, 1, 2


class Poller:
    """The worker's own epoll set for plain sockets, watched by the loop through its one fd:
    adding a socket is one epoll_ctl (uvloop's add_reader costs five syscalls and three more to
    remove), closing the socket removes it."""
    __slots__ = ("ep", "handlers", "loop", "_poll")

    def __init__(self, loop) -> None:
        self.loop = loop
        self.ep = select.epoll()
        self._poll = self.ep.poll
        self.handlers: dict = {}        # fd -> PlainTransport or upstream/connect.py PlainConnect
        loop.add_reader(self.ep.fileno(), self._events)

    def _events(self) -> None:
        # an fd closed in this batch has no handler left for its later events; new sockets
        # are registered from call_soon callbacks only (PlainServer._start, PlainConnect),
        # never while a batch runs, so a reused fd never takes an old socket's event
        handlers = self.handlers
        for fd, ev in self._poll(0, 256):
            t = handlers.get(fd)
            if t is not None:
                t._event(ev)

    def add(self, fd: int, t, events: int = _IN) -> None:
        self.ep.register(fd, events)
        self.handlers[fd] = t

    def modify(self, fd: int, events: int) -> None:
        self.ep.modify(fd, events)

    def remove(self, fd: int) -> None:
        """Stop watching `fd` (still open)."""
        if self.handlers.pop(fd, None) is not None:
            try:
                self.ep.unregister(fd)
            except OSError:
                pass


class PlainTransport(asyncio.Transport):
    """One plain client connection on its raw socket (module docstring)."""
    __slots__ = ("_loop", "_poller", "_sock", "_fd", "_protocol", "_peer", "_state", "_events",
                 "_reading", "_closing", "_out", "_size", "_paused", "_high", "_low", "_writes",
                 "_eof", "_uv", "_abort", "_offer")

    def __init__(self, loop, poller: Poller, sock, peer) -> None:
        self._loop = loop
        self._poller = poller
        self._sock = sock
        self._fd = sock.fileno()
        self._peer = peer
        self._protocol = None
        self._state = _OPEN
        self._events = None             # what the Poller watches (None: not in it)
        self._reading = True
        self._closing = False           # close(), abort() or an error: no more reads or writes
        self._eof = 0                   # write_eof: 1 asked (SHUT_WR once `_out` is out), 2 done
        self._out = None                # bytearray of bytes the socket has not taken
        self._size = 0
        self._paused = False            # the protocol's writing is paused
        self._high = _HIGH
        self._low = _LOW
        self._writes = 0                # 0, 1, 2 = two or more (TCP_NODELAY set)
        self._uv = None                 # uvloop's transport once adopted
        self._abort = False             # abort() while handing over
        self._offer = False             # the protocol may take uvloop's transport

    def start(self, protocol) -> None:
        """Hand the connection to `protocol` and start reading."""
        self._protocol = protocol
        self._offer = hasattr(protocol, "can_hand_over")
        self._events = _IN
        self._poller.add(self._fd, self, _IN)
        protocol.connection_made(self)

    def start_connected(self, protocol) -> None:
        """The same for a socket connected by upstream/connect.py PlainConnect, which watched
        it for writability: reading from now on (an upstream connection stays on this
        transport: upstream/connect.py says why)."""
        self._protocol = protocol
        self._offer = False
        self._poller.handlers[self._fd] = self
        self._events = _OUT
        self._watch(_IN)
        protocol.connection_made(self)

    # ------------------------------------------------------------ events

    def _event(self, ev: int) -> None:
        if ev & _OUT or ev & _ERR and self._out is not None:
            self._write_ready()
            if self._sock is None:
                return
        if not self._reading:
            if ev & _ERR and self._out is None:
                # hung up while not reading: out of the set (no spinning on it); a write or
                # resume_reading finds out
                self._events = None
                self._poller.remove(self._fd)
            return
        if not ev & _IN_ERR:            # a writability event alone: no EAGAIN read
            return
        # the read, in this frame (the usual event: one frame less per read)
        try:
            data = self._sock.recv(_READ, _DONTWAIT)
        except _Blocking:
            return
        except OSError as exc:
            return self._fatal(exc)
        if not data:
            return self._eof_received()
        # after a response, bytes for an idle protocol (a next request): once they are
        # passed on, the connection goes to uvloop's transport (an EOF closes it here, without
        # asking: a WebSocket handshake's client closing after the 101 is such a read)
        idle = self._writes and self._offer and self._out is None and self._eof == 0 \
            and self._protocol.can_hand_over()
        try:
            self._protocol.data_received(data)
        except Exception as exc:        # as uvloop's transports: reported, connection closed
            self._loop.call_exception_handler({
                "message": "Fatal error: protocol.data_received() call failed.",
                "exception": exc, "transport": self, "protocol": self._protocol})
            return self.abort()
        if idle:
            self.hand_over()

    def _eof_received(self) -> None:
        self._reading = False
        if self._protocol.eof_received():       # kept open: not read any more
            self._watch(self._events & ~_IN)
        else:
            self.close()

    def _watch(self, events: int) -> None:
        """Make the Poller watch `events` on the socket."""
        if events == self._events:
            return
        poller = self._poller
        try:
            if self._events is None:
                poller.add(self._fd, self, events)
            else:
                poller.modify(self._fd, events)
        except OSError:
            pass
        self._events = events

    # ------------------------------------------------------------ reading

    def pause_reading(self) -> None:
        if self._state is not _OPEN:
            return self._forward("pause_reading")
        if self._reading:
            self._stop_reading()

    def resume_reading(self) -> None:
        if self._state is not _OPEN:
            return self._forward("resume_reading")
        if not self._reading and not self._closing and self._sock is not None:
            self._reading = True
            self._watch((self._events or 0) | _IN)

    def is_reading(self) -> bool:
        if self._state is _ADOPTED:
            return self._uv.is_reading()
        return self._reading

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            if self._sock is not None and self._state is _OPEN and self._events is not None:
                self._watch(self._events & ~_IN)

    # ------------------------------------------------------------ writing

    def write(self, data) -> None:
        if self._state is _ADOPTED:
            return self._uv.write(data)
        if self._closing or self._eof or not data:
            return
        out = self._out
        if out is not None:
            out += data
            self._size = len(out)
            if self._size > self._high and not self._paused and self._state is _OPEN:
                self._pause_protocol()  # (while handing over: uvloop's flow control, once
            return                      # it has the bytes)
        if self._state is _HANDING:     # kept for uvloop's transport
            self._out = bytearray(data)
            self._size = len(data)
            return
        sock = self._sock
        writes = self._writes
        if writes < 2:
            if writes:
                try:                    # a second write: no Nagle wait behind the first
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            self._writes = writes + 1
        try:
            n = sock.send(data, _DONTWAIT)
        except _Blocking:
            n = 0
        except OSError as exc:
            return self._fatal(exc)
        if n == len(data):
            return
        self._out = bytearray(memoryview(data)[n:])
        self._size = len(self._out)
        self._watch((self._events or 0) | _OUT)
        if self._size > self._high and not self._paused:
            self._pause_protocol()

    def writelines(self, chunks) -> None:
        self.write(b"".join(chunks))

    def _write_ready(self) -> None:
        out = self._out
        if out is None or self._sock is None:
            return
        try:
            n = self._sock.send(out, _DONTWAIT)
        except _Blocking:
            return
        except OSError as exc:
            return self._fatal(exc)
        del out[:n]
        self._size = len(out)
        if out:
            if self._paused and self._size <= self._low:
                self._resume_protocol()
            return
        self._out = None
        self._watch(self._events & ~_OUT)
        if self._closing:
            return self._finish(None)
        if self._eof == 1:
            self._shut()
        if self._paused:
            self._resume_protocol()

    def _pause_protocol(self) -> None:
        self._paused = True
        try:
            self._protocol.pause_writing()
        except Exception as exc:
            self._loop.call_exception_handler({
                "message": "protocol.pause_writing() failed", "exception": exc,
                "transport": self, "protocol": self._protocol})

    def _resume_protocol(self) -> None:
        self._paused = False
        try:
            self._protocol.resume_writing()
        except Exception as exc:
            self._loop.call_exception_handler({
                "message": "protocol.resume_writing() failed", "exception": exc,
                "transport": self, "protocol": self._protocol})

    def get_write_buffer_size(self) -> int:
        if self._state is _ADOPTED:
            return self._uv.get_write_buffer_size()
        return self._size

    def get_write_buffer_limits(self) -> tuple:
        if self._state is _ADOPTED:
            return self._uv.get_write_buffer_limits()
        return self._low, self._high

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        if self._state is _ADOPTED:
            return self._uv.set_write_buffer_limits(high, low)
        self._high, self._low = high, low = write_limits(high, low)
        if self._size > high and not self._paused and self._protocol is not None:
            self._pause_protocol()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Half-close (lingering close): SHUT_WR once the buffered bytes are out; reading goes
        on (as uvloop's: the transport is not closing)."""
        if self._state is _ADOPTED:
            return self._uv.write_eof()
        if self._closing or self._eof:
            return
        self._eof = 1
        if self._out is None and self._state is _OPEN:
            self._shut()

    def _shut(self) -> None:
        self._eof = 2
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # ------------------------------------------------------------ closing

    def is_closing(self) -> bool:
        if self._state is _ADOPTED:
            return self._uv.is_closing()
        return self._closing

    def close(self) -> None:
        if self._state is not _OPEN:
            return self._forward("close")
        if self._closing:
            return
        self._closing = True
        self._reading = False
        if self._out is None:
            self._finish(None)
        else:                           # closed once the buffered bytes are out
            self._watch(_OUT)

    def abort(self) -> None:
        if self._state is not _OPEN:
            return self._forward("abort")
        self._closing = True
        self._finish(None)

    def _fatal(self, exc) -> None:
        if not isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            error_log.debug(f"transport error: {exc}")
        self._closing = True
        self._finish(exc)

    def _finish(self, exc) -> None:
        sock = self._sock
        if sock is None:
            return
        self._sock = None
        self._reading = False
        self._out = None
        self._size = 0
        if self._events is not None:
            self._events = None
            self._poller.handlers.pop(self._fd, None)
        # the socket closes from the loop, after this turn's callbacks so far (as uvloop's
        # uv_close): what the close ends is done first, the access log line written (its
        # flush is already queued) before the client sees the connection end, as nginx writes
        # it before closing
        self._loop.call_soon(self._lost, exc, sock)

    def _lost(self, exc, sock) -> None:
        sock.close()                    # (the kernel drops it from the epoll set)
        protocol = self._protocol
        self._protocol = None
        if protocol is not None:
            protocol.connection_lost(exc)

    # ------------------------------------------------------------ the hand-over to uvloop

    def hand_over(self) -> None:
        """The connection goes on in uvloop's transport (module docstring); nothing when it is
        closing, has bytes buffered or is handed over already."""
        if self._state is not _OPEN or self._closing or self._out is not None or self._eof:
            return
        self._state = _HANDING
        self._events = None
        self._poller.remove(self._fd)
        loop = self._loop
        c = self._sock              # uvloop wants socket.socket's class (it detaches it at the
        sock = self._sock = socket.socket(c.family, c.type, c.proto, c.detach())   # close)
        task = loop.create_task(loop.connect_accepted_socket(self._adopt, sock))
        task.add_done_callback(self._hand_over_done)

    def _adopt(self) -> "_Adopt":
        return _Adopt(self)

    def _hand_over_done(self, task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        if self._state is _HANDING:     # uvloop could not take the socket: the connection ends
            self._state = _OPEN
            self._fatal(task.exception())

    def _adopted(self, uv) -> None:
        """uvloop's transport `uv` is made (before it reads): the protocol moves to it."""
        self._uv = uv
        self._state = _ADOPTED
        self._sock = None               # uvloop's now
        protocol = self._protocol
        self._protocol = None
        uv.set_protocol(protocol)
        if self._high != _HIGH or self._low != _LOW:
            uv.set_write_buffer_limits(self._high, self._low)
        adopted = getattr(protocol, "transport_adopted", None)
        if adopted is not None:
            adopted(self, uv)
        out = self._out
        self._out = None
        self._size = 0
        if out:
            uv.write(bytes(out))
        if self._abort:
            uv.abort()
        elif self._closing:
            uv.close()
        elif self._eof:
            uv.write_eof()
        if not self._reading and not self._closing:
            # uvloop starts reading after connection_made: paused again after it
            self._loop.call_soon(uv.pause_reading)

    def _forward(self, name: str) -> None:
        """pause_reading, resume_reading, close, abort while handing over or adopted."""
        if self._state is _ADOPTED:
            return getattr(self._uv, name)()
        if name == "pause_reading":
            self._reading = False
        elif name == "resume_reading":
            self._reading = not self._closing
        elif name == "abort":
            self._closing = self._abort = True
            self._out = None
            self._size = 0
        else:                           # close
            self._closing = True

    # ------------------------------------------------------------ the rest of the interface

    def get_extra_info(self, name, default=None):
        if self._state is _ADOPTED:
            return self._uv.get_extra_info(name, default)
        if name == "peername":
            return self._peer
        if name == "sockname":
            sock = self._sock
            return sock.getsockname() if sock is not None else default
        if name == "socket":
            return self._sock
        return default

    def set_protocol(self, protocol) -> None:
        if self._state is _ADOPTED:
            return self._uv.set_protocol(protocol)
        self._protocol = protocol
        self._offer = hasattr(protocol, "can_hand_over")

    def get_protocol(self):
        if self._state is _ADOPTED:
            return self._uv.get_protocol()
        return self._protocol


class _Adopt(asyncio.Protocol):
    """The protocol uvloop's transport is made with at a hand-over: its connection_made moves
    the connection's protocol to it (PlainTransport._adopted); nothing else ever reaches it."""
    __slots__ = ("plain",)

    def __init__(self, plain: PlainTransport) -> None:
        self.plain = plain

    def connection_made(self, transport) -> None:
        self.plain._adopted(transport)


class PlainServer(Listener):
    """The accept loop of one plain TCP listening socket (raw_socket.py Listener: the accept
    error's line and pause, close()): each connection gets a PlainTransport and `factory()`'s
    protocol."""
    __slots__ = ("_factory", "_poller", "_family")

    def __init__(self, loop, sock, backlog: int, factory, poller: Poller) -> None:
        self._factory = factory
        self._poller = poller
        self._family = int(sock.family)
        self._listen(loop, sock, backlog)

    def _accept(self) -> None:
        """Accept what is queued (up to BATCH); the connections start from the loop, after
        the other events of this turn (as uvloop's connection_made): a connection whose EOF
        arrived meanwhile is gone before the new ones count against worker_connections."""
        accept = self._sock._accept
        batch = []
        for _ in range(self.BATCH):
            try:
                batch.append(accept())
            except _Blocking:
                break
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                self._accept_failed(exc)
                break
        if batch:
            self._loop.call_soon(self._start, batch)

    def _start(self, batch: list) -> None:
        loop = self._loop
        poller = self._poller
        factory = self._factory
        family = self._family
        for fd, peer in batch:
            t = PlainTransport(loop, poller, _Socket(family, _STREAM, 0, fd), peer)
            try:
                t.start(factory())
            except Exception as exc:
                loop.call_exception_handler({"message": "accepting a connection failed",
                                             "exception": exc})
                t.abort()
