"""limit_rate / limit_rate_after / $limit_rate / X-Accel-Limit-Rate: the response rate of one
request, as nginx's write filter computes it (ngx_http_write_filter_module.c).

The rate is decided at the response's first write (the location after any internal redirect),
unless `set $limit_rate` or an upstream's X-Accel-Limit-Rate fixed it before. With a rate, what
may be sent by now is `rate * (now - start + 1) - (sent - limit_rate_after)` (whole seconds, as
ngx_time()); more than that is held, and after each write the connection rests for what went
out beyond limit_rate_after (`bytes / rate` seconds). The rest is an event-loop timer, as
nginx's write timer: the coarse clock of server/clock.py would add up to half a second to every
rest, and a rate-limited response rests once per write, so its length would drift well past
nginx's (4 bytes/s for 30 bytes: 8.0 s instead of 7.0). While bytes are held, the response's producer is paused as for a full socket buffer
(`downstream_paused`), so at most one of its chunks waits here; the request finishes (and is
logged) when the last byte went out.

A connection only looks at this when the configuration has a limit_rate somewhere or a request
set one ($limit_rate, X-Accel-Limit-Rate): `HttpConnection.rate_check`.

States: off (rate 0: writes go straight through) | sending | resting (timer set; bytes
may be held) -> done (request finished; the connection drops the limiter).
"""
from __future__ import annotations

import time

from ngate.config.values import parse_size


def rate_value(value, ctx) -> int:
    """A limit_rate / limit_rate_after setting: an int, or a Template rendered now (an invalid
    or empty size is 0, as ngx_http_complex_value_size with its default)."""
    if value.__class__ is int:
        return value
    text = value.render(ctx)
    try:
        return max(parse_size(text), 0) if text else 0
    except ValueError:
        return 0


class RateLimiter:
    __slots__ = ("conn", "ctx", "rate", "after", "start", "sent", "held", "timer",
                 "resting", "finish", "paused")

    def __init__(self, conn, ctx, rate: int) -> None:
        self.conn = conn
        self.ctx = ctx
        self.rate = rate
        self.after = rate_value(ctx.conf.limit_rate_after, ctx) if ctx.conf is not None else 0
        self.start = int(ctx.start_wall)
        self.sent = 0
        self.held: list = []        # bytes not written yet
        self.timer = None
        self.resting = False
        self.finish = None          # the ctx whose finish_request waits for the held bytes
        self.paused = False         # the producer was paused by us

    def write(self, data) -> None:
        if self.held or self.resting:
            self.held.append(bytes(data))
            self._pause_producer()
            return
        self._send(data)

    def _send(self, data) -> None:
        """Write what the rate allows now, hold the rest, rest after writing."""
        rate = self.rate
        limit = rate * (int(time.time()) - self.start + 1) - (self.sent - self.after)
        if limit <= 0:
            self.held.insert(0, bytes(data))
            self._rest(-limit / rate + 0.001)     # nginx: -limit * 1000 / rate + 1 ms
            return
        n = len(data)
        if n > limit:
            self.held.insert(0, bytes(data[limit:]))
            data = data[:limit]
            n = limit
        before = self.sent
        self.sent += n
        self.conn.transport_write(data)
        after = self.after
        beyond = max(self.sent - after, 0) - max(before - after, 0)
        if beyond > 0:
            self._rest(beyond / rate)
        if self.held:
            self._pause_producer()

    def _rest(self, seconds: float) -> None:
        self.resting = True
        self.timer = self.conn.runtime.loop.call_later(seconds, self.expired)

    def expired(self) -> None:
        """The rest is over: write what is held, then let the producer go on."""
        self.resting = False
        self.timer = None
        conn = self.conn
        if conn.transport is None or conn.transport.is_closing():
            self.held = []
            return
        while self.held and not self.resting:
            self._send(self.held.pop(0))
        if self.held:
            return
        if self.finish is not None:
            ctx, self.finish = self.finish, None
            conn.finish_request(ctx)
            return
        if self.paused:
            self.paused = False
            w = conn.writer
            if w is not None and not conn.write_paused:
                w.downstream_resumed()

    def _pause_producer(self) -> None:
        if not self.paused:
            self.paused = True
            w = self.conn.writer
            if w is not None:
                w.downstream_paused()

    def cancel(self) -> None:
        self.held = []
        self.finish = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
