"""The not_modified filter (ngx_http_not_modified_filter_module): If-Unmodified-Since and
If-Match (412), If-Modified-Since and If-None-Match (304) on a main request's 200, decided on the
content's own validators (it runs before add_header's headers filter).

nginx switches it off for an upstream's response that is not being cached
(r->disable_not_modified = !u->cacheable): the conditional headers go to the upstream and its
answer passes. Static files (static/handler.py) and cache entries (cache/serve.py) call `check`.
"""
from __future__ import annotations


def check(hdr: dict, mode: str, lm_time: int | None, etag: str | None) -> int | None:
    """412, 304 or None (send the response). `mode`: if_modified_since (off, exact, before);
    `lm_time`: Last-Modified as a time (None: none); `etag`: the ETag (None: none)."""
    ius = hdr.get(b"if-unmodified-since")
    if ius is not None and not _unmodified(ius, lm_time):
        return 412
    im = hdr.get(b"if-match")
    if im is not None and not match(im, etag, False):
        return 412
    ims = hdr.get(b"if-modified-since")
    inm = hdr.get(b"if-none-match")
    if ims is None and inm is None:
        return None
    if ims is not None and _modified(ims, mode, lm_time):
        return None
    if inm is not None and not match(inm, etag, True):
        return None
    return 304


_TIMES: dict = {}        # a header's value -> http_time's answer (clients send one value again
_TIMES_MAX = 1024       # and again: the Last-Modified they were given); emptied when full


def http_time(value: bytes) -> int | None:
    """The date of an If-Modified-Since / If-Unmodified-Since value (None: not a date); the
    parse (email.utils: ~70k instructions) is kept per value."""
    try:
        return _TIMES[value]
    except KeyError:
        pass
    t = _parse_time(value)
    if len(_TIMES) >= _TIMES_MAX:
        _TIMES.clear()
    _TIMES[value] = t
    return t


def _parse_time(value: bytes) -> int | None:
    from email.utils import parsedate_to_datetime
    try:
        return int(parsedate_to_datetime(value.decode("latin-1")).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _unmodified(value: bytes, lm_time: int | None) -> bool:
    """ngx_http_test_if_unmodified: no Last-Modified or an unparsable date fails."""
    if lm_time is None:
        return False
    t = http_time(value)
    return t is not None and t >= lm_time


def _modified(value: bytes, mode: str, lm_time: int | None) -> bool:
    """ngx_http_test_if_modified."""
    if lm_time is None or mode == "off":
        return True
    t = http_time(value)
    if t == lm_time:
        return False
    return mode == "exact" or t is None or t < lm_time


def match(value: bytes, etag: str | None, weak: bool) -> bool:
    """ngx_http_test_if_match: `*`, or the ETag in the comma-separated list (with `weak`, W/
    prefixes on both sides are ignored)."""
    if value == b"*":
        return True
    if etag is None:
        return False
    e = etag.encode("latin-1")
    if weak and len(e) > 2 and e[:2] == b"W/":
        e = e[2:]
    n = len(value)
    i = 0
    while i < n:
        if weak and n - i > 2 and value[i:i + 2] == b"W/":
            i += 2
        if len(e) > n - i:
            return False
        if value.startswith(e, i):
            j = i + len(e)
            while j < n and value[j] in b" \t":
                j += 1
            if j == n or value[j] == 44:        # ","
                return True
        while i < n and value[i] != 44:
            i += 1
        while i < n and value[i] in b" \t,":
            i += 1
    return False
