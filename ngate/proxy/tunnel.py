"""The Upgrade tunnel: after a 101, bytes are pumped both ways untouched.

Only the two transports and a small Tunnel object stay alive: the HTTP parser, the request state
and the RequestContext are dropped (an access log line is kept pre-rendered: everything but the
variables that change until the close, observability/access_log.py's TunnelEnd), each
transport's protocol is swapped for a `Side`. Backpressure is symmetric: when
one transport's write buffer is above its high-water mark, the other side stops reading until it
drains.

States of a tunnel:
  open      bytes pumped both ways; proxy_read_timeout applies as in nginx: traffic either
            way re-arms it, and a whole period without any closes both sides (TCP only, no
            close frame, like nginx). Watched by the runtime's coarse Deadlines (one periodic
            tick for all), not a timer per tunnel
  pinging   (websocket_ping) a side silent for a whole interval got ngate's ping; its pong is
            consumed. Silent until websocket_pong_timeout: that side is dead, it is cut and the
            live side gets a close frame 1001. The rounds stay one interval apart whatever the
            pong timeout (a timeout longer than the interval must not let proxy_read_timeout
            see a silent period between two rounds)
  closed    a close (or EOF) on either side closes the other after its pending bytes are
            flushed; the access log line (status 101, bytes sent to the client in
            $body_bytes_sent) is written then. On shutdown both ends get a close frame 1001.

When the client asked for `Upgrade: websocket`, each Side follows frame boundaries
(ngate/websocket/frames.py) so that ngate's own frames only ever go between two frames; a frame
cannot be injected into a direction that is mid-frame (that side then is cut without one).
Any other Upgrade protocol is pumped opaquely.
"""
from __future__ import annotations

from ngate.observability import error_log, metrics
from ngate.observability.access_log import TunnelEnd
from ngate.server import flow
from ngate.server.clock import TICK
from ngate.websocket.frames import FrameScanner, close_frame, ping_frame

_INFO = error_log.LEVELS.index("info")     # the level of every line a tunnel logs


class Side(FrameScanner):
    """The protocol on one transport of a WebSocket tunnel: reads it, writes to `peer`."""
    __slots__ = ("tunnel", "to_upstream", "peer", "heard", "ping_sent")

    def __init__(self, tunnel: "Tunnel", transport_peer, to_upstream: bool) -> None:
        self.remaining = 0              # FrameScanner.__init__'s fields, set here (a call less
        self.partial = b""              # per side: keep the two in step)
        self.capture = None
        self.own_pongs = 0
        self.tunnel = tunnel
        self.peer = transport_peer      # the transport this side's bytes are written to
        self.to_upstream = to_upstream  # this side reads the client and writes upstream
        self.heard = False              # bytes arrived since the last ping round
        self.ping_sent = 0.0            # when ngate's unanswered ping went to this side (0: none)

    def connection_made(self, transport) -> None:   # pragma: no cover - swapped in, never made
        pass

    def data_received(self, data: bytes) -> None:
        t = self.tunnel
        if t.closed:
            return
        t.active = True
        self.heard = True
        data = self.scan(data)
        if data:
            self._forward(t, data)

    def _forward(self, t: "Tunnel", data: bytes) -> None:
        try:
            self.peer.write(data)
        except RuntimeError:
            return      # uvloop: the peer's transport is closed; its connection_lost is on its way
        if self.to_upstream:
            t.sent_up += len(data)
        else:
            t.sent_down += len(data)

    def inject(self, frame: bytes) -> bool:
        """Write ngate's own frame into this side's direction, only between two frames."""
        if not self.at_boundary:
            return False
        self._forward(self.tunnel, frame)
        return True

    def eof_received(self):
        return False

    def can_hand_over(self) -> bool:
        """server/plain_transport.py: a tunnel's transport made on the raw socket (a new client
        connection, a plain upstream connect) goes to uvloop's transport at its first read:
        a tunnel that carries messages costs less there (bench/PROFILE.md, Session 11
        (s11-connsetup))."""
        return not self.tunnel.closed

    def transport_adopted(self, old, new) -> None:
        """The hand-over's swap: `new` (uvloop's) replaces `old` wherever the tunnel holds it.
        A tunnel that closed while uvloop took the socket holds nothing any more (close() let
        go of its sides and transports; the handed-over transport closes `new` itself)."""
        t = self.tunnel
        if t.closed:
            return
        if t.client is old:
            t.client = new
        if t.upstream is old:
            t.upstream = new
        other = t.other(self)
        if other.peer is old:
            other.peer = new

    def connection_lost(self, exc) -> None:
        t = self.tunnel
        if not t.closed:    # (the second side's loss, after close() closed both: nothing)
            t.close("client" if self.to_upstream else "upstream")

    def pause_writing(self) -> None:
        # this side's own transport has a full write buffer: stop reading from the other one
        flow.pause_transport(self.peer)

    def resume_writing(self) -> None:
        flow.resume_transport(self.peer, self.tunnel.closed)


