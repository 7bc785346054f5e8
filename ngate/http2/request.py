"""An HTTP/2 request (a HEADERS frame's header list) -> a RequestContext for the phases.

As nginx's ngx_http_v2_state_header_complete / ngx_http_v2_construct_request_line: the request
line is ":method :path HTTP/2.0"; ":authority" stands for Host when no host header came;
several cookie headers are joined with "; "; header names nginx ignores (underscores,
invalid characters) are dropped by the same rules as HTTP/1.x. Sizes are the HPACK decoder's
(compression.py), faults nginx resets or answers 400 are fields.py's. The parse of a header
list depends on the list and the header settings alone: small ones are kept (_PARSED)."""
from __future__ import annotations

from types import MappingProxyType

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
# [underscores << 1 | ignore_invalid] -> {header list: _parse's result}: the same lists recur
# (on a connection and across them, as HTTP/1.x heads do: server/request_head.py's head_table);
# as there, the requests of a list share its header tuple and read-only header mapping (nothing
# writes to ctx.headers or ctx.hdr; an extended CONNECT takes copies). Lists of up to
# _PARSED_FIELDS fields, _PARSED_SIZE bytes of values, at most _PARSED_MAX of them (emptied
# when full).
_PARSED = [{}, {}, {}, {}]
_PARSED_MAX = 1024
_PARSED_SIZE = 1024
_PARSED_FIELDS = 32


def start(conn, stream, header_list, ended: bool, block_size: int) -> None:
    listen = conn.listen
    last = conn.last_parse
    if last is not None and last[0] is header_list:
        # the header list the decoder kept for a repeated block (compression.py's memo): the
        # same object as the connection's previous stream (held here, so `is` cannot be
        # fooled), hence the same parse, without hashing the list again for _PARSED
        parsed = last[1]
    else:
        parsed = _parsed(conn, stream, listen, header_list)
        if parsed is None:
            return          # refused (_refuse)
    method, path, headers, hdr, protocol, _, plain = parsed
    if plain:
        # the usual request (no :protocol, no content-length): the steps below that apply
        # (Http2Connection.on_headers has a copy for a repeated header list)
        ctx = RequestContext(stream, method, path, "2.0", headers, hdr)
        ctx.http_minor = 2
        ctx.keep_alive = False
        ctx.request_length = block_size or sum(len(n) + len(v) + 4 for n, v in header_list)
        stream.ctx = ctx
        stream.current = req = Request(ctx)
        if ended:
            req.complete = True
        else:
            ctx.body_chunked = True
        stats = conn.runtime.stats
        if stats is not None:
            stats.request_started(ctx)
        if conn.checks:
            return conn.start_stream(ctx, req)
        return phases.start_request(ctx, req)
    refusal = None
    if protocol is not None:
        # (never kept in _PARSED) the headers of an HTTP/1.1 upgrade are added: copies
        headers = list(headers)
        hdr = dict(hdr)
        stream, method, refusal = websocket.extended_connect(conn, stream, protocol, headers, hdr)
        method = method.decode("latin-1")
    ctx = RequestContext(stream, method, path, "2.0", headers, hdr)
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
    if listen.http2_off or conn.tls is not None and listen.ssl_context.verifies:
        return conn.start_stream(ctx, req)     # TLS client certificates; 421 (http2 off)
    phases.start_request(ctx, req)


def _parsed(conn, stream, listen, header_list):
    """_parse's result for the header list, from _PARSED when it was seen before; kept as the
    connection's last parse when the list is the decoder's memo (a tuple) and small."""
    table = _PARSED[listen.underscores << 1 | listen.ignore_invalid]
    parsed = key = None
    if len(header_list) <= _PARSED_FIELDS:
        key = header_list if header_list.__class__ is tuple else tuple(header_list)
        parsed = table.get(key)
    if parsed is None:
        flags = (listen.underscores or not listen.ignore_invalid, listen.ignore_invalid)
        parsed = _parse(conn, stream, header_list, flags)
        if parsed is None:
            return None
        if parsed[5] and key is not None:
            if len(table) >= _PARSED_MAX:
                table.clear()
            table[key] = parsed
    if parsed[5] and header_list.__class__ is tuple and key is not None:
        conn.last_parse = (header_list, parsed)
    return parsed


def _parse(conn, stream, header_list, flags: tuple):
    """(method, path, headers, hdr, :protocol, keep?, plain?) of a header list nginx takes, as a
    function of the list and the header settings alone (start keeps it in _PARSED when
    `keep`: a small list, no extended CONNECT; `plain`: no :protocol, no content-length, start's
    usual case); None when it was refused (_refuse)."""
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
                _refuse(conn, stream, *fields.check(header_list))
                return None
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
    joined = b" ".join(values)
    if odd or scheme is None or method is None or path is None or b"\0" in joined \
            or b"\n" in joined or b"\r" in joined:
        fault = fields.check(header_list)
        if fault is not None:
            _refuse(conn, stream, *fault)
            return None
    if cookies is not None:
        cookie = b"; ".join(cookies)
        headers.append((b"cookie", cookie))
        hdr[b"cookie"] = cookie
    if authority is not None and b"host" not in hdr:
        headers.insert(0, (b"host", authority))
        hdr[b"host"] = authority
    keep = protocol is None and len(joined) <= _PARSED_SIZE
    return ((method or b"GET").decode("latin-1"), (path or b"").decode("latin-1"),
            tuple(headers), MappingProxyType(hdr), protocol, keep,
            protocol is None and b"content-length" not in hdr)


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
