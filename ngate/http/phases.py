"""The request phases, as nginx runs them, over one RequestContext:

  start_request     find the server (Host / SNI), normalise the URI, realip's POST_READ
  server rewrite    the server level's rewrite ops (set, return, rewrite, if)
  find location     nginx's location search (routing/locations.py); internal, 413, slash redirect
  location rewrite  the location's ops; a changed URI searches again (at most 10 cycles)
  access            the location's compiled access steps (realip, limit_req/conn, allow/deny,
                    auth_basic, auth_request): each answers go on, a status, or SUSPENDED
  precontent        the location's compiled precontent steps (try_files, mirror)
  content           the location's compiled content handler (conf.content)
  finalize          a status becomes a response: error_page (an internal redirect or a named
                    location, which run the phases again) or the status page (http/finalize.py)

Internal redirects (error_page, try_files, index, X-Accel-Redirect, a subrequest's URI) all
enter through `redirect()`: one redirect count, the URI as written (nginx). A subrequest runs the
same phases from `run_subrequest`. Nothing here knows a socket: answers go out through
http/respond.py to the front end in `ctx.conn` (server/connection.py for HTTP/1.1,
http2/stream.py for an HTTP/2 stream, proxy/subrequest.py for a subrequest).

`ctx.conn.trace`, when set, is ngate explain's recorder (explain/phases.py), which walks a
request through these same functions without a socket: it is told each location chosen
(trace.location), each rewrite op (http/rewrite.py), and describes the access and content
phases instead of running them (trace.content). It is None on the request path.
"""
from __future__ import annotations

import re

from ngate import realip
from ngate.config.model import ReturnOp
from ngate.http import rewrite
from ngate.http.finalize import finalize, internal_error, reject_request, return_response
# the other ends of a request, where front ends and modules call them (phases.finalize ...)
from ngate.http.finalize import error_page_for, fail, no_upstream_handler  # noqa: F401
from ngate.http.respond import send_redirect, send_status
from ngate.observability import error_log
from ngate.routing.locations import find_location, needs_slash_redirect, slash_redirect_target
from ngate.routing.uri import normalize_uri, parse_unsafe_uri, split_request_uri
from ngate.routing.servers import normalize_host

MAX_REDIRECTS = 10
SUSPENDED = -1          # an access step goes on later by itself (auth_request, limit_req delay)
_ABS_URI = re.compile(r"^([a-z][a-z0-9+.-]*)://([^/?]*)(.*)$", re.I)   # nginx: any scheme
# nginx refuses these methods after reading the head (ngx_http_process_request_header)
_NOT_ALLOWED = frozenset({"TRACE", "CONNECT"})


# ---------------------------------------------------------------- server and location

_ROUTES_MAX = 4096      # routes kept per listen (ServerSelector.routes)


def start_request(ctx, req) -> None:
    ctx.req = req
    conn = ctx.conn
    listen = conn.listen
    raw = ctx.request_uri
    host_raw = ctx.hdr.get(b"host")
    routes = listen.selector.routes
    key = (raw, host_raw)
    route = routes.get(key)
    if route is None:
        route = _route(ctx, listen, raw, host_raw)
        if route is None:
            return              # refused (400, 405)
        if len(routes) >= _ROUTES_MAX:
            routes.clear()
        routes[key] = route
        ctx.args, host, server, uri = route
        ctx.server = server
    else:
        ctx.args, host, server, uri = route
        ctx.server = server
        if ctx.method in _NOT_ALLOWED:
            return reject_request(ctx, 405, "client sent %s method" % ctx.method)
    if host and server.names.regexes and host not in server.names.exact:
        for rx in server.names.regexes:
            if rx.groupindex and named_captures(ctx, rx, host):
                break
    ctx.host = host or server.names.first
    ctx.uri = uri
    ctx.conf = conf = server.conf
    if conf.realip is not None:         # realip's POST_READ run, with the server's settings
        realip.apply(ctx, conf.realip)
    try:
        server_rewrite(ctx)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one request, not the worker
        internal_error(ctx, exc)


