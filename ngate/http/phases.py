"""The request phases, as nginx runs them, over one RequestContext, as functions that return
what to do next (a decision of http/decisions.py) and write nothing:

  begin             find the server (Host / SNI), normalise the URI, realip's POST_READ
  server_rewrite    the server level's rewrite ops (set, return, rewrite, if)
  find_location_phase  nginx's location search (routing/locations.py); internal, 413, slash
                    redirect; the location's rewrite ops; a changed URI searches again (at most
                    10 cycles); then ACCESS
  access            the location's compiled access steps (realip, limit_req/conn, allow/deny,
                    auth_basic, auth_request): each answers go on, a status, or SUSPENDED; then
                    the content handler (or PRECONTENT: try_files, mirror first)
  redirect          an internal redirect (error_page, try_files, index, X-Accel-Redirect): one
                    redirect count, the URI as written (nginx), then the location search again
  named             a named location: its rewrite ops, then ACCESS
  accel             an upstream's X-Accel-Redirect target

A status becomes error_page or a status page in http/finalize.py (`special_response`), also a
decision. http/driver.py `carry_out` follows and carries out the decisions: the only code of
the core that writes through the front end in `ctx.conn` (server/connection.py for HTTP/1.1,
http2/stream.py for an HTTP/2 stream, proxy/subrequest.py for a subrequest) or touches the
loop. What front ends and modules call (phases.start_request, phases.finalize,
phases.internal_redirect, phases.named_location ...) are the driver's entry points, imported
at the end of this module.

`ctx.conn.trace`, when set, is ngate explain's recorder (explain/phases.py), which follows these
same decisions without a socket: it is told each location chosen (trace.location) and each
rewrite op (http/rewrite.py), and describes the ACCESS decision instead of carrying it out. It
is None on the request path.
"""
from __future__ import annotations

import re

from ngate import realip
from ngate.config.model import ReturnOp
from ngate.http import rewrite
from ngate.http.decisions import (ACCESS, FINALIZE, PAGE, PRECONTENT, SUSPENDED, Delay,
                                  InternalRedirect, NamedLocation, Redirect)
from ngate.http.finalize import rejected
from ngate.observability import error_log
from ngate.routing.locations import find_location, needs_slash_redirect, slash_redirect_target
from ngate.routing.uri import normalize_uri, parse_unsafe_uri, split_request_uri
from ngate.routing.servers import normalize_host

MAX_REDIRECTS = 10
_ABS_URI = re.compile(r"^([a-z][a-z0-9+.-]*)://([^/?]*)(.*)$", re.I)   # nginx: any scheme
# nginx refuses these methods after reading the head (ngx_http_process_request_header)
_NOT_ALLOWED = frozenset({"TRACE", "CONNECT"})
_ROUTE = tuple          # a route; a refusal is a decision


# ---------------------------------------------------------------- server and location

_ROUTES_MAX = 4096      # routes kept per Host value (ServerSelector.routes[host])
_HOSTS_MAX = 64         # Host values kept per listen (ServerSelector.routes)


def begin(ctx, req):
    """A new request: its server, URI and realip, then the server rewrite phase."""
    ctx.req = req
    # the routes by Host value, then by target: two lookups of keys whose hashes are kept
    # (the parse's own objects: host_raw is server/request_head.py's), no key tuple made,
    # hashed and compared per request (and no locals: each is read once on a hit)
    routes = ctx.conn.listen.selector.routes.get(ctx.host_raw)
    route = routes.get(ctx.request_uri) if routes is not None else None
    if route is None:
        listen = ctx.conn.listen
        raw = ctx.request_uri
        host_raw = ctx.host_raw
        route = _route(ctx, listen, raw, host_raw)
        if route.__class__ is not _ROUTE:
            return route            # refused (400, 405)
        if routes is None:
            hosts = listen.selector.routes
            if len(hosts) >= _HOSTS_MAX:
                hosts.clear()
            hosts[host_raw] = routes = {}
        elif len(routes) >= _ROUTES_MAX:
            routes.clear()
        routes[raw] = route         # (_route refused TRACE and CONNECT before a route)
    elif ctx.method in _NOT_ALLOWED:
        ctx.args = route[0]         # (as _route leaves them for its 405: $host, $uri unset)
        ctx.server = route[1]
        return rejected(ctx, 405, "client sent %s method" % ctx.method)
    # the route's fields straight into their slots (no locals between)
    ctx.args, ctx.server, ctx.uri, ctx.host, rx_host = route
    if rx_host is not None:
        for rx in ctx.server.names.regexes:
            if rx.groupindex and named_captures(ctx, rx, rx_host):
                break
    ctx.conf = conf = ctx.server.conf
    if conf.realip is not None:         # realip's POST_READ run, with the server's settings
        realip.apply(ctx, conf.realip)
    ops = conf.rewrite.ops              # server_rewrite, written out: every request's path
    if ops:
        result = rewrite.run(ctx, ops)
        if result is not rewrite.CONTINUE and result is not rewrite.RESTART:
            return result
    return find_location_phase(ctx)


