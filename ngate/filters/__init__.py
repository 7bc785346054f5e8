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


class WholeType(bytes):
    """A Content-Type from `types` or `default_type` with a `;` in it: nginx tests it whole
    against *_types (ngx_http_set_content_type sets content_type_len to its length), where an
    upstream's is tested up to its charset parameter (ngx_http_upstream_copy_content_type)."""
    __slots__ = ()


def split_type(ctype: bytes):
    """(the type without a charset parameter, the charset or None), as nginx's upstream
    module splits a Content-Type: the type ends at the `;` of the first parameter that is
    `charset=` (spaces skipped after the `;`), else it is the whole value."""
    i = 0
    while True:
        semi = ctype.find(b";", i)
        if semi < 0:
            return ctype, None
        p = semi + 1
        while p < len(ctype) and ctype[p] == 0x20:
            p += 1
        if ctype[p:p + 8].lower() == b"charset=":
            cs = ctype[p + 8:]
            if cs[:1] == b'"':
                cs = cs[1:]
            if cs[-1:] == b'"':
                cs = cs[:-1]
            return ctype[:semi], cs
        i = p


def content_type_in(types: frozenset | None, content_type) -> bool:
    """nginx's ngx_http_test_content_type with a *_types hash: `*` (None) takes any response,
    one without Content-Type too; otherwise the type in lower case must be one of `types`: a
    proxied one up to its charset parameter (`text/html; charset=utf-8` is `text/html`, but
    `text/html; foo=bar` is itself), a local one (WholeType) whole."""
    if types is None:
        return True
    if not content_type:
        return False
    if b";" in content_type and content_type.__class__ is not WholeType:
        content_type = split_type(content_type)[0]
    return content_type.lower() in types


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
