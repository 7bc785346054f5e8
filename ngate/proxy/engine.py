"""The request phases: route -> rewrite -> content -> log, as nginx runs them.

  start_request   find the server (Host / SNI) and normalise the URI
  server rewrite  the server level's rewrite module ops (set, return, rewrite, if)
  find location   nginx's location search (routing/locations.py); slash redirect
  location rewrite the location's ops; `rewrite ... last` goes back to find location
  content         proxy_pass (proxy/http_proxy.py), return, static files
  finalize        errors and statuses become responses through error_page or status pages
  log             the access log line, exactly once

Every function takes the RequestContext; the connection (server/connection.py) owns the socket.
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from ngate import realip, static
from ngate.access import phase as access
from ngate.filters import postpone, trailers
from ngate.http1 import charset
from ngate.http1 import response as resp
from ngate.http1.discard import discard
from ngate.limits import phase as limits
from ngate.observability import error_log
from ngate.proxy import mirror, rewrite
from ngate.routing import userid
from ngate.routing.locations import find_location, needs_slash_redirect, slash_redirect_target
from ngate.routing.uri import normalize_uri, split_request_uri
from ngate.routing.servers import normalize_host

MAX_REDIRECTS = 10
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_ADD_HEADER_CODES = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})
# nginx drops keep-alive after these (ngx_http_special_response_handler)
_CLOSE_CODES = frozenset({400, 408, 413, 414, 494, 495, 496, 497, 500, 501})
_ABS_URI = re.compile(r"^([a-z][a-z0-9+.-]*)://([^/?]*)(.*)$", re.I)   # nginx: any scheme
# nginx refuses these methods after reading the head (ngx_http_process_request_header)
_NOT_ALLOWED = frozenset({"TRACE", "CONNECT"})
TEXT_HTML = b"text/html"

# content handlers by LocConf field: set by proxy/http_proxy.py and friends at import
CONTENT_HANDLERS: list = []   # (predicate(conf) -> bool, handler(ctx))


# ---------------------------------------------------------------- phases

def start_request(ctx, req) -> None:
    ctx.req = req
    conn = ctx.conn
    listen = conn.listen
    raw = ctx.request_uri
    host_line = None
    if raw[:1] != "/":
        m = _ABS_URI.match(raw)
        if m is None:
            return reject_request(ctx, 400, "client sent invalid request")
        host_line = m.group(2)
        raw = m.group(3) or "/"
        if raw[:1] != "/":
            raw = "/" + raw
    path, args = split_request_uri(raw)
    ctx.args = args
    host_raw = host_line.encode("latin-1") if host_line is not None else ctx.hdr.get(b"host")
    host = None
    if host_raw is not None:
        host = normalize_host(host_raw)
        if host is None:
            return reject_request(ctx, 400, "client sent invalid host header")
    elif ctx.http_minor == 1:
        ctx.server = listen.default_server
        return reject_request(ctx, 400, 'client sent HTTP/1.1 request without "Host" header')
    server = listen.selector.select(host)
    ctx.server = server
    if ctx.method in _NOT_ALLOWED:
        return reject_request(ctx, 405, "client sent %s method" % ctx.method)
    if host and server.names.regexes and host not in server.names.exact:
        for rx in server.names.regexes:
            if rx.groupindex and named_captures(ctx, rx, host):
                break
    ctx.host = host or server.names.first
    try:
        ctx.uri = normalize_uri(path, server.merge_slashes)
    except ValueError:      # nginx refuses it with the request line: before Host, default server
        ctx.host, ctx.server = "", listen.default_server
        return reject_request(ctx, 400, "client sent invalid request")
    ctx.conf = conf = server.conf
    if conf.realip is not None:         # realip's POST_READ run, with the server's settings
        realip.apply(ctx, conf.realip)
    try:
        ops = conf.rewrite_ops
        if ops and rewrite.run(ctx, ops) is rewrite.DONE:
            return
        find_location_phase(ctx)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one request, not the worker
        internal_error(ctx, exc)


def find_location_phase(ctx) -> None:
    """Find the location for ctx.uri, run its rewrite ops, then its content handler."""
    while True:
        server = ctx.server
        loc, captures = find_location(server, ctx.uri)
        ctx.loc = loc
        conf = loc.conf if loc is not None else server.conf
        ctx.conf = conf
        if conf.error_log or error_log.LOG.bound:       # nginx: ngx_set_connection_log
            error_log.use(ctx.conn.number, conf.error_log)
        if captures:
            ctx.captures = captures
        if conf.internal and not ctx.internal:
            return finalize(ctx, 404)
        lim = conf.limit_except
        if lim is not None and ctx.method not in lim.methods:
            conf = ctx.conf = lim.conf
        if too_large(ctx, conf):
            return finalize(ctx, 413)
        if loc is not None:
            if loc.regex is not None and loc.regex.groupindex:
                named_captures(ctx, loc.regex, ctx.uri)
            if needs_slash_redirect(loc, ctx.uri):
                return send_redirect(ctx, 301, slash_redirect_target(loc, ctx.args))
        ops = conf.rewrite_ops
        if ops:
            result = rewrite.run(ctx, ops)
            if result is rewrite.DONE:
                return
            if result is rewrite.RESTART:
                ctx.redirects += 1
                if ctx.redirects > MAX_REDIRECTS:
                    error_log.error("rewrite or internal redirection cycle while processing "
                                    f'"{ctx.uri}"' + error_log.request_suffix(ctx), ctx.conn.number)
                    return finalize(ctx, 500)
                continue
        return content_phase(ctx)


def named_captures(ctx, regex, subject: str) -> bool:
    """Named groups of a server_name/location regex become variables, as in nginx."""
    m = regex.search(subject)
    if m is None:
        return False
    vs = ctx.vars
    if vs is None:
        ctx.vars = vs = {}
    for k, v in m.groupdict().items():
        vs[k] = v or ""
    return True


def too_large(ctx, conf) -> bool:
    """nginx's find-config phase check: a Content-Length above the location's
    client_max_body_size gets 413 before rewrite/return run (not again once an error page
    discards the body)."""
    limit = conf.client_max_body_size
    if limit and ctx.content_length_in is not None and ctx.content_length_in > limit \
            and not ctx.error_pages_done:
        error_log.error(f"client intended to send too large body: {ctx.content_length_in} bytes"
                        + error_log.request_suffix(ctx), ctx.conn.number)
        return True
    return False


def content_phase(ctx) -> None:
    conf = ctx.conf
    if ctx.main is None:    # a subrequest (proxy/subrequest.py) skips PREACCESS and ACCESS
        if conf.realip is not None:         # PREACCESS: realip's run with the location's settings
            realip.apply(ctx, conf.realip)
        if conf.limits is not None:         # PREACCESS: limit_req, limit_conn
            rc = limits.preaccess(ctx, conf.limits)
            if rc:
                return finalize(ctx, rc) if rc > 0 else None
        plan = conf.access
        if plan is not None:                # ACCESS: allow/deny, auth_basic, auth_request
            status = access.check(ctx, plan, access_done)
            if status:
                if status is access.PENDING:
                    return      # an auth_request subrequest runs; access_done goes on
                return access_denied(ctx, status, plan.auth_delay)
    return after_access(ctx, conf)


def access_done(ctx, status: int) -> None:
    """The access phase's verdict after an auth_request subrequest."""
    try:
        if ctx.logged or ctx.conn.closing:
            return              # the client left meanwhile
        if status:
            return access_denied(ctx, status, ctx.conf.access.auth_delay)
        after_access(ctx, ctx.conf)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one request, not the worker
        internal_error(ctx, exc)


