"""The headers module's `expires`: compiled once (`compile_expires`), applied per response.

Kinds as in ngx_http_headers_module: off, epoch, max, access (now + time), modified (file mtime +
time), daily (`@15h30m`: the next such time of day). A negative time gives `no-cache`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import formatdate

from ngate.config.values import parse_time
from ngate.errors import ConfigError

EXPIRES_CODES = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})
_MAX = (b"Thu, 31 Dec 2037 23:55:55 GMT", b"max-age=315360000")
_EPOCH = (b"Thu, 01 Jan 1970 00:00:01 GMT", b"no-cache")


@dataclass(frozen=True, slots=True)
class Expires:
    kind: str              # off | epoch | max | access | modified | daily
    seconds: int = 0


def compile_expires(args: tuple, where) -> Expires:
    """ngx_http_headers_expires + ngx_http_parse_expires, with nginx's messages."""
    def invalid(what: str = "invalid value") -> ConfigError:
        return ConfigError(f'"expires" directive {what}', where)
    modified = len(args) == 2
    if modified and args[0] != "modified":
        raise invalid()
    value = args[-1]
    if not modified and value in ("off", "epoch", "max"):
        return Expires(value)
    kind = "modified" if modified else "access"
    negative = False
    if value.startswith("@"):
        if modified:
            raise invalid('daily time cannot be used with "modified" parameter')
        kind, value = "daily", value[1:]
    elif value.startswith(("+", "-")):
        negative, value = value[0] == "-", value[1:]
    try:
        secs = int(parse_time(value, allow_ms=False))
    except ValueError:
        raise invalid() from None
    if kind == "daily" and secs > 86400:
        raise invalid("daily time value must be less than 24 hours")
    return Expires(kind, -secs if negative else secs)


def expires_headers(conf, status: int, mtime: int | None = None, now: int | None = None) -> list:
    """[(b"Expires", ...), (b"Cache-Control", ...)] for this response, or []. `mtime`: the
    response's Last-Modified time (None: none, nginx's -1: `modified` counts from now, as
    `access`); `now`: the time (None: the clock's second). ngx_http_set_expires."""
    exp = conf.headers.expires
    if exp is None or exp.kind == "off" or status not in EXPIRES_CODES:
        return []
    kind = exp.kind
    if kind == "max":
        return [(b"Expires", _MAX[0]), (b"Cache-Control", _MAX[1])]
    if kind == "epoch":
        return [(b"Expires", _EPOCH[0]), (b"Cache-Control", _EPOCH[1])]
    if now is None:
        now = int(time.time())
    secs = exp.seconds
    if secs == 0 and kind != "daily":       # now, max-age=0 (`modified 0` as well)
        return [(b"Expires", http_time(now)), (b"Cache-Control", b"max-age=0")]
    if kind == "daily":
        day = now - now % 86400
        when = day + secs
        if when <= now:
            when += 86400
        max_age = when - now
    elif kind == "access" or mtime is None:
        when = now + secs
        max_age = secs
    else:
        when = mtime + secs
        max_age = when - now
    cache = b"no-cache" if secs < 0 or max_age < 0 else b"max-age=%d" % max_age
    return [(b"Expires", http_time(when)), (b"Cache-Control", cache)]


_MAX_DAYS = 2932896         # ngx_gmtime: 4 year digits at most (December 31, 9999)


_TIMES: dict = {}       # time_t -> http_time's answer (`expires` of a time: one new value a
_TIMES_MAX = 1024       # second; `modified`: one per file); emptied when full


def http_time(when: int) -> bytes:
    """ngx_http_time of a time_t: the sum wraps as nginx's 64-bit one does, a negative time is
    the epoch, and a time past 9999 is December 31, 9999, 23:59:59 (never an OverflowError).
    Kept per time (email.utils' formatdate: ~150 bytecodes and a datetime per call)."""
    try:
        return _TIMES[when]
    except KeyError:
        pass
    t = (when + 2 ** 63) % 2 ** 64 - 2 ** 63
    t = min(max(t, 0), _MAX_DAYS * 86400 + 86399)
    value = formatdate(t, usegmt=True).encode()
    if len(_TIMES) >= _TIMES_MAX:
        _TIMES.clear()
    _TIMES[when] = value
    return value
