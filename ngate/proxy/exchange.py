"""One request's exchange with an upstream group: proxy_pass and fastcgi_pass alike.

The exchange is a state machine (proxy/exchange_state.py: the states and the one table of
transitions). It owns what does not depend on the wire protocol: peer selection and retries
(upstream/retry.py), connect and the keepalive pool, timers, the request body (RequestBody),
the response head's translation (proxy/response_head.py), the response body to the client with
backpressure both ways, failures (upstream/failure.py UpstreamError) and the record of tries
(upstream/attempts.py). The wire protocol is a strategy object, `wire` (proxy/wire_http1.py
Http1Wire, proxy/fastcgi_proxy.py FastCGIWire): it frames the request and turns the upstream's
bytes into the exchange's response events (response_head, response_body, response_end).

It ends one way, finish() (proxy/exchange_base.py); what follows (the request's end, a status
page, an internal redirect, the tunnel) is the caller's.

The class is built in layers, each its own module: exchange_base.py (fields, state, finish,
timers, output, backpressure), exchange_peer.py (peers, connect, retries, the pool),
exchange_request.py (the client's body and the request), this module (upstream and response
events, failures, the client gone), response_head.py (head translation).

One proxied request: http_proxy.proxy_handler -> UpstreamExchange.start (wire.prepare, the
body) -> connect (balancer take, pool or _open) -> attach (wire.send_request) -> upstream_data
-> wire.data (llhttp, or a known head: wire_http1.known_response) -> response_head ->
wire.send_head (split_headers, write_head) -> response_body -> response_end -> finish (pool)
-> conn.finish_request.
"""
from __future__ import annotations

import time

from ngate.filters import postpone, trailers
from ngate.http import log, phases
from ngate.observability import error_log
from ngate.proxy.exchange_base import NEXT_ON_STATUS
from ngate.proxy.exchange_request import RequestSide, log_spooled
from ngate.proxy.exchange_state import (BEFORE_HEAD, CONNECTING, DONE, PASSTHROUGH, SENDING,
                                        STREAMING, SWITCHING, TRANSITIONS, TUNNEL)
from ngate.proxy.tunnel import start_tunnel
from ngate.server import flow
from ngate.upstream.balancer import report_success
from ngate.upstream.failure import Phase, UpstreamError, closed, timed_out
from ngate.upstream.pool import NEVER

__all__ = ["NEXT_ON_STATUS", "UpstreamExchange", "log_spooled"]