def after_access(ctx, conf) -> None:
    """The precontent (try_files) and content phases."""
    if conf.try_files is not None and static.try_files_phase(ctx):
        return
    if conf.mirror and ctx.main is None and mirror.phase(ctx, conf, content):
        return
    return content(ctx)


def content(ctx) -> None:
    """The content phase: the location's handler."""
    conf = ctx.conf
    entry = _HANDLER_FOR.get(id(conf))
    if entry is None or entry[0] is not conf:
        entry = _HANDLER_FOR[id(conf)] = (conf, content_handler_for(conf))
    return entry[1](ctx)


_HANDLER_FOR: dict = {}     # id(LocConf) -> (LocConf, its content handler)


def content_handler_for(conf):
    """The location's content handler: the first registered one that applies, else static."""
    if conf.empty_gif:
        from ngate.static.empty_gif import empty_gif_handler
        return empty_gif_handler
    if conf.no_upstream:
        return rewrite.no_upstream_handler
    for applies, handler in CONTENT_HANDLERS:
        if applies(conf):
            return handler
    return static.static_handler


def access_denied(ctx, status: int, delay: float) -> None:
    """The access phase's refusal; a 401 waits auth_delay first (nginx's
    ngx_http_core_auth_delay), with the client still watched for closing."""
    if status != 401 or not delay:
        return finalize(ctx, status)
    error_log.info("delaying unauthorized request" + error_log.request_suffix(ctx),
                   ctx.conn.number)
    ctx.conn.runtime.loop.call_later(delay, _delayed_401, ctx)


