"""add_trailer: response trailers, as nginx's ngx_http_headers_filter_module and its chunked and
HTTP/2 filters send them.

Header stage (TrailersFilter.header, last in the location's filter chain): for the main request
whose response has a body (not HEAD, 204, 304, 1xx), when one of the location's add_trailer
items applies (a status add_header also adds on, or `always`), the response expects trailers
(ctx.trailers). An HTTP/1.1 response is then sent chunked even when its length is known, as
ngx_http_chunked_header_filter does (unless `chunked_transfer_encoding off`: no trailers then);
an HTTP/1.0 response gets none; an HTTP/2 response keeps its Content-Length.

End of the body: the values are evaluated when the response ends (so $body_bytes_sent,
$upstream_response_length, $sent_trailer_* see the finished response), in order, an empty
value sends nothing:
  HTTP/1.1  last_chunk(ctx): `0\\r\\nName: value\\r\\n...\\r\\n` instead of the plain last chunk;
  HTTP/2    h2_fields(ctx): the trailing HEADERS frame (END_STREAM) the stream sends after its
            DATA frames (http2/stream.py).
"""
from __future__ import annotations

from ngate.http1 import response as resp

_SAFE = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})   # as add_header's
_NO_BODY = frozenset({204, 304})


class Trailers:
    """The trailers one response expects: the items that apply, then what they rendered."""
    __slots__ = ("items", "out")

    def __init__(self, items: tuple) -> None:
        self.items = items
        self.out = None         # [(name, value)] once rendered

    def render(self, ctx) -> list:
        out = self.out
        if out is None:
            self.out = out = []
            for h in self.items:        # in order: $sent_trailer_ sees the earlier ones
                v = h.value.render(ctx)
                if v:
                    out.append((h.name.encode("latin-1"), v.encode("latin-1", "replace")))
        return out


class _Pass:
    """The body filter of a response made chunked for its trailers: the bytes unchanged (its
    presence is what sends a known-length response through the chunked path)."""
    __slots__ = ()

    def data(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""


_PASS = PASS = _Pass()     # PASS: the body filter when add_trailer alone took the response


class TrailersFilter:
    __slots__ = ("items",)

    def __init__(self, items: tuple) -> None:
        self.items = items

    def header(self, ctx, out):
        status = out.status
        if ctx.main is not None or ctx.method == "HEAD" or status < 200 or status in _NO_BODY:
            return None
        if status in _SAFE:
            items = self.items
        else:
            items = tuple(h for h in self.items if h.always)
            if not items and ctx.trailers is None:
                return None     # else a 416 for a 200 that expected them: r->expect_trailers
        if ctx.http_version != "2.0" and (
                ctx.http_minor != 1 or not ctx.conf.chunked_transfer_encoding):
            return None
        ctx.trailers = Trailers(items)
        if ctx.resp_headers is None:
            ctx.resp_headers = out.headers      # for $sent_http_* in the trailers
        if ctx.http_version == "2.0":
            return None                         # Content-Length stays; a HEADERS frame ends it
        if out.content_length is not None:
            out.trailers_length = out.content_length    # nginx's range header filter runs
            out.content_length = None                   # before its chunked filter drops it
            out.trailers = True                 # the length was known: ranges still allowed
        return _PASS


def last_chunk(ctx) -> bytes:
    """The end of a chunked HTTP/1.1 body: with the trailers when the response expects them."""
    t = ctx.trailers
    if t is None or ctx.http_version == "2.0":
        return resp.LAST_CHUNK
    fields = t.render(ctx)
    if not fields:
        return resp.LAST_CHUNK
    return b"0\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in fields) + b"\r\n"


def h2_fields(ctx):
    """The trailing HEADERS of an HTTP/2 response (lower-case names), or None."""
    t = ctx.trailers
    if t is None:
        return None
    fields = t.render(ctx)
    return [(n.lower(), v) for n, v in fields] or None


def sent_trailer(ctx, key: bytes):
    """$sent_trailer_name: a trailer this response has rendered so far."""
    t = ctx.trailers
    if t is None or t.out is None:
        return None
    for n, v in t.out:
        if n.lower() == key:
            return v.decode("latin-1")
    return None
