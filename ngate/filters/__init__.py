"""Response filters: nginx's header and body filter chains, after the content handler and before
the connection writes.

A location's filters are chosen when the config is compiled (filters/config.py): LocConf.filters
is a tuple of filter objects in nginx's order, or None. A location without filters pays one
attribute test per response and nothing per body chunk.

Order (nginx's ngx_modules order, the first listed sees the response first):

    gunzip      inflate a gzip body for a client that does not accept gzip (gunzip on)
    addition    add_before_body / add_after_body (filters/addition.py)
    sub_filter  replace strings in the body (filters/sub.py)
    charset     recode with source_charset / override_charset (filters/charset.py); without
                them `charset` only changes Content-Type, applied with the head
    ssi         SSI commands (filters/ssi.py)
    [postpone]  subrequest bodies in order (filters/postpone.py)
    gzip        deflate for a client that accepts it (gzip, gzip_types, gzip_proxied ...)
    trailers    add_trailer: a response expecting trailers goes chunked (filters/trailers.py)

(nginx's order: gunzip, addition, sub, charset, ssi, postpone, gzip.)

The content handlers (proxy/http_proxy.py for HTTP and FastCGI, static/handler.py) call
`header_filter` with the response's head, before building it; it returns the body filter to run
on every body chunk (or None). A body filter has:

    data(bytes) -> bytes     transformed bytes (may be b"": held in the compressor)
    flush() -> bytes         everything held so far (the upstream flushed: proxy_buffering off)
    finish() -> bytes        the end of the body

and may have (gunzip, whose output per call is bounded):

    pending: bool            more output is ready without new input: call more()
    more() -> bytes          the next bounded step (the content handler calls it as the client
                             takes the output, and reads the upstream only once it is False)

Filters change `HeadersOut` in place: Content-Encoding, ETag made weak, Content-Length dropped
(content_length None), Accept-Ranges dropped, and `vary` for gzip_vary (written where nginx's
header filter writes it: after Connection, before every other header).
"""
from __future__ import annotations

VARY = (b"Vary", b"Accept-Encoding")


def filter_types(types) -> frozenset | None:
    """A *_types list (ssi_types, sub_filter_types, gzip_types, addition_types) as
    content_type_in() takes it: None for `*`."""
    return None if b"*" in types else frozenset(types)


def content_type_in(types: frozenset | None, content_type) -> bool:
    """nginx's ngx_http_test_content_type with a *_types hash: `*` (None) takes any response,
    one without Content-Type too; otherwise the media type (before `;`, lower case) must be
    one of `types`."""
    if types is None:
        return True
    return bool(content_type) and content_type.split(b";", 1)[0].strip().lower() in types


class HeadersOut:
    """A response head on its way through the header filters (nginx's r->headers_out)."""
    __slots__ = ("status", "content_type", "content_length", "last_modified", "headers", "vary",
                 "flush", "trailers", "trailers_length")

    def __init__(self, status: int, content_type, content_length, last_modified,
                 headers: list) -> None:
        self.status = status
        self.content_type = content_type        # bytes or None
        self.content_length = content_length    # int or None
        self.last_modified = last_modified      # bytes or None
        self.headers = headers                  # [(name, value)], changed in place
        self.vary = False
        self.flush = False                      # flush the body filters per upstream read
        self.trailers = False                   # add_trailer dropped a known Content-Length
        self.trailers_length = None             # ... this one: the range filter still sees it

    def find(self, lname: bytes):
        """The index of the first header named lname (lower-case), or -1."""
        for i, (n, _) in enumerate(self.headers):
            if n.lower() == lname:
                return i
        return -1

    def get(self, lname: bytes):
        i = self.find(lname)
        return None if i < 0 else self.headers[i][1]

    def remove(self, lname: bytes) -> None:
        self.headers[:] = [h for h in self.headers if h[0].lower() != lname]

    def weak_etag(self) -> None:
        """ngx_http_weak_etag: `"x"` becomes `W/"x"`; an ETag not in quotes is dropped."""
        i = self.find(b"etag")
        if i < 0:
            return
        name, value = self.headers[i]
        if len(value) > 2 and value[:2] == b"W/":
            return
        if value[:1] != b'"':
            del self.headers[i]
            return
        self.headers[i] = (name, b"W/" + value)


class Chain:
    """Several body filters, applied in order."""
    __slots__ = ("filters",)

    def __init__(self, filters: list) -> None:
        self.filters = filters

    def data(self, data: bytes) -> bytes:
        for f in self.filters:
            data = f.data(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for f in self.filters:
            data = f.data(data) + f.flush() if data else f.flush()
        return data

    def finish(self) -> bytes:
        data = b""
        for f in self.filters:
            data = f.data(data) + f.finish() if data else f.finish()
        return data

    @property
    def pending(self) -> bool:
        """The first filter (gunzip, the only one that bounds its output) has more to give."""
        return getattr(self.filters[0], "pending", False)

    def more(self) -> bytes:
        data = self.filters[0].more()
        for f in self.filters[1:]:
            data = f.data(data)
        return data


def header_filter(ctx, filters: tuple, out: HeadersOut):
    """Run the header filters; the body filter for this response, or None.

    When a filter postpones output (ssi, addition: subrequests), the body filter is a
    filters/postpone.py PostponeChain: the content handler must `attach` its output path."""
    bodies = []
    postpone = False
    for f in filters:
        b = f.header(ctx, out)
        if b is not None:
            bodies.append(b)
            postpone = postpone or getattr(b, "postpones", False)
    if out.vary:
        out.headers.insert(0, VARY)
    if not bodies:
        return None
    if postpone:
        from ngate.filters.postpone import PostponeChain
        return PostponeChain(ctx, bodies)
    return bodies[0] if len(bodies) == 1 else Chain(bodies)
