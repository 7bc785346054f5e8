"""What proxy_pass sends upstream, compiled once per location (a Plan), and the request head.

nginx builds the upstream request from the location's proxy_set_header list followed by its
defaults (Host: $proxy_host, Connection: close, the body's framing; TE, Keep-Alive, Expect and
Upgrade are never passed), then the client's headers minus those names. Constant header lines
are pre-encoded here; values with variables are rendered per request.
"""
from __future__ import annotations

from ngate.proxy import upstream_plan
from ngate.routing.uri import escape_uri

STATIC, TEMPLATE, BODY_LENGTH, CHUNKED, HEADER = range(5)   # HEADER: a `$http_name` value
DEFAULT_PROXY_HEADERS = (
    ("Host", "$proxy_host"), ("Connection", "close"),
    ("Content-Length", BODY_LENGTH), ("Transfer-Encoding", CHUNKED),
    ("TE", ""), ("Keep-Alive", ""), ("Expect", ""), ("Upgrade", ""),
)
# with proxy_cache, nginx's ngx_http_proxy_cache_headers: the client's validators and Range are
# not passed (the cache answers them); a revalidation sends the entry's
CACHE_PROXY_HEADERS = DEFAULT_PROXY_HEADERS + (
    ("If-Modified-Since", "$upstream_cache_last_modified"), ("If-Unmodified-Since", ""),
    ("If-None-Match", "$upstream_cache_etag"), ("If-Match", ""), ("Range", ""), ("If-Range", ""),
)
DEFAULT_HIDE = frozenset({b"date", b"server", b"x-pad", b"x-accel-expires", b"x-accel-redirect",
                          b"x-accel-limit-rate", b"x-accel-buffering", b"x-accel-charset"})


# ---------------------------------------------------------------- compiled per LocConf

class Plan:
    """What a location sends upstream and passes back; built once per LocConf."""
    __slots__ = ("items", "skip", "version", "keepalive_capable", "redirects", "cookies",
                 "own_server", "own_date",
                 "heads",       # response heads llhttp parsed (proxy/wire_http1.py _learn)
                 "last_read",   # Http1Wire.data's last known read: (bytes, end, entry)
                 "fixed",       # the constant header lines when nothing else varies (below)
                 "length_line", "chunked_line", "version_line",
                 "passed",      # client header lists -> the lines passed on (bounded)
                 "plain",       # the client's head is the upstream's translated, nothing added
                 "pool_key",    # start_pooled's group of one server: its keepalive pool key
                 "last_head",   # start_pooled's last head: (headers, URI, args, method, bytes)
                 "pool_stack",  # proxy_handler's (worker's pool, its idle stack for pool_key)
                 *upstream_plan.SLOTS)

    def __init__(self, conf, cacheable: bool = True) -> None:
        from ngate.routing.variables import compile_template
        pp = conf.proxy.pass_
        items = []
        names = set()
        for h in conf.proxy.set_header:
            names.add(h.lname)
            items.append((h.name.encode("latin-1"), h.value))
        for name, value in (CACHE_PROXY_HEADERS if conf.proxy.cache is not None and cacheable
                            else DEFAULT_PROXY_HEADERS):
            lname = name.lower().encode()
            if lname in names:
                continue
            names.add(lname)
            if value in (BODY_LENGTH, CHUNKED):
                items.append((name.encode(), value))
            elif value:
                items.append((name.encode(), compile_template(value)))
        self.items = tuple(_compile_items(items, pp))
        self.skip = frozenset(names)
        upstream_plan.take(self, conf.proxy, DEFAULT_HIDE)
        # nginx's own Server and Date unless passed (then the upstream's or none: nginx puts an
        # empty placeholder in the slot when the upstream sent none)
        self.own_server = b"server" in self.hide
        self.own_date = b"date" in self.hide
        self.heads = {}
        self.last_read = None
        self.version = b"HTTP/1.1" if conf.proxy.http_version == "1.1" else b"HTTP/1.0"
        self.redirects = _redirect_rules(conf)
        # proxy_cookie_domain / proxy_cookie_path (proxy/cookies.py), None without any rule
        self.cookies = (conf.proxy.cookie_domain, conf.proxy.cookie_path, conf.proxy.cookie_flags) \
            if conf.proxy.cookie_domain or conf.proxy.cookie_path or conf.proxy.cookie_flags \
            else None
        self.passed = {}
        self.last_head = None
        # no add_header, userid, body filters, charset, proxy_force_ranges nor cache: a known
        # response head translates to the same bytes but Date and Connection (wire_http1.py)
        self.plain = not conf.headers.add_header and conf.userid is None and conf.filters is None \
            and not conf.charset.charset and not conf.proxy.force_ranges and conf.proxy.cache is None
        self.version_line = b" " + self.version + b"\r\n"
        # a keepalive group of one server, reached over http:// without counting connections
        # nor proxy_set_body (proxy/http_proxy.py proxy_handler may start_pooled): the server's
        # pool key as PeerSide.connect makes it, else None. (Whether the group's balancer
        # takes that server without a pick, `single`, is the worker's: proxy_handler tests it.)
        up = pp.upstream if pp is not None and pp.template is None else None
        self.pool_key = None
        self.pool_stack = None
        if up is not None and pp.scheme == "http" and up.keepalive and not up.counts_conns \
                and conf.proxy.set_body is None and len(up.servers) == 1:
            server = up.servers[0]
            self.pool_key = (id(up), server.unix or server.host, server.port)
        self.fixed = self.length_line = self.chunked_line = None
        kinds = [kind for kind, _name, _value in self.items]
        lead = kinds[:1] == [STATIC]        # (consecutive constant lines are merged into one)
        if conf.proxy.method is None and conf.proxy.cache is None \
                and conf.proxy.pass_request_headers and TEMPLATE not in kinds \
                and HEADER not in kinds \
                and STATIC not in kinds[1 if lead else 0:]:
            # the request head is its method and URI line, these bytes, the body's framing
            # and the client's headers (build_request_head's first branch)
            self.fixed = self.items[0][2] if lead else b""
            self.length_line = BODY_LENGTH in kinds
            self.chunked_line = CHUNKED in kinds