def _delayed_401(ctx) -> None:
    if ctx.logged:
        return                  # the client left meanwhile (499 logged)
    finalize(ctx, 401)


def internal_redirect(ctx, uri: str, keep_args: bool = False) -> None:
    """nginx's internal redirect: new URI, location search again. The URI's own args replace
    the request's (error_page, try_files: none if it has no "?"); the index module keeps them."""
    ctx.redirects += 1
    if ctx.redirects > MAX_REDIRECTS:
        error_log.error("rewrite or internal redirection cycle while internally redirecting to "
                        f'"{uri}"' + error_log.request_suffix(ctx), ctx.conn.number)
        ctx.status_override = None
        return send_status(ctx, 500)
    path, args = split_request_uri(uri)
    if args is not None or not keep_args:
        ctx.args = args
    try:
        ctx.uri = normalize_uri(path)
    except ValueError:
        return send_status(ctx, 400)
    ctx.internal = True         # `set`, map and auth_request_set values stay, as in nginx
    ctx.add_uri_to_alias = False
    find_location_phase(ctx)


def accel_redirect(ctx, target: str) -> None:
    """An upstream's X-Accel-Redirect (ngx_http_upstream_process_headers): a named location,
    or a URI checked as ngx_http_parse_unsafe_uri does (unsafe: 404) and then unescaped; the
    method becomes GET (HEAD stays)."""
    if target.startswith("@"):
        return named_location(ctx, target)
    parsed = unsafe_uri(target)
    if parsed is None:
        error_log.error(f'unsafe URI "{target}" was detected' + error_log.request_suffix(ctx),
                        ctx.conn.number)
        return send_status(ctx, 404)
    if ctx.method != "HEAD":
        ctx.method = "GET"
    ctx.redirects += 1
    if ctx.redirects > MAX_REDIRECTS:
        error_log.error("rewrite or internal redirection cycle while internally redirecting to "
                        f'"{parsed[0]}"' + error_log.request_suffix(ctx), ctx.conn.number)
        return send_status(ctx, 500)
    ctx.uri, ctx.args = parsed
    ctx.internal = True
    ctx.vars = None
    find_location_phase(ctx)


def _dotdot(path: str) -> bool:
    return path == ".." or path.startswith("../") or "/../" in path or path.endswith("/..")


def unsafe_uri(uri: str):
    """(path, args or None), or None for an unsafe URI (empty, "?...", a ".." segment, NUL)."""
    if not uri or uri[0] == "?":
        return None
    path, q, args = uri.partition("?")
    if "\0" in path or _dotdot(path):
        return None
    if "%" in path:
        path = unquote_to_bytes(path).decode("latin-1")
        if "\0" in path or _dotdot(path):
            return None
    return path, (args if q else None)


def named_location(ctx, name: str) -> None:
    loc = ctx.server.named_locations.get(name)
    if loc is None:
        error_log.error(f'named location "{name}" not found' + error_log.request_suffix(ctx),
                        ctx.conn.number)
        return send_status(ctx, 500)
    ctx.redirects += 1
    ctx.loc = loc
    conf = ctx.conf = loc.conf
    lim = conf.limit_except
    if lim is not None and ctx.method not in lim.methods:
        conf = ctx.conf = lim.conf
    ctx.internal = True
    ops = conf.rewrite_ops
    if ops:
        result = rewrite.run(ctx, ops)
        if result is rewrite.DONE:
            return
        if result is rewrite.RESTART:
            return find_location_phase(ctx)
    content_phase(ctx)


