"""The fields of an upstream exchange and what does not depend on the request's course: the
state transition, the one way it ends (finish), timers, output batching to the client, failure
logging and downstream backpressure. proxy/exchange_peer.py adds the peer side (choosing a
peer, connecting, retrying, the keepalive pool), proxy/exchange.py the request's course.
"""
from __future__ import annotations

import time

from ngate.filters import drain
from ngate.http1 import response as resp
from ngate.observability import error_log
from ngate.proxy.exchange_state import CONNECTING, DONE, STREAMING, TRANSITIONS, TUNNEL, \
    ExchangeStateError
from ngate.proxy.response_head import HeadTranslation
from ngate.proxy.throttle import ReadThrottle
from ngate.server import flow
from ngate.upstream.failure import Phase, UpstreamError
from ngate.upstream.pool import NEVER

# statuses proxy_next_upstream can retry on (http_403 and http_404 do not count as failures)
NEXT_ON_STATUS = {500: "http_500", 502: "http_502", 503: "http_503", 504: "http_504",
                  403: "http_403", 404: "http_404", 429: "http_429"}


class ExchangeBase(HeadTranslation):
    __slots__ = (
        "ctx", "conn", "conf", "upstream", "loop", "deadlines",
        "plan",             # the location's compiled plan for this wire (timeouts, headers, ...)
        "wire",             # the wire protocol strategy (Http1Wire, FastCGIWire)
        "state",            # proxy/exchange_state.py State
        # peers and tries
        "peer", "tried", "tries", "attempt", "started", "reused",
        "counts",           # least_conn or max_conns: connections per peer are counted
        "counted",          # the peer this exchange counts a connection for
        "connecting",       # upstream_conn.Connect of the connection being opened
        "pool_key",         # (group id, host, port[, TLS identity]): the keepalive pool's key
        "uconn",            # the UpstreamConnection of the current try
        "tls",              # (SSLContext, server_hostname) for proxy_pass https://
        "uri",              # the URI sent upstream (also in the error log's upstream: "...")
        "feeding",          # inside the parser: a finished connection is pooled after it
        "pool_pending",     # that connection, pooled once the read is parsed to its end
        # timers (server/clock.py's coarse deadlines, lazily re-armed). `timer`: None (none),
        # True (the exchange is watched, its `deadline`), or the UpstreamConnection `uconn`
        # (proxy/http_proxy.py start_pooled: a pooled connection is watched already; the
        # deadline is its `deadline`, its expired() passes the expiry on: no watch and unwatch
        # of the exchange per request; upstream_conn.py _cancel_idle hands it back)
        "timer", "deadline", "timeout",
        # request
        "body",             # proxy/request_body.py RequestBody
        "body_open",        # the request's body is still being written to the connection
        "sent_bytes",       # request bytes written to the current connection
        "corked",           # chunked body data of this client read, not yet written: one chunk
        "in_read",          # a chunked body piece came in this client read (nginx: one buffer)
        # response
        "got_bytes", "status", "reason", "resp_headers", "head_only", "chunked_out",
        "until_close",      # no length nor chunking: the response ends when the upstream closes
        "resp_length", "upgrade",
        "out",              # response bytes gathered during one upstream read: one write
        "filter",           # filters/: the body filter of this response, or None
        "filter_flush",     # flush the body filter per upstream read (response not buffered)
        "accel",            # the response's X-Accel-* headers (hidden ones), or None
        "throttle",         # proxy/throttle.py ReadThrottle (*_limit_rate), or None
        "drain",            # filters/drain.py: None, "draining" or "complete" (gunzip's output)
        "known",            # the response head's entry of Plan.heads (wire_http1.known_response)
        "learn",            # a response head's bytes whose parse Plan.heads may keep (_learn)
    )

    # __init__(self, ctx, upstream, wire, plan): fill, below

    # ------------------------------------------------------------ state

    def _to(self, new) -> None:
        """The state changes along proxy/exchange_state.py's table only. The four transitions
        of every request (-> SENDING, READING, STREAMING, DONE) write the same check inline:
        `if new not in TRANSITIONS[self.state]: self._refused(new)` (a call costs ~4x it)."""
        old = self.state
        if new not in TRANSITIONS[old]:
            raise ExchangeStateError(old, new)
        self.state = new

    def _refused(self, new) -> None:
        raise ExchangeStateError(self.state, new)

    def finish(self, reuse: bool = False, detach: bool = True) -> bool:
        """The one way an exchange ends (DONE): its timer, pending connect and throttle
        stopped, the try's response time taken, the body's temp file closed, the connection
        pooled (`reuse`) or closed, and (`detach`) the client's connection no longer reporting
        to it. False when it had ended already (or became a tunnel)."""
        st = self.state
        if st is DONE or st is TUNNEL:
            return False
        if DONE not in TRANSITIONS[st]:     # _to(DONE), inlined (hot path)
            self._refused(DONE)
        self.state = DONE
        t = self.timer
        if t is not None:
            self.timer = None
            if t is True:
                self.deadlines.watched.discard(self)    # Deadlines.unwatch
            else:
                t.deadline = NEVER                      # (the connection's: stays watched)
        th = self.throttle
        if th is not None:
            th.cancel()
        t = self.connecting
        if t is not None:
            self.connecting = None
            t.cancel()
        a = self.attempt
        if a is not None and a.response_time is None:   # the try ends (Attempt.end, inlined)
            a.response_time = time.monotonic() - a.start
        self.release(reuse)
        if detach:
            self.conn.writer = None
        return True

    # ------------------------------------------------------------ timers

    def arm(self, timeout: float) -> None:
        self.timeout = timeout
        t = self.timer
        if t is None:
            self.deadline = self.loop.time() + timeout
            self.timer = True
            self.deadlines.watch(self)
        elif t is True:
            self.deadline = self.loop.time() + timeout
        else:
            t.deadline = self.loop.time() + timeout     # the connection's (see `timer`)

    def _cancel_timer(self) -> None:
        t = self.timer
        if t is not None:
            self.timer = None
            if t is True:
                self.deadlines.unwatch(self)
            else:
                t.deadline = NEVER

    # ------------------------------------------------------------ output to the client

    def _emit(self, data: bytes) -> None:
        out = self.out
        if out is not None:
            out.append(data)
        else:
            self.conn.write(data)

    def _flush(self) -> None:
        out = self.out
        if out is not None:
            self.out = None
            if out:
                self.conn.write(out[0] if len(out) == 1 else b"".join(out))

    def _filter_out(self, data: bytes) -> None:
        """Bytes the body filter produced outside response_body (flush, finish)."""
        if data:
            if self.chunked_out:
                data = resp.chunk(data)
            self.ctx.body_bytes_sent += len(data)
            self._emit(data)

    def read_done(self) -> None:
        """The end of one upstream read (the wires call it): the body filter flushed when the
        response is not buffered, the read's output written at once, a bounded filter's held
        output drained as the client takes it (filters/drain.py)."""
        if self.filter_flush:
            self.filter_read_done()
        out = self.out                  # _flush, written out (hot path)
        if out is not None:
            self.out = None
            if out:
                self.conn.write(out[0] if len(out) == 1 else b"".join(out))
        f = self.filter
        if f is not None and getattr(f, "pending", False):
            drain.step(self)

    def filter_read_done(self) -> None:
        """The end of one upstream read: flush the body filter when the response is not
        buffered (nginx passes each read on with its flush flag then)."""
        if self.filter_flush and self.state is STREAMING and not self.head_only:
            self._filter_out(self.filter.flush())

    # ------------------------------------------------------------ failures

    def _logged(self, err: UpstreamError) -> UpstreamError:
        """Log err (once) with nginx's context: `..., upstream: "http://peer/uri", ...`."""
        if not err.logged:
            err.logged = True
            if err.detail:
                error_log.error(err.message + error_log.request_suffix(
                    self.ctx, self.wire.upstream_url(self)), self.conn.number)
        return err

    def _disabled(self, phase: Phase) -> None:
        error_log.warn(f"upstream server temporarily disabled while {phase.value}"
                       + error_log.request_suffix(self.ctx, self.wire.upstream_url(self)),
                       self.conn.number)

    # ------------------------------------------------------------ downstream backpressure

    def downstream_paused(self) -> None:
        """The client's write buffer is full: stop reading the upstream. Its read timeout stops
        too (the connection's send_timeout watches the client meanwhile), as nginx does."""
        if flow.pause(self.uconn) and self.state is STREAMING:
            self._cancel_timer()

    def downstream_resumed(self) -> None:
        if self.drain is not None and drain.step(self):
            return                  # gunzip's output still waits for the client
        if flow.resume(self.uconn) and self.state is STREAMING and self.timer is None:
            self.arm(self.plan.read_timeout)


