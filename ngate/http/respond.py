"""Answers the HTTP core makes itself: status pages, redirects, `return`'s bodies, and the
headers every answer carries (add_header, userid, keep-alive, Location made absolute).

`send_response` is the one way a whole response ngate generated reaches the front end: it builds
the head, writes head and body through `ctx.conn.write` and ends with `ctx.conn.finish_request`
(the front end's decision: keep-alive, next request, or close). Nothing here knows a socket.
"""
from __future__ import annotations

from time import time as _time

from ngate.filters import HeadersOut, WholeType, header_filter, postpone, trailers
from ngate.filters.validators import ADD_HEADER_CODES
from ngate.http import msie
from ngate.http.log import log_request
from ngate.http.user_agent import MSIE6, SAFARI, browser, request_browser
from ngate.http1 import charset
from ngate.http1 import response as resp
from ngate.http1.response import DATE as _DATE
from ngate.http2.head import response_block, response_fields
from ngate.routing import userid

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# nginx drops keep-alive after these (ngx_http_special_response_handler: not 494, whose real
# cases, a refused head, have no keep-alive anyway; 408 terminates, TERMINATE_CODES)
CLOSE_CODES = frozenset({400, 413, 414, 495, 496, 497, 500, 501})
# finalized with these, nginx sends nothing and closes (444: the rewrite module's; 408 and 499:
# ngx_http_finalize_request's ngx_http_terminate_request), the status logged
TERMINATE_CODES = frozenset({444, 408, 499})
TEXT_HTML = b"text/html"


_MIME_URIS_MAX = 256     # URIs whose Content-Type a location keeps (conf.mime)


def content_type(conf, uri: str) -> bytes:
    """The MIME type for the URI's extension (types, case-insensitive), else default_type.
    A function of the location's types and default_type and the URI alone: a location
    compiled by http/modules.py bind keeps its answers per URI in `conf.mime` (bounded)."""
    known = conf.mime
    if known is None:
        return _content_type(conf, uri)
    mime = known.get(uri)
    if mime is None:
        mime = _content_type(conf, uri)
        if len(known) >= _MIME_URIS_MAX:
            known.clear()
        known[uri] = mime
    return mime


def _content_type(conf, uri: str) -> bytes:
    slash = uri.rfind("/")
    dot = uri.rfind(".")
    if dot > slash and conf.types:
        mime = conf.types.get(uri[dot + 1:].lower())
        if mime is not None:
            return mime.encode("latin-1") if ";" not in mime else WholeType(mime.encode("latin-1"))
    mime = conf.default_type
    return mime.encode("latin-1") if ";" not in mime else WholeType(mime.encode("latin-1"))


def send_status(ctx, status: int) -> None:
    """nginx's built-in status page (or an empty body for codes that have none)."""
    if status in TERMINATE_CODES:
        ctx.status = status
        ctx.keep_alive = False
        ctx.conn.transport.close()      # first: an HTTP/2 stream resets itself unless closing
        ctx.conn.closing = True
        log_request(ctx)
        return
    conf = ctx.conf
    tokens = conf.server_tokens if conf is not None else True
    body = resp.status_page(status, tokens)
    if status in CLOSE_CODES:
        ctx.keep_alive = False
    if body is not None and conf is not None:   # msie_padding, msie_refresh (http/msie.py)
        if status >= 400:
            if conf.msie_padding:
                body = msie.padded(ctx, body)
        elif conf.msie_refresh and status in msie.REFRESH_CODES and msie.is_msie(ctx):
            return msie.send_refresh(ctx, ctx.location_out or "")
    wire = resp.page_status(status)
    send_response(ctx, wire, body if body is not None else b"",
                  TEXT_HTML if body is not None else None)