# ---------------------------------------------------------------- answers

def finalize(ctx, status: int) -> None:
    """Answer with `status` as nginx would: error_page if configured, else the status page.

    This is ngx_http_special_response_handler: the status replaces any earlier error_page status
    (r->err_status = error), so `return 405` or a redirect in an error_page target shows as such."""
    ctx.status_override = None
    ctx.expect_tested = True        # no 100 Continue before (or after) an error response
    if status in _CLOSE_CODES:
        ctx.keep_alive = False
    if status >= 300 and not ctx.error_pages_done:
        page = error_page_for(ctx.conf, status)
        if page is not None:
            return run_error_page(ctx, status, page)
    send_status(ctx, status)


def error_page_for(conf, status: int):
    for code, page in conf.error_page:
        if code == status:
            return page
    return None


def run_error_page(ctx, status: int, page) -> None:
    ctx.error_pages_done = not ctx.conf.recursive_error_pages    # on: the target's errors too
    uri = page.uri.render(ctx)
    if page.override is None:
        ctx.status_override = status
    elif page.override == -1:
        ctx.status_override = None
    else:
        ctx.status_override = page.override
    if uri.startswith("@"):
        if ctx.method != "HEAD":
            ctx.method = "GET"
        return named_location(ctx, uri)
    if uri.startswith(("http://", "https://")) or not uri.startswith("/"):
        code = page.override if page.override and page.override in _REDIRECT_CODES else 302
        ctx.status_override = None
        return send_redirect(ctx, code, uri)
    if ctx.method != "HEAD":
        ctx.method = "GET"
    internal_redirect(ctx, uri)


def send_status(ctx, status: int) -> None:
    """nginx's built-in status page (or an empty body for codes that have none)."""
    if status == 444:
        ctx.status = 444
        ctx.keep_alive = False
        ctx.conn.closing = True
        ctx.conn.transport.close()
        log_request(ctx)
        return
    conf = ctx.conf
    tokens = conf.server_tokens if conf is not None else True
    body = resp.status_page(status, tokens)
    if status in _CLOSE_CODES:
        ctx.keep_alive = False
    wire = resp.page_status(status)
    send_response(ctx, wire, body if body is not None else b"",
                  TEXT_HTML if body is not None else None)


def send_redirect(ctx, status: int, location: str) -> None:
    ctx.status_override = None          # nginx sends a redirect as a special response (err_status)
    ctx.location_out = None             # and clears an earlier Location (ngx_http_clear_location)
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
    override = ctx.status_override
    if override is not None:
        status = override
        ctx.status_override = None
    conn = ctx.conn
    if conn.closing:
        ctx.status = status
        log_request(ctx)
        return
    ctx.status = status
    conf = ctx.conf
    headers = list(extra)
    if ctx.accel_headers is not None:
        if status < 300:
            content_type = carry_accel_headers(ctx, headers, content_type)
        else:   # a status page keeps text/html and loses Accept-Ranges (nginx's special response)
            carry_accel_headers(ctx, headers, content_type, skip=_PAGE_DROPS)
    if ctx.www_authenticate is not None:
        headers.append((b"WWW-Authenticate", ctx.www_authenticate.encode("latin-1", "replace")))
    if ctx.location_out is not None and location is None:
        loc_out = ctx.location_out
        if loc_out.startswith("/"):
            location = absolute_location(ctx, loc_out).encode("latin-1", "replace")
        else:
            headers.append((b"Location", loc_out.encode("latin-1", "replace")))
    if conf is not None and (conf.add_header or conf.userid is not None):
        headers.extend(add_headers(ctx, conf, status))
    head_only = ctx.method == "HEAD" or status in resp.NO_BODY_STATUSES
    length = None if status in resp.NO_BODY_STATUSES else len(body)
    chunked = False
    if conf is not None and conf.filters is not None and length is not None:
        body, length, content_type, last_modified, chunked = _filtered(
            ctx, conf, status, body, content_type, last_modified, headers, head_only)
        if body.__class__ is list:          # subrequests still run (filters/postpone.py)
            return _send_postponed(ctx, conf, status, body, content_type, last_modified,
                                   location, headers)
    check_keepalive(ctx)
    if conf is not None and conf.charset:
        content_type = charset.content_type(conf, status, content_type, ctx)
    head = resp.build_head(
        status, 1, server_tokens=conf.server_tokens if conf is not None else True,
        content_type=content_type, content_length=length,
        last_modified=last_modified, location=location, chunked=chunked,
        connection=(conf.keepalive_line if conf is not None else resp.CONN_KEEPALIVE)
        if ctx.keep_alive else resp.CONN_CLOSE,
        headers=headers)
    ctx.head_sent = True
    if head_only:
        conn.write(head)
        ctx.bytes_sent = len(head)
    else:
        conn.write(head + body)
        ctx.body_bytes_sent = len(body)
        ctx.bytes_sent = len(head) + len(body)
    conn.finish_request(ctx)


