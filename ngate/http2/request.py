"""An HTTP/2 request (a HEADERS frame's header list) -> a RequestContext for the phases.

As nginx's ngx_http_v2_state_header_complete / ngx_http_v2_construct_request_line: the request
line is ":method :path HTTP/2.0"; ":authority" stands for Host when no host header came;
several cookie headers are joined with "; "; header names nginx ignores (underscores,
invalid characters) are dropped by the same rules as HTTP/1.x. Sizes are the HPACK decoder's
(compression.py), faults nginx resets or answers 400 are fields.py's."""
from __future__ import annotations

from ngate.http2.frames import ErrorCodes

from ngate.http2 import fields, websocket
from ngate.observability import error_log
from ngate.http import phases
from ngate.http.context import RequestContext
from ngate.server.connection import Request, header_key

_KEYS: dict = {}    # (underscores, ignore_invalid) -> {name: its key, b"" if ignored}, for
_KEYS_MAX = 1024    # names fields.py takes: the same names recur from stream to stream
_METHODS = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"})
_SCHEMES = frozenset({b"http", b"https"})       # values fields.py takes (others: it decides)


def start(conn, stream, header_list: list, ended: bool, block_size: int) -> None:
    listen = conn.listen
    flags = (listen.underscores or not listen.ignore_invalid, listen.ignore_invalid)
    keys = _KEYS.get(flags)
    if keys is None:
        keys = _KEYS[flags] = {}
    method = path = authority = protocol = None
    headers = []
    hdr = {}
    cookies = None
    scheme = None
    odd = False         # a pseudo-header the quick rules below do not clear: fields.check's
    values = []
    for field in header_list:
        name, value = field
        values.append(value)
        key = keys.get(name)
        if key is None:
            if name[:1] == b":":
                if name == b":method":
                    odd = odd or method is not None or value not in _METHODS
                    method = value
                elif name == b":path":
                    odd = odd or path is not None or not fields.path_ok(value)
                    path = value
                elif name == b":scheme":
                    odd = odd or scheme is not None or value not in _SCHEMES
                    scheme = value
                elif name == b":authority":
                    authority = value
                else:
                    odd = True
                    if name == b":protocol":
                        protocol = value    # an extended CONNECT (RFC 8441): fields.py checks it
                continue
            if not fields.name_ok(name):
                return _refuse(conn, stream, *fields.check(header_list))
            # nginx's HTTP/2 keeps a name it finds invalid unless ignore_invalid_headers is on
            key = header_key(name, flags[0], flags[1])
            if len(keys) < _KEYS_MAX and len(name) <= 64:
                keys[name] = key
        if not key:
            continue
        if key == b"cookie":
            if cookies is None:
                cookies = [value]
            else:
                cookies.append(value)
            continue
        headers.append(field)
        if key not in hdr:
            hdr[key] = value
    # fields.py's checks: names above, values all at once, the usual pseudo-headers inline;
    # anything else, and fields.check() finds the first fault as it would alone
    if odd or scheme is None or method is None or path is None or fields.values_fault(values):
        fault = fields.check(header_list)
        if fault is not None:
            return _refuse(conn, stream, *fault)
    if cookies is not None:
        joined = b"; ".join(cookies)
        headers.append((b"cookie", joined))
        hdr[b"cookie"] = joined
    if authority is not None and b"host" not in hdr:
        headers.insert(0, (b"host", authority))
        hdr[b"host"] = authority
    refusal = None
    if protocol is not None:
        stream, method, refusal = websocket.extended_connect(conn, stream, protocol, headers, hdr)
    ctx = RequestContext(stream, (method or b"GET").decode("latin-1"),
                         (path or b"").decode("latin-1"), "2.0", headers, hdr)
    ctx.http_minor = 2          # no chunked framing, no HTTP/1.1 Host rule
    ctx.keep_alive = False
    # nginx: the header block
    ctx.request_length = block_size or sum(len(n) + len(v) + 4 for n, v in header_list)
    stream.ctx = ctx
    req = Request(ctx)
    stream.current = req
    if protocol is not None:
        req.complete = refusal is None      # refused: reset after the answer (not read)
        if refusal is not None:
            ctx.server = listen.default_server
            return phases.reject_request(ctx, 400, refusal)
        req.upgrade = True      # DATA frames are the tunnel's (websocket.py), not a body
        stats = conn.runtime.stats
        if stats is not None:
            stats.request_started(ctx)
        return conn.start_stream(ctx, req)
    cl = hdr.get(b"content-length")
    if cl is not None:
        if not cl.isdigit():
            req.complete = True
            ctx.server = listen.default_server
            return phases.reject_request(ctx, 400, 'client sent invalid "Content-Length" header')
        ctx.content_length_in = int(cl)
    if ended:
        req.complete = True
    elif cl is None:
        ctx.body_chunked = True     # length unknown: the proxy buffers it (Content-Length)
    stats = conn.runtime.stats
    if stats is not None:
        stats.request_started(ctx)
    conn.start_stream(ctx, req)


def _refuse(conn, stream, how: str, message: str) -> None:
    """A header list nginx does not take (fields.py): the stream reset, or a 400."""
    if how == fields.RESET:
        error_log.info(message + ", client: " + conn.remote_addr, conn.number)
        return stream.reset(ErrorCodes.PROTOCOL_ERROR)
    ctx = RequestContext(stream, "GET", "/", "2.0", [], {})
    ctx.http_minor = 2
    ctx.keep_alive = False
    stream.ctx = ctx
    req = Request(ctx)
    req.complete = True
    stream.current = req
    server = ctx.server = conn.listen.default_server
    ctx.conf = server.conf
    error_log.info(message + ", client: " + conn.remote_addr, conn.number)
    return phases.finalize(ctx, 400)        # the server's error_page 400 applies, as nginx