def _route(ctx, listen, raw: str, host_raw):
    """(args, server, $uri, $host, the host a server_name regex with named captures is
    matched against or None) of a request target and Host on this listen: a function of them
    alone (begin keeps it in the listen's selector); a Finalize when the request is refused
    (400, or 405 for TRACE/CONNECT, checked before the URI as nginx does)."""
    host_line = None
    if raw[:1] != "/":
        m = _ABS_URI.match(raw)
        if m is None:
            return rejected(ctx, 400, "client sent invalid request")
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
            return rejected(ctx, 400, "client sent invalid host header")
    elif ctx.http_minor == 1:
        ctx.server = listen.default_server
        return rejected(ctx, 400, 'client sent HTTP/1.1 request without "Host" header')
    server = listen.selector.select(host)
    if ctx.method in _NOT_ALLOWED:
        ctx.server = server
        return rejected(ctx, 405, "client sent %s method" % ctx.method)
    try:
        uri = normalize_uri(path, server.merge_slashes)
    except ValueError:      # nginx refuses it with the request line: before Host, default server
        ctx.host, ctx.server = "", listen.default_server
        return rejected(ctx, 400, "client sent invalid request")
    names = server.names
    rx_host = host if host and names.regexes and host not in names.exact else None
    return args, server, uri, host or names.first, rx_host


def server_rewrite(ctx):
    """The server level's rewrite ops, then the location phases."""
    ops = ctx.conf.rewrite.ops
    if ops:
        result = rewrite.run(ctx, ops)
        if result is not rewrite.CONTINUE and result is not rewrite.RESTART:
            return result       # ReturnOp, Redirect, ZERO_LENGTH (Finalize(500))
    return find_location_phase(ctx)


def find_location_phase(ctx):
    """Find the location for ctx.uri and run its rewrite ops: ACCESS, or what they decided."""
    trace = ctx.conn.trace
    while True:
        m = ctx.server.matcher  # find_location's cache hit, written out (routing/locations.py)
        hit = m.cache.get(ctx.uri) if m is not None else None
        loc, captures = hit if hit is not None else find_location(ctx.server, ctx.uri)
        ctx.loc = loc
        conf = loc.conf if loc is not None else ctx.server.conf
        ctx.conf = conf
        if conf.error_log or error_log.LOG.bound:       # nginx: ngx_set_connection_log
            error_log.use(ctx.conn.number, conf.error_log)
        if captures:
            ctx.captures = captures
        if trace is not None:
            trace.location(ctx, loc)
        if conf.internal and not ctx.internal:
            return FINALIZE[404]
        if conf.limit_except is not None and ctx.method not in conf.limit_except.methods:
            conf = ctx.conf = conf.limit_except.conf
        if ctx.content_length_in is not None and too_large(ctx, conf):
            return FINALIZE[413]
        if loc is not None:     # (the location's flags: config/model.py Location)
            if loc.named_groups:
                named_captures(ctx, loc.regex, ctx.uri)
            if loc.auto_redirect and len(loc.pattern) == len(ctx.uri) + 1 \
                    and needs_slash_redirect(loc, ctx.uri):
                return Redirect(301, slash_redirect_target(loc, ctx.args))
        ops = conf.rewrite.ops
        if ops:
            if ops[0].__class__ is ReturnOp and trace is None:
                return ops[0]           # rewrite.run's answer, without its two frames
            result = rewrite.run(ctx, ops)
            if result is rewrite.RESTART:
                if not count_redirect(ctx, "rewrite or internal redirection cycle while "
                                           f'processing "{ctx.uri}"'):
                    return FINALIZE[500]
                continue
            if result is not rewrite.CONTINUE:
                return result
        return ACCESS


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


# ---------------------------------------------------------------- access and content