def _route(ctx, listen, raw: str, host_raw):
    """(args, host, server, $uri) of a request target and Host on this listen: a function of
    them alone (start_request keeps it in the listen's selector); None when the request was
    refused (400, or 405 for TRACE/CONNECT, checked before the URI as nginx does)."""
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
    if host_line is not None:
        host_raw = host_line.encode("latin-1")
    host = None
    if host_raw is not None:
        host = normalize_host(host_raw)
        if host is None:
            return reject_request(ctx, 400, "client sent invalid host header")
    elif ctx.http_minor == 1:
        ctx.server = listen.default_server
        return reject_request(ctx, 400, 'client sent HTTP/1.1 request without "Host" header')
    server = listen.selector.select(host)
    if ctx.method in _NOT_ALLOWED:
        ctx.server = server
        return reject_request(ctx, 405, "client sent %s method" % ctx.method)
    try:
        uri = normalize_uri(path, server.merge_slashes)
    except ValueError:      # nginx refuses it with the request line: before Host, default server
        ctx.host, ctx.server = "", listen.default_server
        return reject_request(ctx, 400, "client sent invalid request")
    return args, host, server, uri


def server_rewrite(ctx) -> None:
    """The server level's rewrite ops, then the location phases."""
    ops = ctx.conf.rewrite_ops
    if ops:
        result = rewrite.run(ctx, ops)
        if result is not rewrite.CONTINUE and result is not rewrite.RESTART:
            return answer(ctx, result)
    find_location_phase(ctx)


def guarded(step, ctx, *args) -> None:
    """Run a phase step; a bug costs one request (500), not the worker."""
    try:
        step(ctx, *args)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one request, not the worker
        internal_error(ctx, exc)


def find_location_phase(ctx) -> None:
    """Find the location for ctx.uri, run its rewrite ops, then its access and content."""
    trace = ctx.conn.trace
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
        if trace is not None:
            trace.location(ctx, loc)
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
            if result is rewrite.RESTART:
                if not count_redirect(ctx, "rewrite or internal redirection cycle while "
                                           f'processing "{ctx.uri}"'):
                    return finalize(ctx, 500)
                continue
            if result is not rewrite.CONTINUE:
                return answer(ctx, result)
        return access_phase(ctx) if trace is None else trace.content(ctx)


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


def answer(ctx, result) -> None:
    """Carry out what the rewrite ops decided instead of going on."""
    if result.__class__ is ReturnOp:
        return return_response(ctx, result.code, result.text)
    if result.__class__ is rewrite.Redirect:
        return send_redirect(ctx, result.code, result.location)
    finalize(ctx, 500)                  # rewrite.ZERO_LENGTH


# ---------------------------------------------------------------- access and content

def access_phase(ctx) -> None:
    """PREACCESS and ACCESS (a subrequest skips both), then precontent and content (as
    after_access, written out: this is every request's path)."""
    conf = ctx.conf
    if ctx.main is None:
        for step in conf.access_steps:
            status = step(ctx, conf)
            if status:
                if status == SUSPENDED:
                    return          # the step goes on by itself (access_done, limit_req delay)
                return access_denied(ctx, status)
    for step in conf.precontent_steps:
        if step(ctx, conf):
            return
    conf.content(ctx)


def access_done(ctx, status: int) -> None:
    """An access step's verdict after it was SUSPENDED (an auth_request subrequest)."""
    if ctx.logged or ctx.conn.closing:
        return              # the client left meanwhile
    if status:
        return guarded(access_denied, ctx, status)
    guarded(after_access, ctx, ctx.conf)


def after_access(ctx, conf) -> None:
    """The precontent steps (try_files, mirror: True when one took the request over), then the
    content handler."""
    for step in conf.precontent_steps:
        if step(ctx, conf):
            return
    conf.content(ctx)


def content(ctx) -> None:
    """The content phase alone (after a precontent step that read the body)."""
    ctx.conf.content(ctx)


