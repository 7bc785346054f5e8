"""The lifecycle of the HTTP/1.x downstream connection (server/connection.py) between requests:
a finished response, then keep-alive (the next request, pipelined ones first), the close (with
nginx's lingering close), the hand-over to a tunnel (proxy/tunnel.py), a graceful stop.

Timeouts share one coarse deadline (server/clock.py), by state: client_header_timeout while a
head is incomplete, client_body_timeout while a body is incomplete and being read (re-armed by
every read; not while reading is paused by upstream backpressure), keepalive_timeout between
requests, lingering_timeout while lingering (send_timeout: server/sending.py). A body timeout ends
the request as nginx does: status 408, nothing sent, connection closed.

Lifecycle is a mixin of HttpConnection (no state of its own: the slots are HttpConnection's).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ngate.http import downstream, log
from ngate.server import flow
from ngate.server.sending import Sending

if TYPE_CHECKING:
    from ngate.http.context import RequestContext


class Lifecycle:
    """finish_request, keep-alive, lingering close, tunnels, timeouts."""
    __slots__ = ()

    def finish_request(self, ctx: RequestContext) -> None:
        """The response to the current request is completely written."""
        if self.rate_check:
            lim = self.limiter
            if lim and lim.held:
                lim.finish = ctx        # finished once the held bytes went out
                return
            self.limiter = None
        req = self.current
        self.writer = None
        ctx.req = None          # break the ctx.req -> ctx cycle (the pending request is the
                                # context: request_head.Request): reference counting frees it
        runtime = self.runtime
        conf = ctx.conf
        # (a log variable may read a location's conf: ctx.conf is read again after a line)
        if ctx.logged or ctx.rare:     # (rare: limits, stub_status's count, realip may end)
            log.log_request(ctx)
            conf = ctx.conf
        else:                   # log.log_request's usual case, written out (a frame less)
            ctx.logged = True
            writers = runtime.log_writers[conf.log.slot] if conf is not None else None
            if writers:
                for w in writers:           # runtime.access_log, written out (a frame less)
                    w.write(ctx)
                conf = ctx.conf
            elif writers is None:
                runtime.access_log(ctx)     # (a conf's first line opens its logs)
                conf = ctx.conf
            # (else `access_log off`: (), no iterator made, no line)
        if self.closing:
            return
        if not ctx.keep_alive:
            return self._close_after_response(ctx, req)
        if conf is not None:    # the finished request's location's keepalive_timeout
            self.ka_timeout = timeout = conf.keepalive_timeout
        else:
            timeout = self.ka_timeout
        if req is not None and not req.complete:
            # the body is still arriving: discard it, then go on
            req.discard = True
            req.body = None
            flow.resume(self)
            return
        if self.queue or self.rejected is not None or self.held is not None \
                or self.write_paused or timeout <= 0.0:     # (a float: a compare specialised)
            return self._next_request()
        # _next_request's usual case, written out: nothing queued, keepalive_timeout armed
        # (_arm and deadlines.watch(self), written out; a function, no bound method, and while
        # a tick is due the deadline runs from the tick's time, as nginx's from its cached
        # time: server/clock.py)
        # (a connection whose timer is set is watched: every arming adds it, and each way out
        # of `watched` (a tick's expiry, _cancel_timer, connection_lost, a tunnel) clears the
        # timer; the header or keep-alive timer left while the request ran keeps it there)
        self.current = None
        deadlines = runtime.deadlines
        if deadlines.handle is not None:
            self.deadline = deadlines.now + timeout
            if self.timer is None:
                deadlines.watched.add(self)
            self.timer = _keepalive_timeout
        else:
            self.timer = _keepalive_timeout
            self.deadline = runtime.loop.time() + timeout
            deadlines.watch(self)

    def _close_after_response(self, ctx: RequestContext, req) -> None:
        """The last response is written: close. When the client may still be sending (a body
        not read to its end, a refused head, pipelined requests), nginx's lingering close: our
        side is shut after the response (the client sees its end at once), and what still
        arrives is read and dropped until the client closes, lingering_timeout passes without
        data or lingering_time in all; closing with unread bytes would make the kernel answer
        them with a reset that can destroy the response before the client has read it. Over
        TLS, the close_notify exchange of the TLS transport does this job."""
        self.closing = True
        conf = ctx.conf or self.listen.default_server.conf
        mode = conf.lingering_close
        t = self.transport
        unread = req is None or not req.complete or self._in_head or self.queue \
            or self.rejected is not None or self.held or self._more
        if mode == "off" or mode == "on" and not unread or self.tls is not None \
                or not t.can_write_eof():
            # t.close() (server/turn_writes.py DeferredTransport: the deferred bytes, then the
            # close) and _watch_flush, written out
            tr = t.transport
            out = t.out
            if out is not None:
                t.out = None
                if not tr.is_closing():
                    try:
                        tr.write(out)
                    except RuntimeError:
                        pass    # uvloop: the transport is closed; connection_lost is on its way
            tr.close()
            size = tr.get_write_buffer_size()
            if size:    # send_timeout watches the end of the response still flushing
                self.write_mark = size
                self._arm(self._send_timeout_value(), Sending._send_timeout)
            return
        t.write_eof()
        self.current = None
        self.queue = None
        self.held = None
        self.linger = (self.runtime.loop.time() + conf.lingering_time, conf.lingering_timeout)
        self._arm(conf.lingering_timeout, Lifecycle._linger_timeout)
        flow.resume_transport(t)     # closing: flow.resume(self) would not

    def _linger_more(self) -> None:
        """Data while lingering: dropped; lingering_timeout starts again (within lingering_time)."""
        end, timeout = self.linger
        left = end - self.runtime.loop.time()
        if left <= 0:
            return self._linger_timeout()
        self._arm(min(timeout, left), Lifecycle._linger_timeout)

    def _linger_timeout(self) -> None:
        self.linger = None
        self.transport.close()
        self._watch_flush()

    def _next_request(self) -> None:
        self.current = None
        if self.closing:
            return
        q = self.queue
        if q:
            req = q.popleft()
            self.current = req
            if not q:
                flow.resume(self)
            if self.runtime.stats is not None:
                self.runtime.stats.request_started(req.ctx)
            self.start_request(req.ctx, req)
            return
        if self.rejected is not None:
            err, self._url = self.rejected
            self.rejected = None
            return self._reject(err)
        held = self.held
        if held is not None:
            # an Upgrade request was answered without a tunnel: HTTP resumes on what followed
            self.held = None
            self._reset_framing()
            flow.resume(self)
            if held:
                self._feed(bytes(held))
                return
        if not self.write_paused:     # else send_timeout runs until the response is out
            self._arm(self.ka_timeout, _keepalive_timeout)

    def take_held(self) -> bytes:
        """Bytes the client sent after its Upgrade request (the tunnel forwards them first)."""
        held = self.held
        self.held = None
        return bytes(held) if held else b""

    def become_tunnel(self) -> tuple[bytes, object]:
        """The connection becomes a tunnel (proxy/tunnel.py): (the bytes the client sent after
        its Upgrade request, the transport). Its HTTP state is dropped here: an idle tunnel
        keeps the two transports only; the runtime counts it as a tunnel from now on."""
        held = self.held
        held = bytes(held) if held else b""
        self.held = None
        self.runtime.connection_closed(self, tunnel=True)
        self.current = None
        self.queue = None
        self.timer = None
        self.runtime.deadlines.watched.discard(self)        # Deadlines.unwatch
        self._body_req = None
        self._url = b""
        # the deferred bytes (the 101) go out first; the tunnel writes to the transport itself
        return held, self.transport.detach()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def close_if_idle(self) -> bool:
        """Graceful stop: close a keep-alive connection waiting for its next request. A fresh
        connection that has not sent its first request yet is served (nginx closes only
        connections in the keep-alive state): its request may already be on the wire."""
        if self.linger is not None or self.current is None and not self._in_head \
                and self.requests and self.held is None:
            self.closing = True
            self.transport.close()
            return True
        return False

    def _arm(self, timeout: float, callback) -> None:
        """One coarse deadline at a time (server/clock.py): header or keep-alive timeout ...
        `callback` is a function of the connection (Lifecycle._header_timeout), not a bound
        method (clock.py OneTimer)."""
        if timeout > 0:
            self.timer = callback
            self.deadline = self.runtime.loop.time() + timeout
            self.runtime.deadlines.watch(self)
        elif self.timer is not None:
            self._cancel_timer()

    def _header_timeout(self) -> None:
        if self.current is not None:
            return      # armed before a head that then arrived whole (_head leaves it)
        if self._in_head:
            log.log_timeout(self, "client timed out while reading client request headers")
        self.closing = True
        self.transport.close()

    def _body_timeout(self) -> None:
        """client_body_timeout: no body bytes for that long while reading them."""
        cur = self.current
        if cur is None or cur.complete or self.closing:
            return
        if not self.transport.is_reading():
            # paused by upstream backpressure (the proxy's send timeout applies): check later
            self._arm(self._conf().client_body_timeout, Lifecycle._body_timeout)
            return
        if not cur.discard:
            downstream.client_timeout(cur.ctx, "")
        self.closing = True
        self.transport.close()

    def _conf(self):
        """The current request's location configuration (the default server's between requests)."""
        cur = self.current
        if cur is not None and cur.ctx.conf is not None:
            return cur.ctx.conf
        return self.listen.default_server.conf

    def _keepalive_timeout(self) -> None:
        if self.current is None and not self._in_head:
            self.closing = True
            self.transport.close()


_keepalive_timeout = Lifecycle._keepalive_timeout     # (a global: finish_request's arming)