def fill(ex, ctx, upstream, wire, plan) -> None:
    """The fields of a new exchange `ex`: ExchangeBase.__init__, and a function too, for
    `ex = new(Cls); fill(ex, ...)` (the proxied path's way): CPython calls a Python __init__
    from C at about twice a Python call's cost (bench/PROFILE.md, session 9)."""
    ex.ctx = ctx
    ex.conn = conn = ctx.conn
    ex.conf = ctx.conf
    ex.upstream = upstream
    runtime = conn.runtime
    ex.loop = runtime.loop
    ex.deadlines = runtime.deadlines
    ex.plan = plan
    ex.wire = wire
    ex.state = CONNECTING
    ex.peer = None
    ex.tried = ()             # a set once a peer failed (next_peer, next_on_status)
    ex.tries = 0
    ex.attempt = None
    ex.started = 0.0          # the first try's start (next_upstream_timeout, keepalive_time)
    ex.reused = False
    ex.counts = upstream is not None and upstream.counts_conns
    ex.counted = None
    ex.connecting = None
    ex.pool_key = None
    ex.uconn = None
    ex.tls = None
    ex.uri = ""
    ex.feeding = False
    ex.pool_pending = None
    ex.timer = None
    ex.deadline = 0.0
    ex.timeout = 0.0
    ex.body = None            # set by start()
    ex.body_open = False
    ex.sent_bytes = 0
    ex.corked = None
    ex.in_read = False
    ex.got_bytes = False
    ex.status = 0
    ex.reason = None
    ex.resp_headers = ()      # a list from attach() on (each try's)
    ex.head_only = False
    ex.chunked_out = False
    ex.until_close = False
    ex.resp_length = None
    ex.upgrade = False
    ex.out = None
    ex.filter = None
    ex.filter_flush = False
    ex.accel = None
    ex.drain = None
    ex.known = ex.learn = None
    rate = plan.limit_rate
    ex.throttle = ReadThrottle(ex, rate) if rate else None


ExchangeBase.__init__ = fill
new = object.__new__