def send_redirect(ctx, status: int, location: str, refresh: bool = False) -> None:
    """A redirect nginx makes itself; `refresh`: msie_refresh applies whatever the code (an
    error_page to a URL), else to a 301 or 302 only (http/msie.py)."""
    ctx.status_override = None          # nginx sends a redirect as a special response (err_status)
    if ctx.rare:                        # and clears an earlier Location (ngx_http_clear_location)
        ctx.location_out = None         # (a class default until set: http/context.py _GUARDED)
    if ctx.conf is not None and ctx.conf.msie_refresh \
            and (refresh or status in msie.REFRESH_CODES) and msie.is_msie(ctx):
        return msie.send_refresh(ctx, location)
    body = resp.status_page(status, ctx.conf.server_tokens if ctx.conf else True)
    if location.startswith("/"):
        send_response(ctx, status, body or b"", TEXT_HTML if body else None,
                      location=absolute_location(ctx, location).encode("latin-1", "replace"))
    else:
        send_response(ctx, status, body or b"", TEXT_HTML if body else None,
                      extra=((b"Location", location.encode("latin-1", "replace")),))


def absolute_location(ctx, location: str) -> str:
    """nginx's header filter on a Location that starts with "/": with absolute_redirect on, the
    scheme, the host (server_name_in_redirect: the server's first name; else the request's
    host) and the listening port unless it is the scheme's own or port_in_redirect is off."""
    conf = ctx.conf
    if not location.startswith("/") or (conf is not None and not conf.absolute_redirect):
        return location
    conn = ctx.conn
    scheme = conn.scheme
    port = conn.server_port
    if conf is not None and conf.server_name_in_redirect and ctx.server is not None:
        host = ctx.server.names.first
    else:
        host = ctx.host or conn.server_addr
    if conf is not None and not conf.port_in_redirect:
        port = ""
    default = "443" if scheme == "https" else "80"
    hostport = host if (not port or port == default) else f"{host}:{port}"
    return f"{scheme}://{hostport}{location}"


_PAGE_DROPS = frozenset({b"accept-ranges"})


def carry_accel_headers(ctx, headers: list, content_type, skip=frozenset()):
    """The headers of an upstream's X-Accel-Redirect response that nginx keeps for the new
    response: its Content-Type replaces the new one's; the others come first."""
    carried = []
    for name, value in ctx.accel_headers:
        low = name.lower()
        if low == b"content-type":
            content_type = value
        elif low not in skip:
            carried.append((name, value))
    headers[:0] = carried
    return content_type