class UpstreamExchange(RequestSide):
    """UpstreamExchange(ctx, upstream group, wire, plan): see ExchangeBase for its fields;
    the request side is proxy/exchange_request.py's, the peer side proxy/exchange_peer.py's."""
    __slots__ = ()

    # ------------------------------------------------------------ timeouts (lazily re-armed)

    def expired(self) -> None:
        """The deadline passed with no progress (server/clock.py)."""
        self.timer = None
        st = self.state
        if st is CONNECTING:
            connecting = self.connecting
            if connecting is not None:
                self.connecting = None
                connecting.cancel()
                return self.next_peer(timed_out(Phase.CONNECT))
            return
        if st in BEFORE_HEAD:
            return self.next_peer(timed_out(Phase.HEADER))
        if st is STREAMING or st is PASSTHROUGH:
            self.ctx.keep_alive = False
            self.fail(self._logged(timed_out(Phase.BODY)))

    # ------------------------------------------------------------ upstream events

    def upstream_data(self, data: bytes) -> None:
        if self.throttle is not None:
            data = self.throttle.admit(data)
            if not data:
                return
        self.got_bytes = True
        self.attempt.bytes_received += len(data)
        t = self.timer
        if t is not None:                   # re-armed by progress (the connection's: `timer`)
            (self if t is True else t).deadline = self.loop.time() + self.timeout
        st = self.state
        if st is PASSTHROUGH:
            self.ctx.body_bytes_sent += len(data)
            self.conn.write(data)
        elif st is not TUNNEL:
            self.wire.data(self, data)

    def upstream_lost(self, exc) -> None:
        th = self.throttle
        if th is not None and (th.held or th.resting) and self.state is not DONE:
            th.lost = (exc,)        # told once the held bytes went through
            return
        self.uconn = None
        st = self.state
        if st is DONE or st is TUNNEL:
            return
        if st is PASSTHROUGH:
            self.finish()
            return self.conn.finish_request(self.ctx)
        if st in BEFORE_HEAD:
            if self.reused and not self.got_bytes and self.body.replayable:
                # a pooled connection the peer had closed: a fresh one to the same peer (its
                # connection stays counted)
                self.reused = False
                self.body_open = False
                self._to(CONNECTING)
                self.arm(self.plan.connect_timeout)
                self.connecting = self.start_connect(self.peer)
                return
            return self.next_peer(closed(Phase.HEADER, exc))
        if st is STREAMING:
            if self.until_close:
                return self.response_end()
            self._count(-1)
            self.ctx.keep_alive = False
            self.fail(self._logged(closed(Phase.BODY)))

    def upstream_write_paused(self) -> None:
        flow.pause(self.conn)

    def upstream_write_resumed(self) -> None:
        sp = self.body.spool
        if sp is not None and sp.in_file and self.state is SENDING and sp.pos < sp.size:
            if self._send_spool():
                self.request_sent()
        flow.resume(self.conn)

    # ------------------------------------------------------------ response events (from the wire)

    def response_head(self, status: int) -> None:
        """A final response head (status, self.reason, self.resp_headers): proxy_next_upstream
        http_XXX, *_intercept_errors, a 101 that becomes a tunnel, else the client's head."""
        ctx = self.ctx
        self.status = status            # got_head, written out (hot path)
        a = self.attempt
        a.status = status
        a.header_time = time.monotonic() - a.start
        ctx.upstream_headers = self.resp_headers
        kind = NEXT_ON_STATUS.get(status)
        if kind is not None and self.may_try_next(kind):
            return self.next_on_status(status)
        if not self.wire.body_after_head:
            self.body_open = False  # an early response: the rest of the body is not sent
        conf = self.conf
        if status >= 300 and self.plan.section.intercept_errors and phases.error_page_for(conf, status):
            if status == 401:       # nginx keeps the upstream's (first) WWW-Authenticate
                auth = next(((n, v) for n, v in self.resp_headers
                             if n.lower() == b"www-authenticate"), None)
                if auth is not None:
                    ctx.www_authenticate = auth[1].decode("latin-1")
                    ctx.rare = True     # (http/context.py _GUARDED)
            self.finish()
            return phases.finalize(ctx, status)
        wire = self.wire
        if status == 101 and wire.upgrades and b"upgrade" in ctx.hdr \
                and ctx.main is None:       # never in a subrequest
            if SWITCHING not in TRANSITIONS[self.state]:   # _to(SWITCHING), inlined
                self._refused(SWITCHING)
            self.state = SWITCHING
            self.upgrade = True         # (known_head.learn keeps this 101: _learn_upgrade)
        else:
            if STREAMING not in TRANSITIONS[self.state]:   # _to(STREAMING), inlined
                self._refused(STREAMING)
            self.state = STREAMING
        wire.send_head(self, status)

    def got_head(self, status: int, headers) -> None:
        """The try's response head is parsed: its status and header time ($upstream_*)."""
        self.status = status
        a = self.attempt
        a.status = status
        a.header_time = time.monotonic() - a.start
        self.ctx.upstream_headers = headers

    def response_body(self, body: bytes) -> None:
        if self.head_only or self.state is DONE:
            return
        self.attempt.response_length += len(body)
        if self.filter is not None:
            body = self.filter.data(body)
            if not body:
                return
        if self.chunked_out:
            body = b"%x\r\n%b\r\n" % (len(body), body)
        self.ctx.body_bytes_sent += len(body)  # with the chunk framing, as nginx counts it
        out = self.out                  # _emit, written out (hot path)
        if out is not None:
            out.append(body)
        else:
            self.conn.write(body)

    def response_end(self) -> None:
        st = self.state
        if st is SWITCHING or st is DONE or (self.status < 200 and self.status != 101):
            return          # (the end of an interim response)
        if self.filter is not None and getattr(self.filter, "pending", False) \
                and not self.head_only and not self.conn.closing:
            self.drain = "complete"     # filters/drain.py ends the response once drained
            return
        ctx = self.ctx
        ups = self.upstream
        if ups.state.peers:     # else no peer of this group has state in this worker
            report_success(ups, self.peer)
        filt = self.filter
        self.finish(self.wire.reusable(self), detach=False)
        deferred = False
        if filt is not None and not self.head_only:
            self._filter_out(filt.finish())
            deferred = postpone.defer_end(filt, ctx, self._end_response)
        if not deferred and self.chunked_out and not self.head_only:
            last = trailers.last_chunk(ctx)     # add_trailer's, after the try's end
            self._emit(last)
            ctx.body_bytes_sent += len(last)
        out = self.out                  # _flush, written out (hot path)
        if out is not None:
            self.out = None
            if out:
                self.conn.write(out[0] if len(out) == 1 else b"".join(out))
        if deferred:
            return          # subrequests still run: filters/postpone.py ends the response
        self.conn.writer = None
        ctx.bytes_sent += ctx.body_bytes_sent
        self.conn.finish_request(ctx)

    def response_end_head(self) -> None:
        """A response to HEAD ends with its head (the parser cannot be told it was a HEAD)."""
        self._flush()
        report_success(self.upstream, self.peer)
        self.finish()
        self.conn.finish_request(self.ctx)

    def _end_response(self) -> None:
        """The end of a response whose subrequests outlived the upstream response."""
        ctx = self.ctx
        if self.chunked_out:
            last = trailers.last_chunk(ctx)
            self.conn.write(last)
            ctx.body_bytes_sent += len(last)
        ctx.bytes_sent += ctx.body_bytes_sent
        self.conn.finish_request(ctx)

    def upgraded(self, rest: bytes) -> None:
        """The 101 head is through: the bytes after it belong to the tunnel."""
        out = self.out                  # _flush, written out (the 101's head)
        if out is not None:
            self.out = None
            if out:
                self.conn.write(out[0] if len(out) == 1 else b"".join(out))
        if not self.upgrade:
            self.finish()
            self.ctx.keep_alive = False
            return self.conn.finish_request(self.ctx)
        t = self.timer
        if t is not None:                   # _cancel_timer, written out (once per tunnel)
            self.timer = None
            if t is True:
                self.deadlines.watched.discard(self)
            else:
                t.deadline = NEVER          # the connection's (ExchangeBase's `timer`)
        if TUNNEL not in TRANSITIONS[self.state]:   # _to(TUNNEL), inlined
            self._refused(TUNNEL)
        self.state = TUNNEL
        u = self.uconn
        self.uconn = None
        if self.counts:
            self._count(-1)
        u.exchange = None
        if u.idle_timer is not None:
            u.handed_off()      # the tunnel takes its transport: no idle deadline again
        self.conn.writer = None
        start_tunnel(self.ctx, self.conn, u, rest)

    # ------------------------------------------------------------ failures

    def fail(self, err: UpstreamError) -> None:
        self._flush()
        self.finish()
        phases.fail(self.ctx, self._logged(err))

    def spool_failed(self, err) -> None:
        self.body.done = True
        error_log.crit(str(err) + error_log.request_suffix(self.ctx), self.conn.number)
        self.abort_with(500)

    def abort_with(self, status: int) -> None:
        self.finish()
        self.ctx.keep_alive = False
        phases.finalize(self.ctx, status)

    def client_gone(self) -> None:
        """The client closed (or timed out): stop everything, never pool the upstream connection;
        log 499 when no head was sent, nginx's "so upstream connection is closed too" mid-body."""
        streaming = self.state is STREAMING
        if not self.finish(detach=False):
            return
        ctx = self.ctx
        conn = self.conn
        if conn.writer is not self:
            pass            # downstream.client_timeout: status and log line are decided there
        elif not ctx.head_sent:
            ctx.status = 499
            error_log.info("client prematurely closed connection" + error_log.request_suffix(ctx),
                           conn.number)
        elif streaming:
            lost = conn.lost
            err = f" ({lost.errno}: {lost.strerror})" if isinstance(lost, OSError) and lost.errno else ""
            error_log.info("epoll_wait() reported that client prematurely closed connection, so "
                           f"upstream connection is closed too{err} while reading upstream"
                           + error_log.request_suffix(ctx, self.wire.upstream_url(self)),
                           conn.number)
        log.log_request(ctx)
