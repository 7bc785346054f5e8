"""The record of a request's tries at upstream peers (nginx's r->upstream_states).

ctx.upstream_tries is None until a peer is chosen, then a list with one Attempt per try. Every
`$upstream_*` variable and the `upstream: "..."` of the error log are rendered from it, only
when asked: the exchange writes numbers into the current Attempt and never formats them.

Times are nginx's, per try and from the try's start (ngx_http_upstream_connect):
  connect_time   the connection is ready for the request (0 for a pooled one)
  header_time    the response head is parsed
  response_time  the try ended (the response's end, a failure, the next try, the client gone)
A time not reached is `-`; so is the status of a try that got no response. Tries of one
exchange are separated by ", "; the first try of a later exchange in the same request (an
X-Accel-Redirect, an error_page to another proxied location) by " : ", as nginx does.
"""
from __future__ import annotations


class Attempt:
    __slots__ = ("addr", "status", "start", "connect_time", "header_time", "response_time",
                 "bytes_sent", "bytes_received", "response_length", "redirected")

    def __init__(self, addr: str, start: float, redirected: bool = False) -> None:
        new_attempt(addr, start, redirected, self)

    def end(self, now: float) -> None:
        """The try is over: its response time, once."""
        if self.response_time is None:
            self.response_time = now - self.start

    def __repr__(self) -> str:
        return f"Attempt({self.addr!r}, status={self.status})"


def new_attempt(addr: str, start: float, redirected: bool = False, a=None) -> Attempt:
    """Attempt(addr, start, redirected) without the __init__ call (CPython calls a Python
    __init__ from C at about twice a Python call's cost): the exchange's way; `a`: fill it."""
    if a is None:
        a = _new(Attempt)
    a.addr = addr                    # the peer's name, or the group's (no live upstreams)
    a.start = start                  # time.monotonic() at the try's start
    a.status = 0                     # the response's status, or the failure's (502, 504)
    a.connect_time = None            # seconds from start, or None: not reached
    a.header_time = None
    a.response_time = None
    a.bytes_sent = 0
    a.bytes_received = 0
    a.response_length = 0            # body bytes as read (a chunked body with its framing)
    a.redirected = redirected        # the first try of a later exchange: " : " before it
    return a


_new = object.__new__


def add(ctx, addr: str, now: float, first: bool) -> Attempt:
    """A new try at `addr`; `first`: the first try of its exchange. The previous try ends."""
    tries = ctx.upstream_tries
    if tries is None:
        a = new_attempt(addr, now)
        ctx.upstream_tries = [a]
        return a
    tries[-1].end(now)
    a = new_attempt(addr, now, first)
    tries.append(a)
    return a


def _join(tries, values) -> str:
    if len(tries) == 1:
        return values[0]
    out = [values[0]]
    for a, v in zip(tries[1:], values[1:]):
        out.append(" : " if a.redirected else ", ")
        out.append(v)
    return "".join(out)


def addrs(tries) -> str:
    return _join(tries, [a.addr for a in tries])


def statuses(tries) -> str:
    return _join(tries, [str(a.status) if a.status else "-" for a in tries])


def seconds(tries, field: str) -> str:
    """connect_time, header_time or response_time of every try: `0.012, -`."""
    values = []
    for a in tries:
        v = getattr(a, field)
        values.append("-" if v is None else "%.3f" % (v if v > 0 else 0))
    return _join(tries, values)


def counts(tries, field: str) -> str:
    """bytes_sent, bytes_received or response_length of every try."""
    return _join(tries, [str(getattr(a, field)) for a in tries])