def send_response(ctx, status: int, body: bytes, content_type: bytes | None,
                  location: bytes | None = None, extra=(), last_modified: bytes | None = None
                  ) -> None:
    """A complete response generated by ngate (return, status pages, redirects)."""
    if ctx.status_override is not None:
        status = ctx.status_override
        ctx.status_override = None
    conn = ctx.conn
    if conn.closing:
        ctx.status = status
        log_request(ctx)
        return
    ctx.status = status
    conf = ctx.conf
    if not extra and location is None and conf is not None and conf.plain_head \
            and (not ctx.rare or ctx.accel_headers is None and ctx.www_authenticate is None
                 and ctx.location_out is None):
        if ctx.http_minor == 2:     # (first: a short jump over it keeps this compare
            if not ctx.keep_alive:  # CPython's specialised one; a long one needs EXTENDED_ARG)
                # an HTTP/2 stream (no keep-alive of its own: check_keepalive has nothing to do):
                # what the rest of this function would pass to _send_h2 for a plain head
                no_body = status in resp.NO_BODY_STATUSES
                return _send_h2(ctx, conn, status, body, no_body or ctx.method == "HEAD", conf,
                                content_type, None if no_body else len(body), last_modified, None,
                                False, ())
        else:
            # HTTP/1.x (a `return`, a status page): the head in build_head's order, written
            # out here (check_keepalive and _emit inlined); the head around its Date line is a
            # function of the key below alone, kept in _PLAIN_HEADS
            if ctx.keep_alive and (     # check_keepalive's tests that vary from request to
                    conf.ka_full or ctx.start > conn.ka_young   # request; the whole check when
                    or conn.requests >= conf.keepalive_requests     # one holds, or the conf's
                    or ctx.method == "POST"):   # may end it (ka_full: keepalive_timeout 0,
                check_keepalive(ctx)            # safari, keepalive_time <= KA_YOUNG; msie6: POST;
                                                # ka_young: KA_YOUNG after the accept, or -inf
                                                # once the worker drains, KA_YOUNG's docstring)
            no_body = status in resp.NO_BODY_STATUSES
            key = (status, conf.server_tokens, content_type, -1 if no_body else len(body),
                   last_modified, conf.keepalive_line if ctx.keep_alive else resp.CONN_CLOSE)
            around = _PLAIN_HEADS.get(key)
            if around is None:
                around = _plain_head(*key)
                if len(_PLAIN_HEADS) >= _PLAIN_HEADS_MAX:
                    _PLAIN_HEADS.clear()
                _PLAIN_HEADS[key] = around
            ctx.head_sent = True
            now = _time()           # resp.DATE.get(), written out: its second as a float
            date = _date_line if _date_from <= now < _date_to else _date()   # window (no int())
            if no_body or ctx.method == "HEAD":
                head = around[0] + date + around[1]
                conn.write(head)
                ctx.bytes_sent = len(head)
            else:
                out = b"".join((around[0], date, around[1], body))
                conn.write(out)
                ctx.body_bytes_sent = len(body)
                ctx.bytes_sent = len(out)
            conn.finish_request(ctx)
            return
    headers = list(extra)
    if ctx.rare:        # (http/context.py _GUARDED: a module stored one of them)
        if ctx.accel_headers is not None:
            if status < 300:
                content_type = carry_accel_headers(ctx, headers, content_type)
            else:   # a status page keeps text/html, loses Accept-Ranges (nginx's special response)
                carry_accel_headers(ctx, headers, content_type, skip=_PAGE_DROPS)
        if ctx.www_authenticate is not None:
            headers.append((b"WWW-Authenticate",
                            ctx.www_authenticate.encode("latin-1", "replace")))
        if ctx.location_out is not None and location is None:
            loc_out = ctx.location_out
            if loc_out.startswith("/"):
                location = absolute_location(ctx, loc_out).encode("latin-1", "replace")
            else:
                headers.append((b"Location", loc_out.encode("latin-1", "replace")))
    if conf is not None and (conf.headers.add_header or conf.userid is not None):
        headers.extend(add_headers(ctx, conf, status))
    head_only = ctx.method == "HEAD" or status in resp.NO_BODY_STATUSES
    length = None if status in resp.NO_BODY_STATUSES else len(body)
    chunked = False
    if conf is not None and conf.filters is not None and length is not None:
        body, length, content_type, last_modified, chunked = _filtered(
            ctx, conf, status, body, content_type, last_modified, headers, head_only)
        if body.__class__ is list:          # subrequests still run (filters/postpone.py)
            return send_postponed(ctx, conf, status, body, content_type, last_modified,
                                   location, headers)
    check_keepalive(ctx)
    if conf is not None and conf.charset.charset:
        content_type = charset.content_type(conf, status, content_type, ctx)
    if ctx.http_minor == 2:     # an HTTP/2 stream takes the head as fields (http2/head.py)
        return _send_h2(ctx, conn, status, body, head_only, conf, content_type, length,
                        last_modified, location, chunked, headers)
    head = resp.build_head(
        status, 1, server_tokens=conf.server_tokens if conf is not None else True,
        content_type=content_type, content_length=length,
        last_modified=last_modified, location=location, chunked=chunked,
        connection=(conf.keepalive_line if conf is not None else resp.CONN_KEEPALIVE)
        if ctx.keep_alive else resp.CONN_CLOSE,
        headers=headers)
    _emit(ctx, conn, head, body, head_only)


def _emit(ctx, conn, head: bytes, body: bytes, head_only: bool) -> None:
    """Write a whole generated response (head, and body unless head_only) and end the request."""
    ctx.head_sent = True
    if head_only:
        conn.write(head)
        ctx.bytes_sent = len(head)
    else:
        conn.write(head + body)
        ctx.body_bytes_sent = len(body)
        ctx.bytes_sent = len(head) + len(body)
    conn.finish_request(ctx)


_PLAIN_HEADS: dict = {}
_PLAIN_HEADS_MAX = 256
# resp.DATE's line and the second it holds, [_date_from, _date_to): send_response compares the
# float time.time() with them (int(time.time()) is a type call, ~0.8k instructions), as
# static/handler.py plain_file does with its own copy
_date_line = b""
_date_from = _date_to = 0.0


