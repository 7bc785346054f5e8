"""The range header and body filters (ngx_http_range_filter_module) for responses that stream
through ngate from an upstream (proxy_pass, fastcgi_pass).

nginx runs the range filter on every response, but it acts only when the content handler allowed
ranges (r->allow_ranges): the static module and cache hits do (static/handler.py and
cache/serve.py send those from the file, with static/ranges.py's parser shared with this module);
an upstream response only with proxy_force_ranges / fastcgi_force_ranges, or while it is being
cached. Otherwise the upstream's own Accept-Ranges passes unchanged and Range is ignored
(ngx_http_upstream_copy_allow_ranges).

`header(ctx, conf, out, single)` is ngx_http_range_header_filter on a 200 whose length is known
and whose body no other filter changes (a filter that drops Content-Length switches ranges off,
as ngx_http_clear_accept_ranges): it returns

    None              no ranges: `Accept-Ranges: bytes` is added (the header did not ask, If-Range
                      did not match, more ranges than allowed, or they cover more than the body)
    NOT_SATISFIABLE   416 with `Content-Range: bytes */len` (the caller ends the exchange)
    SingleRange       206 with Content-Range and the range's length: the body filter

For a streamed upstream response nginx allows one range only (r->single_range): a multipart
answer needs the whole body in one buffer, which only a cached file gives. SingleRange therefore
keeps no bytes: it passes the part of each read that falls in the range and drops the rest.
"""
from __future__ import annotations

NOT_SATISFIABLE = "416"     # header()'s answer for a 416 (static/ranges.py's parse says the same)
__all__ = ("NOT_SATISFIABLE", "SingleRange", "header", "if_range_ok", "not_satisfiable_headers")

_DROPPED_ON_416 = frozenset({b"etag", b"last-modified", b"accept-ranges", b"content-encoding"})


def if_range_ok(value: bytes, etag: bytes | None, last_modified: bytes | None) -> bool:
    """nginx's If-Range test: a value ending in `"` is compared with the ETag byte for byte;
    otherwise it is a date, equal to Last-Modified's (both parsed; no Last-Modified: no match)."""
    if len(value) >= 2 and value[-1:] == b'"':
        return etag is not None and value == etag
    if last_modified is None:
        return False
    from ngate.filters.not_modified import http_time
    lm = http_time(last_modified)
    return lm is not None and http_time(value) == lm


def header(ctx, conf, out, single: bool):
    """ngx_http_range_header_filter for an upstream's 200 (see the module's docstring)."""
    size = out.content_length
    if size is None or out.status != 200 or ctx.main is not None or conf.max_ranges == 0:
        return None
    from ngate.static import ranges     # not at import: ngate.static imports the proxy engine
    hdr = ctx.hdr
    value = hdr.get(b"range")
    parsed = None
    if value is not None and len(value) >= 7 and value[:6].lower() == b"bytes=":
        if_range = hdr.get(b"if-range")
        if if_range is None or if_range_ok(if_range.strip(), out.get(b"etag"),
                                           out.last_modified or out.get(b"last-modified")):
            parsed = ranges.parse(value.decode("latin-1"), size,
                                  1 if single else conf.max_ranges)
    if parsed is None:
        out.headers.append((b"Accept-Ranges", b"bytes"))
        return None
    if parsed is ranges.NOT_SATISFIABLE:
        return NOT_SATISFIABLE
    if len(parsed) != 1:            # only with single False: not for a streamed response
        out.headers.append((b"Accept-Ranges", b"bytes"))
        return None
    start, end = parsed[0]
    out.status = 206
    out.headers.append((b"Content-Range", b"bytes %d-%d/%d" % (start, end - 1, size)))
    out.content_length = end - start
    return SingleRange(start, end)


def not_satisfiable_headers(headers: list, size: int) -> list:
    """The headers nginx keeps on the 416 it sends instead (ngx_http_range_not_satisfiable, then
    the special response: no validators, no Accept-Ranges), with Content-Range last."""
    kept = [(n, v) for n, v in headers if n.lower() not in _DROPPED_ON_416]
    kept.append((b"Content-Range", b"bytes */%d" % size))
    return kept


class SingleRange:
    """The body filter of one range [start, end) over a streamed body (no bytes held)."""
    __slots__ = ("start", "end", "offset")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.offset = 0

    def data(self, data: bytes) -> bytes:
        s = self.offset
        e = self.offset = s + len(data)
        if e <= self.start or s >= self.end:
            return b""
        if s >= self.start and e <= self.end:
            return data
        return data[max(self.start - s, 0):min(self.end, e) - s]

    def flush(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""
