"""Flow control between two connections: the one place that stops and restarts reading.

ngate joins connections in pairs: the client's and an upstream's (proxy/exchange*.py, the wires
of proxy/wire_http1.py and proxy/fastcgi_proxy.py), the two transports of a tunnel
(proxy/tunnel.py). When one side cannot take more (its write buffer is above the high-water mark,
bytes are held for a connection not made yet, a filter's output waits, *_limit_rate rests), the
other side's reading stops; when it drains, reading resumes, unless that side is closing.

    pause(side)                stop reading `side` (None, or not connected yet: nothing);
                               True when it did
    resume(side)               read it again, unless it is closing or closed; True when it did
    pause_transport(t)         the same for a bare transport (a tunnel's sides)
    resume_transport(t, closed)

`side` is a protocol with `transport` and `closing` (server/connection.py HttpConnection,
proxy/upstream_conn.py UpstreamConnection).
"""
from __future__ import annotations


def pause(side) -> bool:
    """Stop reading `side`'s transport; False when there is none."""
    if side is not None:
        t = side.transport
        if t is not None:
            t.pause_reading()
            return True
    return False


def resume(side) -> bool:
    """Read `side`'s transport again, unless its connection is closing; False when not."""
    if side is not None and not side.closing:
        t = side.transport
        if t is not None:
            t.resume_reading()
            return True
    return False


def pause_transport(t) -> None:
    if t is not None:
        t.pause_reading()


def resume_transport(t, closed: bool = False) -> None:
    if t is not None and not closed:
        t.resume_reading()