def _compile_items(items, pp):
    """(name, Template | BODY_LENGTH | CHUNKED) -> (kind, name, value) with constant header lines
    pre-encoded and merged (STATIC carries the whole `Name: value\r\n` bytes)."""
    out = []
    for name, value in items:
        if value is BODY_LENGTH or value is CHUNKED:
            out.append((value, name, None))
            continue
        if not value.static and value.text == "$proxy_host" and pp is not None \
                and pp.template is None:
            text = pp.host_header           # $proxy_host is fixed for a static proxy_pass
        elif value.static:
            text = value.text
        else:
            # `$http_name` alone (the WebSocket recipe's `Upgrade $http_upgrade`): the client's
            # header bytes as they came, without the getter's decode and encode
            header = getattr(value._single, "header", None) if len(value.parts) == 1 else None
            out.append((TEMPLATE if header is None else HEADER, name, value))
            continue
        if not text:
            continue                        # an empty value is never sent
        line = name + b": " + text.encode("latin-1") + b"\r\n"
        if out and out[-1][0] is STATIC:
            out[-1] = (STATIC, b"", out[-1][2] + line)
        else:
            out.append((STATIC, b"", line))
    return out


def _redirect_rules(conf):
    """proxy_redirect as (match, replacement) pairs; `default` derived from proxy_pass."""
    pr = conf.proxy.redirect
    pp = conf.proxy.pass_
    if pr.off or pp is None:
        return ()
    rules = list(pr.rules)
    if pr.default and pp.template is None:
        base = f"{pp.scheme}://{pp.host_header}"
        if pp.uri is not None:
            rules.insert(0, (base + pp.uri, pp.location_prefix))
        else:
            rules.insert(0, (base + "/", "/"))
    return tuple(rules)


def plan_for(conf) -> Plan:
    """The location's Plan, built when the config was compiled (http/modules.py)."""
    return conf.upstream_plan


def uncached_plan_for(conf) -> Plan:
    """Under proxy_cache, the plan of a request that will not be cached (nginx's
    `u->cacheable ? headers_cache : headers`): the client's validators and Range go upstream."""
    return conf.uncached_plan