def access(ctx):
    """PREACCESS and ACCESS (a subrequest skips both): SUSPENDED, a refusal, or the content
    handler (PRECONTENT when try_files or mirror come first)."""
    conf = ctx.conf
    if ctx.main is None:
        for step in conf.access_steps:
            status = step(ctx, conf)
            if status:
                if status == SUSPENDED:
                    return SUSPENDED    # the step goes on by itself (access_done, limit_req)
                return denied(ctx, status)
    if conf.precontent_steps:
        return PRECONTENT
    return conf.content


def denied(ctx, status: int):
    """The access phase's refusal; a 401 waits auth_delay first (nginx's
    ngx_http_core_auth_delay)."""
    plan = ctx.conf.access
    if status != 401 or plan is None or not plan.auth_delay:
        return FINALIZE[status]
    return Delay(plan.auth_delay, FINALIZE[401])


# ---------------------------------------------------------------- internal redirects

def count_redirect(ctx, message: str | None = None) -> bool:
    """One more rewrite cycle or internal redirect; False (and logged) past nginx's 10."""
    ctx.redirects += 1
    if ctx.redirects > MAX_REDIRECTS:
        if message is not None:
            error_log.error(message + error_log.request_suffix(ctx), ctx.conn.number)
        return False
    return True


def set_uri(ctx, path: str, args, keep_args: bool = False) -> None:
    """An internal redirect's new URI and args. The URI is taken as it is, never parsed again
    (ngx_http_internal_redirect: error_page, try_files, index keep dots, `//` and %XX;
    X-Accel-Redirect's was checked and unescaped before)."""
    if args is not None or not keep_args:
        ctx.args = args
    ctx.uri = path
    ctx.internal = True         # `set`, map and auth_request_set values stay, as in nginx
    ctx.add_uri_to_alias = False


def redirect(ctx, to: InternalRedirect):
    """nginx's ngx_http_internal_redirect: count it (500 past 10), set the new URI, search the
    location again."""
    if not count_redirect(ctx, "rewrite or internal redirection cycle while internally "
                               f'redirecting to "{to.path}"'):
        ctx.status_override = None
        return PAGE[500]
    set_uri(ctx, to.path, to.args, to.keep_args)
    return find_location_phase(ctx)


def to_uri(uri: str, keep_args: bool = False) -> InternalRedirect:
    """error_page, try_files, index: the URI's own args replace the request's (none if it has
    no "?"); the index module keeps them (keep_args)."""
    path, args = split_request_uri(uri)
    return InternalRedirect(path, args, keep_args)


def accel(ctx, target: str):
    """An upstream's X-Accel-Redirect (ngx_http_upstream_process_headers): a named location,
    or a URI checked as ngx_http_parse_unsafe_uri does (unsafe: 404) and then unescaped; the
    method becomes GET (HEAD stays)."""
    if target.startswith("@"):
        return NamedLocation(target)
    parsed = parse_unsafe_uri(target)
    if parsed is None:
        error_log.error(f'unsafe URI "{target}" was detected' + error_log.request_suffix(ctx),
                        ctx.conn.number)
        return PAGE[404]
    if ctx.method != "HEAD":
        ctx.method = "GET"
    if ctx.vars is not None:    # (a class default until set: http/context.py _RARE)
        ctx.vars = None
    return InternalRedirect(parsed[0], parsed[1])


def named(ctx, name: str):
    """nginx's ngx_http_named_location: the location's rewrite ops, then ACCESS."""
    loc = ctx.server.named_locations.get(name)
    if loc is None:
        error_log.error(f'named location "{name}" not found' + error_log.request_suffix(ctx),
                        ctx.conn.number)
        return PAGE[500]
    ctx.redirects += 1
    ctx.loc = loc
    conf = ctx.conf = loc.conf
    lim = conf.limit_except
    if lim is not None and ctx.method not in lim.methods:
        conf = ctx.conf = lim.conf
    ctx.internal = True
    ops = conf.rewrite.ops
    if ops:
        result = rewrite.run(ctx, ops)
        if result is rewrite.RESTART:
            return find_location_phase(ctx)
        if result is not rewrite.CONTINUE:
            return result
    return ACCESS


# the driver's entry points (front ends and modules call phases.start_request, phases.finalize
# ...): imported last, so that either module may be imported first
from ngate.http.driver import (  # noqa: E402,F401
    access_done, access_phase, accel_redirect, carry_out, content, error_page_for, fail, finalize,
    guarded, internal_error, internal_redirect, named_location, no_upstream_handler,
    reject_request, run_subrequest, start_request)