def _date() -> bytes:
    """resp.DATE.get(), and the second it holds as send_response's [_date_from, _date_to)."""
    global _date_from, _date_to, _date_line
    _date_line = _DATE.get()
    _date_from = float(_DATE.second)
    _date_to = _date_from + 1.0
    return _date_line


def _plain_head(status: int, server_tokens: bool, content_type, length: int, last_modified,
                connection: bytes) -> tuple[bytes, bytes]:
    """send_response's plain HTTP/1.x head before and after its Date line (length -1: no Content-Length)."""
    before = (resp.STATUS_LINES_11.get(status) or resp.status_line(status, 1)) \
        + (resp.SERVER_HEADER_TOKENS if server_tokens else resp.SERVER_HEADER_BARE)
    parts = []
    if content_type is not None:
        parts.append(b"Content-Type: " + content_type + b"\r\n")
    if length >= 0:
        parts.append(b"Content-Length: %d\r\n" % length)
    if last_modified is not None:
        parts.append(b"Last-Modified: " + last_modified + b"\r\n")
    parts.append(connection)
    parts.append(b"\r\n")
    return before, b"".join(parts)


def _send_h2(ctx, conn, status, body, head_only, conf, content_type, length, last_modified,
             location, chunked, headers) -> None:
    """send_response's end on an HTTP/2 stream: the same head as fields, not bytes; for a
    stream that takes a whole response in one step (Http2Stream.respond_whole) and a head of
    the usual fields alone, their HPACK block as kept for this second (http2/head.py)."""
    tokens = conf.server_tokens if conf is not None else True
    connection = (conf.keepalive_line if conf is not None else resp.CONN_KEEPALIVE) \
        if ctx.keep_alive else resp.CONN_CLOSE
    # Looked up on the class: a wrapper (cache's _FinishAfter, a subrequest's conn) passes
    # other names on to the stream; it, and the extended CONNECT stream, take the three calls
    whole = None if chunked else getattr(conn.__class__, "respond_whole", None)
    if whole is not None and not headers and location is None and last_modified is None:
        hdrs, size = response_block(status, tokens, content_type, length)
        size += len(connection)
    else:
        hdrs, size = response_fields(
            status, server_tokens=tokens, content_type=content_type, content_length=length,
            last_modified=last_modified, location=location, connection=connection,
            headers=headers)
        if chunked:
            size += len(resp.TE_CHUNKED)
    ctx.head_sent = True
    if head_only or not body:
        body = b""
        if not head_only:
            ctx.body_bytes_sent = 0
        ctx.bytes_sent = size
    else:
        ctx.body_bytes_sent = len(body)
        ctx.bytes_sent = size + len(body)
    if whole is not None:
        # Http2Stream: HEADERS (+ DATA) with END_STREAM in one step
        return whole(conn, ctx, hdrs, body)
    conn.write_fields(hdrs, chunked, bool(body))
    if body:
        conn.write(body)
    conn.finish_request(ctx)


def send_postponed(ctx, conf, status: int, pending: list, content_type, last_modified,
                    location, headers: list) -> None:
    """A response ngate made whose SSI/addition subrequests still run: the head and what is
    ready now, the rest as it comes (chunked to HTTP/1.1, else until the connection closes)."""
    f = pending[0]
    conn = ctx.conn
    chunked = ctx.http_minor == 1
    if not chunked:
        ctx.keep_alive = False
    check_keepalive(ctx)
    if conf.charset.charset:
        content_type = charset.content_type(conf, status, content_type, ctx)
    head = resp.build_head(
        status, 1, server_tokens=conf.server_tokens, content_type=content_type,
        last_modified=last_modified, location=location, chunked=chunked,
        connection=resp.CONN_KEEPALIVE if ctx.keep_alive else resp.CONN_CLOSE, headers=headers)
    ctx.head_sent = True
    ctx.bytes_sent = len(head)

    def emit(data: bytes) -> None:
        if data:
            if chunked:
                data = resp.chunk(data)
            ctx.body_bytes_sent += len(data)
            conn.write(data)

    def end() -> None:
        if chunked:
            last = trailers.last_chunk(ctx)
            conn.write(last)
            ctx.body_bytes_sent += len(last)
        ctx.bytes_sent += ctx.body_bytes_sent
        conn.finish_request(ctx)

    conn.write(head)
    emit(b"".join(pending[1:]))
    f.root.emit = emit
    postpone.defer_end(f, ctx, end)