# ---------------------------------------------------------------- request construction

def upstream_uri(ctx, pp) -> str:
    """The URI sent upstream (nginx-behaviour.md, proxy_pass)."""
    if pp.uri is None:
        if not ctx.internal:
            raw = ctx.request_uri
            q = raw.find("?")
            if raw[:1] == "/" and (raw[q + 1:] if q >= 0 else None) == ctx.args:
                return raw      # else `set $args` (or auth_request_set) changed the args
        uri = escape_uri(ctx.uri)
    else:
        prefix = pp.location_prefix
        u = ctx.uri
        if ctx.internal and ctx.loc is not None and ctx.loc.modifier in ("", "^~", "=") \
                and not u.startswith(prefix):
            uri = escape_uri(u)
        else:
            uri = pp.uri + escape_uri(u[len(prefix):] if u.startswith(prefix) else u)
    return uri + "?" + ctx.args if ctx.args else uri


_PASSED_MAX = 64        # client header lists kept per Plan (emptied when full), of heads
_PASSED_LEN = 1024      # up to this size (as server/request_head.py keeps heads)
METHODS = {m: m.encode() for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}


def passed_lines(ctx, plan: Plan, headers) -> bytes:
    """The client's header lines a Plan.fixed head passes on (and its empty line), kept per
    header list (the same lists recur); `headers`: ctx.headers as a tuple."""
    skip = plan.skip
    passed = b"".join([name + b": " + value + b"\r\n" for name, value in headers
                       if name.lower() not in skip]) + b"\r\n"
    if ctx.request_length <= _PASSED_LEN:
        if len(plan.passed) >= _PASSED_MAX:
            plan.passed.clear()
        plan.passed[headers] = passed
    return passed


def build_request_head(ctx, plan: Plan, uri: str, body_length: int | None, chunked: bool) -> bytes:
    fixed = plan.fixed
    if fixed is not None:
        # no variables, no proxy_method, no cache: the constant lines, pre-built; the client's
        # header lines passed on are kept per header list (the same lists recur)
        if body_length is not None and plan.length_line:
            fixed += b"Content-Length: %d\r\n" % body_length
        elif chunked and plan.chunked_line:
            fixed += b"Transfer-Encoding: chunked\r\n"
        headers = tuple(ctx.headers)   # (a list for an extended CONNECT's copy)
        passed = plan.passed.get(headers)
        if passed is None:
            passed = passed_lines(ctx, plan, headers)
        method = ctx.method
        return b"".join((METHODS.get(method) or method.encode("latin-1"), b" ",
                         uri.encode("latin-1", "replace"), plan.version_line, fixed, passed))
    conf = ctx.conf
    method = conf.proxy.method.render(ctx) if conf.proxy.method is not None else ctx.method
    if method == "HEAD" and ctx.cache is not None and ctx.cache.converted:
        method = "GET"                      # proxy_cache_convert_head
    out = [METHODS.get(method) or method.encode("latin-1"), b" ", uri.encode("latin-1", "replace"),
           plan.version_line]
    for kind, name, value in plan.items:
        if kind is STATIC:
            out.append(value)
            continue
        if kind is TEMPLATE:
            v = value.render(ctx)
            if not v:
                continue
            out += (name, b": ", v.encode("latin-1", "replace"), b"\r\n")
        elif kind is HEADER:
            v = ctx.hdr.get(value._single.header)
            if v is None:       # (a `x_foo` header for `$http_x_foo`: the getter finds it)
                v = value.render(ctx).encode("latin-1", "replace")
            if v:
                out += (name, b": ", v, b"\r\n")
        elif kind is BODY_LENGTH:
            if body_length is not None:
                out.append(b"Content-Length: %d\r\n" % body_length)
        elif chunked:
            out.append(b"Transfer-Encoding: chunked\r\n")
    if conf.proxy.pass_request_headers:
        skip = plan.skip
        for name, value in ctx.headers:
            if name.lower() not in skip:
                # the line's four pieces go to the one join: no concatenated copies of each line
                out += (name, b": ", value, b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)