class RawSide(Side):
    """A side of a non-WebSocket Upgrade tunnel: opaque bytes, no frame scanning."""
    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        t = self.tunnel
        if t.closed:
            return
        t.active = True
        self.heard = True
        self._forward(t, data)

    def inject(self, frame: bytes) -> bool:
        return False


class Tunnel:
    """Both sides' shared state. The access log lines to write at close are `log` (a TunnelEnd,
    None without access log); errors name the request by `facts` (error_log.request_facts,
    rendered only when an error is logged: `suffix`; None when no error log takes info)."""
    __slots__ = ("client", "upstream", "from_client", "from_upstream", "log", "runtime", "conf",
                 "number", "facts", "sent_up", "sent_down", "deadline", "timeout", "closed",
                 "active", "ping_timer", "ping_due", "location", "started", "limits")
    protocol = "http/1.1"       # the client side's (metrics label); "h2": ngate/http2/websocket.py

    def __init__(self, ctx, client, upstream, websocket: bool) -> None:
        self.client = client          # transports
        self.upstream = upstream
        cls = Side if websocket else RawSide
        self.from_client = cls(self, upstream, True)
        self.from_upstream = cls(self, client, False)
        conn = ctx.conn
        self.runtime = runtime = conn.runtime
        writers = runtime.access_log_writers(ctx)
        self.log = TunnelEnd.freeze(writers, ctx) if writers else None
        self.conf = conf = ctx.conf
        self.number = conn.number
        # the tunnel's own error lines are info ones: no facts kept when no log takes info
        # (every error_log's level is known before the worker starts: error_log.open_sinks)
        self.facts = error_log.request_facts(ctx) if error_log.LOG.max_rank >= _INFO else None
        self.sent_up = 0
        self.sent_down = 0
        self.timeout = conf.proxy.read_timeout    # nginx: an idle tunnel waits on a read
        self.closed = False
        self.active = False
        self.ping_timer = None        # (ping_due: set by start() under websocket_ping)
        self.location = ctx.loc.pattern if ctx.loc is not None else ""
        # (started, deadline: set by start())
        self.limits = ctx.limits      # limit_conn slots are held while the tunnel is open

    @property
    def suffix(self) -> str:
        """nginx's `, client: ..., request: ...` context of the tunnel's error lines."""
        facts = self.facts
        return error_log.suffix_of(facts) if facts is not None else ""

    def other(self, side: Side) -> Side:
        return self.from_upstream if side is self.from_client else self.from_client

    def start(self, client_bytes: bytes, upstream_bytes: bytes) -> None:
        # the loop's time (CLOCK_MONOTONIC, as time.monotonic), read once: the start, the first
        # proxy_read_timeout deadline (first: the held bytes below may close the tunnel)
        self.started = now = self.runtime.loop.time()
        self.deadline = now + self.timeout
        self.client.set_protocol(self.from_client)
        self.upstream.set_protocol(self.from_upstream)
        if upstream_bytes:
            self.from_upstream.data_received(upstream_bytes)
        if client_bytes:
            self.from_client.data_received(client_bytes)
        self.active = False
        # reading may have been paused (bytes held past the Upgrade request, backpressure):
        # flow.resume_transport, written out
        if self.client is not None:
            self.client.resume_reading()
            self.upstream.resume_reading()
        runtime = self.runtime
        runtime.tunnel_opened(self)     # (the metrics read the runtime's open tunnels)
        deadlines = runtime.deadlines
        if deadlines.handle is None:
            deadlines.watch(self)
        else:                           # Deadlines.watch, written out (its tick is running)
            deadlines.watched.add(self)
        ping = self.conf.websocket.ping
        if ping and type(self.from_client) is Side:
            self._arm_ping(ping)

    # ------------------------------------------------------------ proxy_read_timeout

    def _arm(self) -> None:
        deadlines = self.runtime.deadlines
        self.deadline = deadlines.loop.time() + self.timeout
        deadlines.watch(self)

    def expired(self) -> None:
        """Every `timeout` (server/clock.py's coarse deadlines): a tunnel with no traffic in a
        whole period is timed out."""
        if self.closed:
            return
        if self.active:
            self.active = False
            self._arm()
            return
        # ngx_connection_error on the client connection (log_error NGX_ERROR_INFO): info
        error_log.info("upstream timed out (110: Connection timed out) while proxying upgraded "
                        "connection" + self.suffix, self.number)
        self.close("timeout")

    # ------------------------------------------------------------ websocket_ping

    def _arm_ping(self, delay: float) -> None:
        loop = self.runtime.loop
        self.ping_due = loop.time() + delay
        self.ping_timer = loop.call_later(delay, self._ping_tick)

    def _ping_tick(self) -> None:
        """Every interval: ping the sides that were silent; after a ping, check the pongs."""
        self.ping_timer = None
        if self.closed:
            return
        if self.runtime.loop.time() - self.ping_due > TICK:
            # the loop stalled: timers run before socket reads, and a pong may be waiting
            # unread; judge after the next read
            self.ping_timer = self.runtime.loop.call_later(TICK, self._ping_tick)
            self.ping_due = self.runtime.loop.time() + TICK
            return
        now = self.runtime.loop.time()
        websocket = self.conf.websocket
        interval = websocket.ping
        pong_timeout = websocket.pong_timeout or interval
        pinged = []
        for side in (self.from_client, self.from_upstream):
            if side.heard:              # any bytes from a side answer its ping
                side.heard = False
                side.ping_sent = 0.0
            elif side.ping_sent:
                if now - side.ping_sent >= pong_timeout - TICK:
                    who = "client" if side is self.from_client else "upstream"
                    error_log.info(f"websocket {who} did not answer ping, closing tunnel"
                                   + self.suffix, self.number)
                    return self.close("ping", side)
                pinged.append(side)
            # a ping to the client goes into the upstream->client direction, and vice versa
            elif self.other(side).inject(ping_frame(side is self.from_upstream)):
                side.ping_sent = now
                pinged.append(side)
        # the next round one interval on, or sooner when a pong is due before it
        delay = interval
        for side in pinged:
            delay = min(delay, side.ping_sent + pong_timeout - now)
        self._arm_ping(max(delay, TICK))

    # ------------------------------------------------------------ the end

    def close(self, why: str, dead: Side | None = None) -> None:
        """Close both sides; on "shutdown" and "ping", live sides get a close frame 1001."""
        if self.closed:
            return
        from_client, from_upstream = self.from_client, self.from_upstream
        if why == "shutdown" or why == "ping":
            for side in (from_client, from_upstream):
                if side is not dead:
                    self.other(side).inject(close_frame(side is from_upstream))
        self.closed = True
        runtime = self.runtime
        runtime.deadlines.watched.discard(self)         # Deadlines.unwatch
        if self.ping_timer is not None:
            self.ping_timer.cancel()
            self.ping_timer = None
        if dead is None:
            self.client.close()
            self.upstream.close()
        else:
            self.client.abort() if dead is from_client else self.client.close()
            self.upstream.abort() if dead is from_upstream else self.upstream.close()
        runtime.tunnel_closed(self)
        metrics.TUNNELS.closed(self)
        log = self.log
        if log is not None:
            self.log = None
            log.write(self.sent_down, self.sent_up)
        if self.limits is not None:
            self.limits.release()
            self.limits = None
        # tunnel -> sides -> transports -> sides is a cycle the rarely-run cyclic GC would keep
        # (with both transports' buffers): unlink it so reference counting frees everything
        from_client.peer = from_upstream.peer = None
        self.from_client = self.from_upstream = None
        self.client = self.upstream = None

    def abort(self) -> None:
        if not self.closed:
            self.client.abort()
            self.upstream.abort()


def start_tunnel(ctx, conn, uconn, upstream_bytes: bytes) -> None:
    """Hand both transports to a Tunnel; drop the HTTP connection state (an HTTP/2 stream's
    extended CONNECT has its own: ngate/http2/websocket.py)."""
    h2_start = getattr(conn, "start_tunnel", None)     # (None on HttpConnection's class)
    if h2_start is not None:
        return h2_start(ctx, uconn, upstream_bytes)
    client_bytes, client_t = conn.become_tunnel()
    upstream_t = uconn.transport
    # the response parser holds the upstream connection's bound methods: a cycle (with the
    # upstream transport) that only the rarely-run cyclic GC would free; its protocol is now a Side
    uconn.parser = None
    websocket = ctx.hdr.get(b"upgrade", b"").strip().lower() == b"websocket"
    ctx.req = None
    Tunnel(ctx, client_t, upstream_t, websocket).start(client_bytes, upstream_bytes)
