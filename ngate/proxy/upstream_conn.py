"""A connection to one upstream peer: serves one exchange at a time, then may idle in the
keepalive pool. Its llhttp response parser lives as long as the connection."""
from __future__ import annotations

import asyncio
import time

from ngate.config.model import UpstreamServer
from ngate.proxy.exchange_state import PASSTHROUGH, TUNNEL
from ngate.upstream.tls import save_session


class UpstreamConnection(asyncio.Protocol):
    """A connection to one peer; serves one exchange at a time, then may idle in the pool."""
    __slots__ = ("transport", "exchange", "closed", "peer", "requests", "born", "pool", "group_id",
                 "idle_timer", "write_paused", "deadline", "parser", "leftover",
                 "head_bytes", "head_buf", "tail", "idle_stack", "idle_order")

    def __init__(self, peer: UpstreamServer) -> None:
        self.transport = None
        self.exchange = None
        self.closed = False
        self.peer = peer
        self.requests = 0
        self.born = time.monotonic()    # upstream keepalive_time
        self.pool = None
        self.group_id = 0
        # the pool's idle stack for its key and its group's LRU order (upstream/pool.py put: a
        # connection is always pooled under the same key; neither object is ever replaced)
        self.idle_stack = self.idle_order = None
        self.idle_timer = None
        self.write_paused = False
        self.parser = None      # one llhttp response parser for the connection's life
        self.leftover = False   # bytes came after the end of a response: never reused
        # the current response's head as proxy/wire_http1.py reads it: bytes so far (against
        # proxy_buffer_size), those bytes (a 1xx passes the rest raw), the first bytes until
        # "HTTP/" is seen (None: checked; else HTTP/0.9)
        self.head_bytes = 0
        self.head_buf = b""
        self.tail = b""

    @property
    def closing(self) -> bool:
        """server/flow.py's name for a connection not to be read again."""
        return self.closed

    def connection_made(self, transport) -> None:
        self.transport = transport

    def transport_adopted(self, old, new) -> None:
        """server/plain_transport.py's hand-over (upstream/pool.py hand_over): uvloop's
        transport `new` replaces `old`."""
        if self.transport is old:
            self.transport = new

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is None:
            self.close()    # an idle connection must not talk
        elif ex.throttle is not None or ex.state is PASSTHROUGH:
            ex.upstream_data(data)
        else:
            # UpstreamExchange.upstream_data's usual case, written out (hot path)
            ex.got_bytes = True
            ex.attempt.bytes_received += len(data)
            if ex.state is not TUNNEL:
                ex.wire.data(ex, data)
            # re-armed by progress after the read is handled: the same deadline as before it
            # (the loop's time is the turn's; an arm() meanwhile set `timeout`), and none for
            # the usual response that ended in this read (its finish cleared the timer)
            t = ex.timer
            if t is not None:
                (ex if t is True else t).deadline = ex.loop.time() + ex.timeout

    def eof_received(self):
        return False            # close; connection_lost tells the exchange

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._cancel_idle()
        ex = self.exchange
        self.exchange = None
        if ex is not None:
            ex.upstream_lost(exc)
        elif self.pool is not None:
            self.pool.discard(self.group_id, self)
        self.parser = None      # the parser holds our bound methods: break the cycle

    def pause_writing(self) -> None:
        self.write_paused = True
        ex = self.exchange
        if ex is not None:
            ex.upstream_write_paused()

    def resume_writing(self) -> None:
        self.write_paused = False
        ex = self.exchange
        if ex is not None:
            ex.upstream_write_resumed()

    # httptools callbacks: the parser lives as long as the connection; the exchange changes
    # (an exchange that gave the connection up mid-response leaves `exchange` None: the rest of
    # that read is dropped and the connection is closed)
    def on_message_begin(self) -> None:
        if self.exchange is None:
            # bytes after the response its exchange finished with, in the same read (an
            # upstream that sent more than its Content-Length, a 304 with a body): the
            # exchange logs nginx's warning; the connection is never reused
            self.leftover = True
            self.close()

    def on_status(self, reason: bytes) -> None:
        ex = self.exchange
        if ex is not None:
            ex.reason = reason if ex.reason is None else ex.reason + reason

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.exchange
        if ex is not None:
            ex.resp_headers.append((name, value))

    def on_headers_complete(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.wire.headers_complete(ex)    # proxy/wire_http1.py: 1xx, proxy_buffer_size

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is not None:
            ex.response_body(body)

    def on_message_complete(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.response_end()

    def expired(self) -> None:
        """keepalive_timeout of an idle pooled connection passed (upstream/pool.py keeps a
        connection watched from its first time in the pool: in use, its deadline is never),
        or the timer of its exchange that it carries (ExchangeBase's `timer` is this
        connection: proxy/http_proxy.py start_pooled)."""
        self.idle_timer = None
        if self.pool is not None:
            self.close()
            return
        ex = self.exchange
        if ex is not None and ex.timer is self:
            ex.expired()

    def handed_off(self) -> None:
        """Never idle again (its transport goes to the tunnel): no longer watched."""
        self._cancel_idle()

    def _cancel_idle(self) -> None:
        d = self.idle_timer
        if d is not None:
            self.idle_timer = None
            d.unwatch(self)
            ex = self.exchange
            if ex is not None and ex.timer is self:
                # no longer watched: the exchange's timer goes back to the exchange, with
                # its deadline (ExchangeBase's `timer`)
                ex.timer = True
                ex.deadline = self.deadline
                d.watch(ex)

    def close(self) -> None:
        self.closed = True
        self._cancel_idle()
        t = self.transport
        if t is not None:
            t.close()


class Connect:
    """Runs one connect coroutine (UpstreamExchange._open) without a Task: each future it awaits
    resumes it from that future's done callback.

    A Task per upstream connection (created, named, registered among all tasks, entered and left
    at each step) cost more Python than the connect's own steps. As a Task's, the first step runs
    from the loop (call_soon), never inside the caller. cancel() does what Task.cancel() does, at
    once: the awaited future is cancelled and the coroutine closed (uvloop and open_tls close
    their socket on the way out)."""
    __slots__ = ("loop", "coro", "awaited")

    def __init__(self, loop, coro) -> None:
        self.loop = loop
        self.coro = coro
        self.awaited = None
        loop.call_soon(self.step)

    def step(self, _future=None) -> None:
        coro = self.coro
        if coro is None:
            return                  # cancelled: the awaited future's callback still comes
        try:
            awaited = coro.send(None)
        except StopIteration:
            self.coro = self.awaited = None
            return
        except BaseException:
            self.coro = self.awaited = None
            raise                   # a bug: the loop's exception handler reports it
        self.awaited = awaited
        if awaited is None:         # a bare yield (asyncio.sleep(0)): run again soon
            self.loop.call_soon(self.step)
        else:
            awaited.add_done_callback(self.step)

    def cancel(self) -> None:
        coro = self.coro
        if coro is None:
            return
        self.coro = None
        awaited = self.awaited
        self.awaited = None
        if awaited is not None:
            awaited.cancel()
        if not coro.cr_running:     # running: past its last await (attaching), it ends itself
            coro.close()


class TlsUpstreamConnection(UpstreamConnection):
    """A TLS connection to a peer: after its first response it saves its session for the next
    connection to that peer (proxy_ssl_session_reuse; None: off)."""
    __slots__ = ("session_key",)

    def __init__(self, peer: UpstreamServer, session_key=None) -> None:
        super().__init__(peer)
        self.session_key = session_key

    def on_message_complete(self) -> None:
        key = self.session_key
        if key is not None:
            self.session_key = None
            save_session(key, self.transport)
        super().on_message_complete()