def _filtered(ctx, conf, status: int, body: bytes, content_type, last_modified, headers: list,
              head_only: bool):
    """The response filters over a body ngate made: (body, length, type, Last-Modified,
    chunked)."""
    out = HeadersOut(status, content_type, len(body), last_modified, headers)
    f = header_filter(ctx, conf.filters, out)
    length = out.content_length
    chunked = False
    if f is not None and not head_only:
        if f.__class__ is postpone.PostponeChain:
            got: list = []
            f.attach(got.append)
            f.data(body)
            f.finish()
            if f.deferred:
                return [f] + got, None, out.content_type, out.last_modified, True
            body = b"".join(got)
        else:
            body = f.data(body) + f.finish()
    if length is None and not head_only:
        if ctx.http_minor == 1:
            chunked = True
            body = (resp.chunk(body) if body else b"") + trailers.last_chunk(ctx)
        else:
            ctx.keep_alive = False
    return body, length, out.content_type, out.last_modified, chunked


# A connection's `ka_young` (HTTP/1.x: server/connection.py connection_made) is its accept time
# plus KA_YOUNG, or -inf once the worker drains (server/runtime.py stop_accepting marks its
# connections, and a connection accepted after gets -inf): while a request starts at or before
# it, keepalive_time has not ended keep-alive under any conf whose ka_full is unset (those have
# keepalive_time > KA_YOUNG, http/modules.py bind) and the worker is not draining, so
# send_response's plain head tests one float instead of the draining flag and a subtraction.
# Every other connection-like class (a subrequest's, an HTTP/2 stream, explain's) has -inf as a
# class default: the whole check_keepalive (tests/unit/test_keepalive_flag.py lists them).
KA_YOUNG = 3599.0


def check_keepalive(ctx) -> None:
    """keepalive_timeout 0, keepalive_requests or keepalive_time reached, keepalive_disable,
    or a draining worker end keep-alive (ngx_http_update_location_config's order)."""
    if ctx.keep_alive:
        conn = ctx.conn
        conf = ctx.conf
        if conn.closing or conn.runtime.draining or (conf is not None and (
                conf.keepalive_timeout == 0 or conn.requests >= conf.keepalive_requests
                or ctx.start - conn.started > conf.keepalive_time
                or (ctx.method == "POST" or "safari" in conf.keepalive_disable)
                and _disabled_for(ctx, conf.keepalive_disable))):
            ctx.keep_alive = False


def _disabled_for(ctx, browsers) -> bool:
    """keepalive_disable: msie6 (MSIE 4-6 without SV1, POST only) or safari, as nginx detects
    them from User-Agent (ngx_http_process_user_agent: http/user_agent.py)."""
    if "safari" not in browsers:
        if ctx.method != "POST" or "msie6" not in browsers:
            return False
        ua = ctx.hdr.get(b"user-agent")
        # (a POST's common case: no MSIE token, one scan)
        return ua is not None and b"MSIE " in ua and bool(browser(ua) & MSIE6)
    flags = request_browser(ctx)
    if "msie6" in browsers and ctx.method == "POST" and flags & MSIE6:
        return True
    return bool(flags & SAFARI)


def add_headers(ctx, conf, status: int, skip=frozenset()):
    """add_header's lines for this status; names in `skip` are applied by the caller
    (filters/validators.py)."""
    ok = status in ADD_HEADER_CODES
    out = []
    for h in conf.headers.add_header:
        if (ok or h.always) and h.lname not in skip:
            v = h.value.render(ctx)
            if v:
                out.append((h.name.encode("latin-1"), v.encode("latin-1", "replace")))
    if conf.userid is not None:         # the userid filter runs after the headers filter
        out.extend(userid.headers(ctx, conf.userid))
    return out