def access_denied(ctx, status: int) -> None:
    """The access phase's refusal; a 401 waits auth_delay first (nginx's
    ngx_http_core_auth_delay), with the client still watched for closing."""
    plan = ctx.conf.access
    if status != 401 or plan is None or not plan.auth_delay:
        return finalize(ctx, status)
    error_log.info("delaying unauthorized request" + error_log.request_suffix(ctx),
                   ctx.conn.number)
    ctx.conn.runtime.loop.call_later(plan.auth_delay, _delayed_401, ctx)


def _delayed_401(ctx) -> None:
    if ctx.logged:
        return                  # the client left meanwhile (499 logged)
    finalize(ctx, 401)


# ---------------------------------------------------------------- internal redirects

def count_redirect(ctx, message: str | None = None) -> bool:
    """One more rewrite cycle or internal redirect; False (and logged) past nginx's 10."""
    ctx.redirects += 1
    if ctx.redirects > MAX_REDIRECTS:
        if message is not None:
            error_log.error(message + error_log.request_suffix(ctx), ctx.conn.number)
        return False
    return True


def set_uri(ctx, path: str, args, keep_args: bool = False, normalize: bool = True) -> bool:
    """An internal redirect's new URI and args. The URI is taken as it is, never parsed again
    (ngx_http_internal_redirect: error_page, try_files, index keep dots, `//` and %XX;
    X-Accel-Redirect's was checked and unescaped before). Always True (`normalize` is unused)."""
    if args is not None or not keep_args:
        ctx.args = args
    ctx.uri = path
    ctx.internal = True         # `set`, map and auth_request_set values stay, as in nginx
    ctx.add_uri_to_alias = False
    return True


def redirect(ctx, path: str, args, keep_args: bool = False, normalize: bool = True) -> None:
    """nginx's ngx_http_internal_redirect: count it (500 past 10), set the new URI, search the
    location again."""
    if not count_redirect(ctx, "rewrite or internal redirection cycle while internally "
                               f'redirecting to "{path}"'):
        ctx.status_override = None
        return send_status(ctx, 500)
    if not set_uri(ctx, path, args, keep_args, normalize):
        return send_status(ctx, 400)
    find_location_phase(ctx)


def internal_redirect(ctx, uri: str, keep_args: bool = False) -> None:
    """error_page, try_files, index: the URI's own args replace the request's (none if it has
    no "?"); the index module keeps them (keep_args)."""
    path, args = split_request_uri(uri)
    redirect(ctx, path, args, keep_args)


def accel_redirect(ctx, target: str) -> None:
    """An upstream's X-Accel-Redirect (ngx_http_upstream_process_headers): a named location,
    or a URI checked as ngx_http_parse_unsafe_uri does (unsafe: 404) and then unescaped; the
    method becomes GET (HEAD stays)."""
    if target.startswith("@"):
        return named_location(ctx, target)
    parsed = parse_unsafe_uri(target)
    if parsed is None:
        error_log.error(f'unsafe URI "{target}" was detected' + error_log.request_suffix(ctx),
                        ctx.conn.number)
        return send_status(ctx, 404)
    if ctx.method != "HEAD":
        ctx.method = "GET"
    ctx.vars = None
    redirect(ctx, parsed[0], parsed[1], normalize=False)


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
        if result is rewrite.RESTART:
            return find_location_phase(ctx)
        if result is not rewrite.CONTINUE:
            return answer(ctx, result)
    trace = ctx.conn.trace
    if trace is not None:
        return trace.content(ctx)
    access_phase(ctx)


def run_subrequest(sub, server_rewrite_first: bool) -> None:
    """A subrequest (proxy/subrequest.py made its context and front end): the phases from the
    server rewrite phase (SSI, addition) or from the location search (auth_request, mirror)."""
    try:
        if server_rewrite_first:
            return server_rewrite(sub)
        find_location_phase(sub)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one request, not the worker
        internal_error(sub, exc)
