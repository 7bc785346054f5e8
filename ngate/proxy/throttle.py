"""proxy_limit_rate / fastcgi_limit_rate: how fast a response is read from the upstream.

nginx limits the reading of a buffered response (ngx_event_pipe_read_upstream): what may have
been read by now is `rate * (now - start + 1)` bytes (whole seconds, as ngx_time()). ngate
passes the allowed part of a read on and holds the rest with the upstream's reading paused;
an event-loop timer ends the wait, as nginx's read timer (the coarse clock of server/clock.py
would make every wait up to half a second longer). An upstream that closes while bytes are held
is told to the exchange once they went through. As in nginx 1.22, it applies only with
proxy_buffering (fastcgi_buffering) on.

States: reading | resting (timer set, bytes held, upstream paused) -> reading.
"""
from __future__ import annotations

import time

from ngate.proxy.exchange_state import DONE
from ngate.server import flow


class ReadThrottle:
    __slots__ = ("exchange", "rate", "start", "read", "held", "timer", "resting", "lost")

    def __init__(self, exchange, rate: int) -> None:
        self.exchange = exchange
        self.rate = rate
        self.start = int(time.time())
        self.read = 0
        self.held = b""
        self.timer = None
        self.resting = False
        self.lost = None            # (exc,) of an upstream that closed while bytes were held

    def admit(self, data: bytes) -> bytes:
        """The part of `data` the exchange may process now; the rest is held."""
        if self.resting:
            self.held += data
            return b""
        limit = self.rate * (int(time.time()) - self.start + 1) - self.read
        if limit <= 0:
            self.held += data
            self._rest(-limit / self.rate + 0.001)
            return b""
        if len(data) > limit:
            self.held = data[limit:]
            data = data[:limit]
            self._rest(1.0 - (time.time() % 1.0) + 0.001)     # the next whole second
        self.read += len(data)
        return data

    def _rest(self, seconds: float) -> None:
        ex = self.exchange
        self.resting = True
        flow.pause(ex.uconn)
        self.timer = ex.loop.call_later(seconds, self.expired)

    def expired(self) -> None:
        self.resting = False
        self.timer = None
        ex = self.exchange
        if ex.state is DONE:
            self.held = b""
            return
        held, self.held = self.held, b""
        if held:
            ex.upstream_data(held)      # through admit() again
        if self.resting or ex.state is DONE:
            return
        if self.lost is not None:
            exc, self.lost = self.lost[0], None
            return ex.upstream_lost(exc)
        if not ex.conn.write_paused:
            flow.resume(ex.uconn)

    def cancel(self) -> None:
        self.held = b""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
