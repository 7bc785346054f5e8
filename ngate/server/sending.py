"""The write path of the HTTP/1.x downstream connection (server/connection.py).

write() sends a response's bytes through the connection's server/turn_writes.py
DeferredTransport (small ones at the end of the loop's turn, everything in order); with
limit_rate in the config (`rate_check`) they go through the response's server/ratelimit.py
RateLimiter, decided at its first write. Write backpressure:
pause_writing/resume_writing from the transport are passed to whoever is producing the response
(`writer`: an upstream exchange pauses its upstream socket). send_timeout runs while writing is
paused, re-armed while the write buffer shrinks, and after a close while the transport still
flushes: it is logged ("client timed out ... while sending to client") and the connection aborted.

Sending is a mixin of HttpConnection (no state of its own: the slots are HttpConnection's).
"""
from __future__ import annotations

from ngate.http import downstream, log
from ngate.server import ratelimit
from ngate.server.turn_writes import DEFER_MAX


class Sending:
    """write, limit_rate, write backpressure, send_timeout."""
    __slots__ = ()

    def write(self, data: bytes) -> None:
        if self.rate_check:
            return self._rate_write(data)
        t = self.transport          # a server/turn_writes.py DeferredTransport
        if t.out is None and data.__class__ is bytes and len(data) <= DEFER_MAX:
            # DeferredTransport.write's first case and TurnWrites.defer, written out (hot
            # path): the response goes out at the end of the loop's turn (at once on a quiet
            # loop)
            turn = t.turn
            turn.count += 1
            if not turn.scheduled:
                turn.scheduled = True
                turn.loop.call_soon(turn.end)         # (bound once)
                if not turn.busy:
                    try:
                        t.transport.write(data)
                    except RuntimeError:
                        pass
                    return
            if data:
                t.out = data
                turn.pending.append(t)
            return
        try:
            t.write(data)
        except RuntimeError:
            pass    # uvloop: the transport is closed; connection_lost is on its way

    def transport_write(self, data) -> None:
        try:
            self.transport.write(data)
        except RuntimeError:
            pass

    def _rate_write(self, data) -> None:
        """limit_rate: the response's first write decides its rate (server/ratelimit.py)."""
        lim = self.limiter
        if lim is None:
            cur = self.current
            ctx = cur.ctx if cur is not None else None
            rate = 0
            if ctx is not None:
                rate = ctx.limit_rate
                if rate is None:
                    rate = ratelimit.rate_value(ctx.conf.limit_rate, ctx) \
                        if ctx.conf is not None else 0
                    ctx.limit_rate = rate
            lim = self.limiter = ratelimit.RateLimiter(self, ctx, rate) if rate else False
        if lim is False:
            return self.transport_write(data)
        lim.write(data)

    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_mark = self.transport.get_write_buffer_size()
        self._arm(self._send_timeout_value(), Sending._send_timeout)
        w = self.writer
        if w is not None:
            w.downstream_paused()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.timer is Sending._send_timeout:
            self._cancel_timer()
            if self.current is None and not self._in_head and not self.closing:
                self._arm(self.ka_timeout, type(self)._keepalive_timeout)
        w = self.writer
        if w is not None:
            w.downstream_resumed()

    def _watch_flush(self) -> None:
        """A closed transport still flushing the end of a response: send_timeout watches it (a
        client that stopped reading would otherwise hold the connection for ever)."""
        size = self.transport.get_write_buffer_size()
        if size:
            self.write_mark = size
            self._arm(self._send_timeout_value(), Sending._send_timeout)

    def _send_timeout_value(self) -> float:
        return self._conf().send_timeout

    def _send_timeout(self) -> None:
        """send_timeout: writing stayed paused (or, once closed, unflushed) that long without the
        buffer shrinking."""
        size = self.transport.get_write_buffer_size()
        if not size or not self.write_paused and not self.closing:
            return
        if size < self.write_mark:      # the client read something: progress
            self.write_mark = size
            self._arm(self._send_timeout_value(), Sending._send_timeout)
            return
        message = "client timed out (110: Connection timed out) while sending to client"
        cur = self.current
        if cur is not None and not cur.ctx.logged:
            downstream.client_timeout(cur.ctx, message)
        else:
            log.log_timeout(self, message)
        self.abort()