def _send_postponed(ctx, conf, status: int, pending: list, content_type, last_modified,
                    location, headers: list) -> None:
    """A response ngate made whose SSI/addition subrequests still run: the head and what is
    ready now, the rest as it comes (chunked to HTTP/1.1, else until the connection closes)."""
    f = pending[0]
    conn = ctx.conn
    chunked = ctx.http_minor == 1
    if not chunked:
        ctx.keep_alive = False
    check_keepalive(ctx)
    if conf.charset:
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
    from ngate.filters import HeadersOut, header_filter
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
    them from User-Agent (ngx_http_process_user_agent)."""
    if "safari" not in browsers and ctx.method != "POST":
        return False
    ua = ctx.hdr.get(b"user-agent")
    if not ua:
        return False
    msie = ua.find(b"MSIE ")
    opera = b"Opera" in ua
    if "msie6" in browsers and ctx.method == "POST" and not opera and 0 <= msie \
            and msie + 7 < len(ua) and ua[msie + 6:msie + 7] == b".":
        major = ua[msie + 5:msie + 6]
        if major in (b"4", b"5") or (major == b"6" and b"SV1" not in ua[msie + 8:]):
            return True
    if "safari" in browsers and msie < 0 and not opera and b"Gecko/" not in ua \
            and b"Chrome/" not in ua and b"Safari/" in ua and b"Mac OS X" in ua:
        return True
    return False


def add_headers(ctx, conf, status: int, skip=frozenset()):
    """add_header's lines for this status; names in `skip` are applied by the caller
    (filters/validators.py)."""
    ok = status in _ADD_HEADER_CODES
    out = []
    for h in conf.add_header:
        if (ok or h.always) and h.lname not in skip:
            v = h.value.render(ctx)
            if v:
                out.append((h.name.encode("latin-1"), v.encode("latin-1", "replace")))
    if conf.userid is not None:         # the userid filter runs after the headers filter
        out.extend(userid.headers(ctx, conf.userid))
    return out


def return_response(ctx, code: int, text) -> None:
    """The rewrite module's `return`."""
    if code == 444:
        return send_status(ctx, 444)
    if (code < 400 or text is not None) and not discard(ctx):
        return          # ngx_http_send_response discards the body first: it was invalid
    value = text.render(ctx) if text is not None else None
    if code in _REDIRECT_CODES:
        if value is None:
            return finalize(ctx, code)
        ctx.status = code
        if ctx.conf.error_page and not ctx.error_pages_done \
                and error_page_for(ctx.conf, code) is not None:
            ctx.location_out = value    # nginx keeps the Location header across the error_page
            return finalize(ctx, code)
        return send_redirect(ctx, code, value)
    if value is None:
        if code >= 400:
            return finalize(ctx, code)
        if ctx.status_override is None and code == 204:
            return send_response(ctx, code, b"", None)      # nginx drops a 204's Content-Type
        return send_response(ctx, code, b"", static.handler.content_type(ctx.conf, ctx.uri))
    # a text is sent as it is (ngx_http_send_response): no error_page, the error_page status wins
    ct = static.handler.content_type(ctx.conf, ctx.uri)
    send_response(ctx, code, _return_bytes(value), ct)


