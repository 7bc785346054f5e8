"""The Upgrade tunnel: after a 101, bytes are pumped both ways untouched.

Only the two transports and a small Tunnel object stay alive: the HTTP parser and request state
are dropped, each transport's protocol is swapped for a one-slot `Side`. Backpressure is
symmetric: when one transport's write buffer is above its high-water mark, the other side stops
reading until it drains.

A close (or EOF) on either side closes the other after its pending bytes are flushed; the access
log line (status 101, bytes sent to the client in $body_bytes_sent) is written then.
proxy_read_timeout/proxy_send_timeout apply as in nginx: traffic either way re-arms them.
"""
from __future__ import annotations

from ngate.observability import error_log
from ngate.proxy import engine


class Side:
    """The protocol on one transport of a tunnel."""
    __slots__ = ("tunnel", "to_upstream")

    def __init__(self, tunnel: "Tunnel", to_upstream: bool) -> None:
        self.tunnel = tunnel
        self.to_upstream = to_upstream

    def connection_made(self, transport) -> None:   # pragma: no cover - swapped in, never made
        pass

    def data_received(self, data: bytes) -> None:
        t = self.tunnel
        t.active = True
        if self.to_upstream:
            t.upstream.write(data)
            t.sent_up += len(data)
        else:
            t.client.write(data)
            t.sent_down += len(data)

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        self.tunnel.close("client" if self.to_upstream else "upstream")

    def pause_writing(self) -> None:
        # this transport's write buffer is full: stop reading from the other one
        t = self.tunnel
        (t.upstream if self.to_upstream else t.client).pause_reading()

    def resume_writing(self) -> None:
        t = self.tunnel
        if not t.closed:
            (t.upstream if self.to_upstream else t.client).resume_reading()


class Tunnel:
    __slots__ = ("client", "upstream", "ctx", "runtime", "sent_up", "sent_down", "timer",
                 "timeout", "closed", "active")

    def __init__(self, ctx, client, upstream) -> None:
        self.client = client          # transports
        self.upstream = upstream
        self.ctx = ctx
        self.runtime = ctx.conn.runtime
        self.sent_up = 0
        self.sent_down = 0
        self.timer = None
        conf = ctx.conf
        self.timeout = max(conf.proxy_read_timeout, conf.proxy_send_timeout)
        self.closed = False
        self.active = False

    def start(self, client_bytes: bytes, upstream_bytes: bytes) -> None:
        self.client.set_protocol(Side(self, True))
        self.upstream.set_protocol(Side(self, False))
        if upstream_bytes:
            self.client.write(upstream_bytes)
            self.sent_down += len(upstream_bytes)
        if client_bytes:
            self.upstream.write(client_bytes)
            self.sent_up += len(client_bytes)
        self.client.resume_reading()
        self.upstream.resume_reading()
        self.runtime.tunnel_opened(self)
        self._arm()

    def _arm(self) -> None:
        self.timer = self.runtime.loop.call_later(self.timeout, self._tick)

    def _tick(self) -> None:
        """Fires every `timeout`: a tunnel with no traffic in a whole period is timed out."""
        self.timer = None
        if self.closed:
            return
        if self.active:
            self.active = False
            self._arm()
            return
        error_log.error("upstream timed out (110: Connection timed out) while proxying upgraded "
                        "connection" + error_log.request_suffix(self.ctx), self.ctx.conn.number)
        self.close("timeout")

    def close(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.client.close()
        self.upstream.close()
        self.runtime.tunnel_closed(self)
        ctx = self.ctx
        ctx.body_bytes_sent = self.sent_down
        ctx.bytes_sent += self.sent_down
        ctx.upstream_bytes_sent += self.sent_up
        engine.log_request(ctx)

    def abort(self) -> None:
        self.client.abort()
        self.upstream.abort()


def start_tunnel(ctx, conn, uconn, upstream_bytes: bytes) -> None:
    """Hand both transports to a Tunnel; drop the HTTP connection state."""
    client_bytes = conn.take_held()
    client_t = conn.transport
    upstream_t = uconn.transport
    conn.runtime.connection_closed(conn)   # it is a tunnel now, counted as such
    conn.parser = None
    conn.current = None
    conn.queue = None
    conn._cancel_timer()
    ctx.req = None
    Tunnel(ctx, client_t, upstream_t).start(client_bytes, upstream_bytes)