def _return_bytes(value: str) -> bytes:
    """return's text: the file's and the request's bytes (latin-1 view); a `set` value typed
    in UTF-8 in the file makes the whole text UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


# ---------------------------------------------------------------- errors

def fail(ctx, err) -> None:
    """The one place an upstream failure (upstream/failure.py UpstreamError) becomes a
    response (or a closed connection)."""
    if err.log_message:
        error_log.log(err.level, err.log_message + error_log.request_suffix(ctx), ctx.conn.number)
    if err.status == 499:
        ctx.status = 499
        log_request(ctx)
        return
    if ctx.head_sent:
        ctx.keep_alive = False
        ctx.conn.closing = True
        ctx.conn.transport.close()
        log_request(ctx)
        return
    finalize(ctx, err.status)


def reject_request(ctx, status: int, message: str) -> None:
    error_log.info(message + (", client: " + ctx.conn.remote_addr), ctx.conn.number)
    ctx.keep_alive = False
    if ctx.conf is None and ctx.server is not None:
        ctx.conf = ctx.server.conf
    if ctx.conf is None:
        ctx.server = ctx.conn.listen.default_server
        ctx.conf = ctx.server.conf
    finalize(ctx, status)       # nginx: ngx_http_finalize_request, so the server's error_page


def reject_head(conn, status: int, message: str, url: bytes) -> None:
    """A head refused while parsing (414, 494, 400, 501): status page, then close."""
    from ngate.proxy.context import RequestContext
    if message:
        error_log.info(message + ", client: " + conn.remote_addr, conn.number)
    ctx = RequestContext(conn, "GET", url.decode("latin-1") if url else "", "1.1", [], {})
    server = conn.listen.default_server
    ctx.server = server
    ctx.conf = server.conf
    ctx.keep_alive = False
    current = conn.current
    conn.current = None
    conn.queue = None
    if current is not None and current.ctx.head_sent:
        conn.abort()        # a response is already on the wire: nothing sane can follow
        return
    send_status(ctx, status)


def body_error(ctx, message: str) -> None:
    """The client's body cannot be parsed: nginx finalizes the request with 400 (the upstream
    exchange, if any, is dropped); after a response head nothing can follow: the connection
    closes (and connection_lost stops the exchange)."""
    error_log.info("client sent invalid chunked body" + error_log.request_suffix(ctx), ctx.conn.number)
    if ctx.head_sent:
        return
    ctx.keep_alive = False
    abort = getattr(ctx.conn.writer, "abort_with", None)    # an upstream exchange reading it
    if abort is not None:
        abort(400)
    else:
        send_status(ctx, 400)


def client_closed(ctx) -> None:
    """The client went away while its request was in flight (nginx logs 499)."""
    w = ctx.conn.writer
    if w is not None:
        w.client_gone()
    elif not ctx.logged and not ctx.head_sent:
        ctx.status = 499
        log_request(ctx)


def client_timeout(ctx, message: str) -> None:
    """client_body_timeout (message "") or send_timeout passed; the connection closes after this.

    nginx finalizes a request still reading its body with 408 and sends nothing (no log line);
    a send timeout keeps the response's status and is logged at info. The upstream is dropped.
    """
    conn = ctx.conn
    ctx.keep_alive = False
    if not ctx.head_sent:
        ctx.status = 408
    w = conn.writer
    if message:
        error_log.info(message + error_log.request_suffix(ctx, getattr(w, "uri", None)),
                       conn.number)
    if w is not None:
        conn.writer = None
        w.client_gone()
    log_request(ctx)


def internal_error(ctx, exc: Exception) -> None:
    import traceback
    error_log.alert("internal error: " + "".join(traceback.format_exception(exc)).replace("\n", " | ")
                    + error_log.request_suffix(ctx), ctx.conn.number)
    if not ctx.head_sent and not ctx.conn.closing:
        ctx.keep_alive = False
        ctx.status_override = None
        send_status(ctx, 500)
    else:
        ctx.conn.abort()


def log_timeout(conn, message: str) -> None:
    error_log.info(message + ", client: " + conn.remote_addr, conn.number)


# ---------------------------------------------------------------- log phase

def log_request(ctx) -> None:
    if ctx.logged:
        return
    ctx.logged = True
    conn = ctx.conn
    conn.runtime.access_log(ctx)
    if ctx.limits is not None:
        ctx.limits.release()
    if ctx.stat_writing:
        conn.runtime.stats.request_done(ctx)
    if ctx.realip is not None:
        realip.restore(ctx)
