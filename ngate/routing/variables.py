"""nginx variables: a registry of lazy getters, and templates compiled once at config time.

A getter is `f(ctx) -> str | None` (None: the variable is "not found", which renders as "").
Templates ("$scheme://$host$request_uri") compile to a tuple of parts; rendering is a join.
Values are str; bytes from the wire are latin-1 decoded (lossless) and re-encoded the same way.
"""
from __future__ import annotations

import os
import re
import socket
import time
from typing import Callable

from ngate import NGINX_VERSION
from ngate.errors import ConfigError
from ngate.filters.trailers import sent_trailer
from ngate.limits.phase import conn_status_variable, req_status_variable
from ngate.routing import referer, secure_link, userid
from ngate.upstream import attempts
from ngate.server import ssl_vars     # imported here: a worker running as `user` may not read
                                      # the standard library's files any more

Getter = Callable[[object], "str | None"]

# `$1`..`$9` is one digit (nginx: `$12` is capture 1 and "2"); `${1}` and `$0` are names
_VAR_RE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([1-9])|([A-Za-z0-9_]+))")


class Template:
    """A compiled value with variables. `render(ctx)` returns str."""
    __slots__ = ("text", "parts", "static", "_single")

    def __init__(self, text: str, parts: tuple) -> None:
        self.text = text
        self.parts = parts
        self.static = all(isinstance(p, str) for p in parts)
        self._single = parts[0] if len(parts) == 1 and not self.static else None

    def render(self, ctx) -> str:
        if self.static:
            return self.text
        if self._single is not None:
            v = self._single(ctx)
            return "" if v is None else v
        out = []
        for p in self.parts:
            if p.__class__ is str:
                out.append(p)
            else:
                v = p(ctx)
                if v:
                    out.append(v)
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Template) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


# ---------------------------------------------------------------- registry

BUILTINS: dict[str, Getter] = {}
PREFIXED: dict[str, Callable[[str], Getter]] = {}


def builtin(name: str):
    def deco(f):
        BUILTINS[name] = f
        return f
    return deco


def prefixed(prefix: str):
    def deco(f):
        PREFIXED[prefix] = f
        return f
    return deco


def lookup(name: str, user_vars: "UserVars | set[str] | frozenset[str]" = frozenset(),
           where=None) -> Getter:
    """The getter for `$name`. `user_vars` are the names made by `set`, `map`, ... (read from
    ctx.vars); a UserVars also carries the config's map-like blocks, which the getter binds."""
    if len(name) == 1 and name in "123456789":
        n = int(name)
        return lambda ctx: _capture(ctx, n)
    if name in user_vars:
        user = _user_getter(name, getattr(user_vars, "maps", _NO_MAPS))
        prefixed = _prefixed(name)
        return user if prefixed is None else _set_or(user, prefixed)
    if name == "uid_reset":             # changeable: `set` or `map` may give it a value
        return _uid_reset_getter(getattr(user_vars, "maps", _NO_MAPS))
    g = BUILTINS.get(name) or _prefixed(name)
    if g is not None:
        return g
    raise ConfigError(f'unknown "{name}" variable', where)


def _prefixed(name: str) -> Getter | None:
    for prefix, make in PREFIXED.items():
        if name.startswith(prefix):          # `$http_` too (an empty name, as nginx)
            return make(name[len(prefix):])
    return None


def _set_or(user: Getter, prefixed: Getter) -> Getter:
    """`set $http_x ...` somewhere: the value set in this request, else the header (nginx's
    ngx_http_add_prefix_variable gives such a variable the prefix's getter)."""
    def get(ctx):
        v = user(ctx)
        return prefixed(ctx) if v is None else v
    return get


def compile_template(text: str, user_vars=frozenset(), where=None) -> Template:
    parts: list = []
    pos = 0
    for m in _VAR_RE.finditer(text):
        if m.start() > pos:
            parts.append(text[pos:m.start()])
        braced = m.group(1)
        if braced is not None and braced.isdigit():
            raise ConfigError(f'unknown "{braced}" variable', where)   # nginx: not a capture
        parts.append(lookup(braced or m.group(2) or m.group(3), user_vars, where))
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    if "$" in text and not any(callable(p) for p in parts):
        # a lone "$" with nothing valid after it
        if re.search(r"\$(?![A-Za-z0-9_{])", text):
            raise ConfigError(f'invalid variable name in "{text}"', where)
    if not parts:
        parts = [""]
    return Template(text, tuple(parts))


def has_variables(text: str) -> bool:
    return _VAR_RE.search(text) is not None


# ---------------------------------------------------------------- user variables (set / map)

_NO_MAPS: dict = {}


class UserVars:
    """The variables one configuration makes (`set`, `map`, `geo`, `split_clients`, named
    captures): their names, found before anything compiles, and the map-like blocks by
    variable name, which the compiler fills as it reads them (a map may come after its use).
    A template compiled with it binds this config's blocks: two configs loaded in one process
    never see each other's maps. `getter(name)` is the runtime lookup by name (SSI's echo)."""
    __slots__ = ("names", "maps", "_getters")

    def __init__(self, names=frozenset(), maps: dict | None = None) -> None:
        self.names = frozenset(names)
        self.maps = {} if maps is None else maps
        self._getters: dict = {}

    def __contains__(self, name: str) -> bool:
        return name in self.names or name in self.maps

    def __iter__(self):
        return iter(self.names | self.maps.keys())

    def getter(self, name: str):
        """The getter for `$name` in this config, or None for an unknown variable."""
        g = self._getters.get(name)
        if g is None:
            try:
                g = lookup(name, self)
            except ConfigError:
                return None
            if len(self._getters) < 4096:
                self._getters[name] = g
        return g


def _user_getter(name: str, maps: dict) -> Getter:
    def get(ctx, name=name):
        vs = ctx.vars
        if vs is not None and name in vs:
            return vs[name]
        m = maps.get(name)
        if m is not None:
            evaluate = getattr(m, "evaluate", None)     # geo, split_clients
            if evaluate is not None:
                v = evaluate(ctx)
            else:
                from ngate.routing.maps import evaluate_map
                v = evaluate_map(m, ctx)
            if not m.volatile:
                if vs is None:
                    ctx.vars = vs = {}
                vs[name] = v
            return v
        return None
    return get


def _uid_reset_getter(maps: dict) -> Getter:
    user = _user_getter("uid_reset", maps)

    def get(ctx):
        """Changeable: the value `map` or `set` give it, else nginx's own empty one."""
        v = user(ctx)
        return "" if v is None else v
    return get


def _capture(ctx, n: int):
    caps = ctx.captures
    if n == 0:
        return caps[0] if caps else None
    if caps and n < len(caps):
        return caps[n]
    return None


# ---------------------------------------------------------------- request headers & args

def _hdr(name: bytes) -> Getter:
    def get(ctx):
        v = ctx.hdr.get(name)
        return None if v is None else v.decode("latin-1")
    return get


@prefixed("http_")
def _http(suffix: str) -> Getter:
    key = suffix.lower().replace("_", "-").encode("latin-1")
    if key == b"cookie":
        def get_cookie(ctx):
            vals = [v for n, v in ctx.headers if n.lower() == b"cookie"]
            return "; ".join(v.decode("latin-1") for v in vals) if vals else None
        return get_cookie
    plain = _hdr(key)

    def get(ctx):
        v = plain(ctx)
        if v is None:       # nginx compares names with '-' as '_': a "x_foo" header too
            for k, val in ctx.hdr.items():
                if b"_" in k and k.replace(b"_", b"-") == key:
                    return val.decode("latin-1")
        return v
    return get


@prefixed("arg_")
def _arg(suffix: str) -> Getter:
    want = suffix.lower()

    def get(ctx):
        a = ctx.args
        if not a:
            return None
        for pair in a.split("&"):
            k, _, v = pair.partition("=")
            if k.lower() == want:
                return v
        return None
    return get


@prefixed("cookie_")
def _cookie(suffix: str) -> Getter:
    want = suffix

    def get(ctx):
        for n, v in ctx.headers:
            if n.lower() == b"cookie":
                for part in v.decode("latin-1").split(";"):
                    k, _, val = part.strip().partition("=")
                    if k == want:
                        return val
        return None
    return get


@prefixed("sent_http_")
def _sent_http(suffix: str) -> Getter:
    key = suffix.lower().replace("_", "-").encode("latin-1")
    if key == b"connection":
        return _sent_connection

    def get(ctx):
        for n, v in ctx.resp_headers or ():
            if n.lower() == key:
                return v.decode("latin-1")
        return None
    return get


@prefixed("sent_trailer_")
def _sent_trailer(suffix: str) -> Getter:
    key = suffix.lower().replace("_", "-").encode("latin-1")
    return lambda ctx: sent_trailer(ctx, key)


def _sent_connection(ctx):
    """ngx_http_variable_sent_connection: the Connection header nginx writes."""
    if ctx.status == 101:
        return "upgrade"
    return "keep-alive" if ctx.keep_alive else "close"


@prefixed("upstream_http_")
def _upstream_http(suffix: str) -> Getter:
    key = suffix.lower().replace("_", "-").encode("latin-1")

    def get(ctx):
        for n, v in ctx.upstream_headers or ():
            if n.lower() == key:
                return v.decode("latin-1")
        return None
    return get


@prefixed("upstream_cookie_")
def _upstream_cookie(suffix: str) -> Getter:
    """The named cookie of the upstream's Set-Cookie headers (ngx_http_parse_set_cookie_lines:
    the first header whose value starts with the name, any case, then optional spaces and "=";
    the value runs to the next ";", leading spaces skipped)."""
    name = suffix.encode("latin-1").lower()
    n = len(name)

    def get(ctx):
        for h, v in ctx.upstream_headers or ():
            if len(v) <= n or h.lower() != b"set-cookie" or v[:n].lower() != name:
                continue
            rest = v[n:].lstrip(b" ")
            if rest[:1] != b"=":
                continue
            return rest[1:].lstrip(b" ").split(b";", 1)[0].decode("latin-1")
        return None
    return get


# ---------------------------------------------------------------- builtins

@builtin("remote_addr")
def _remote_addr(ctx):
    return ctx.conn.remote_addr


@builtin("remote_port")
def _remote_port(ctx):
    return ctx.conn.remote_port


@builtin("realip_remote_addr")
def _realip_remote_addr(ctx):
    r = ctx.realip
    return r[0] if r is not None else ctx.conn.remote_addr


@builtin("realip_remote_port")
def _realip_remote_port(ctx):
    r = ctx.realip
    return r[1] if r is not None else ctx.conn.remote_port


# `listen ... proxy_protocol` (server/proxy_protocol.py): not found without addresses
@builtin("proxy_protocol_addr")
def _proxy_protocol_addr(ctx):
    pp = ctx.conn.proxy_protocol
    return pp.src_addr if pp is not None else None


@builtin("proxy_protocol_port")
def _proxy_protocol_port(ctx):
    pp = ctx.conn.proxy_protocol
    return str(pp.src_port) if pp is not None else None


@builtin("proxy_protocol_server_addr")
def _proxy_protocol_server_addr(ctx):
    pp = ctx.conn.proxy_protocol
    return pp.dst_addr if pp is not None else None


@builtin("proxy_protocol_server_port")
def _proxy_protocol_server_port(ctx):
    pp = ctx.conn.proxy_protocol
    return str(pp.dst_port) if pp is not None else None


@builtin("request_id")
def _request_id(ctx):
    """16 random bytes from the OS's CSPRNG in hex, made once per request when first read; a
    subrequest shares its main request's (nginx shares r->variables)."""
    ctx = ctx.main or ctx
    rid = ctx.request_id
    if rid is None:
        rid = ctx.request_id = os.urandom(16).hex()
    return rid


def _connections(index: int) -> Getter:
    """$connections_*: stub_status's counts over all workers (observability/stub_status.py)."""
    def get(ctx):
        from ngate.observability.stub_status import totals
        return str(totals()[index])
    return get


for _name, _index in (("active", 0), ("reading", 4), ("writing", 5), ("waiting", 6)):
    BUILTINS["connections_" + _name] = _connections(_index)


@builtin("server_addr")
def _server_addr(ctx):
    return ctx.conn.server_addr


@builtin("server_port")
def _server_port(ctx):
    return ctx.conn.server_port


@builtin("binary_remote_addr")
def _binary_remote_addr(ctx):
    addr = ctx.conn.remote_addr
    if addr == "unix:":
        return addr             # nginx: a unix-socket client's address text (one key for all)
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET,
                                addr).decode("latin-1")
    except (OSError, ValueError):
        return None


builtin("limit_req_status")(req_status_variable)
builtin("limit_conn_status")(conn_status_variable)


@builtin("connection")
def _connection(ctx):
    return str(ctx.conn.number)


@builtin("connection_requests")
def _connection_requests(ctx):
    """Pipelined heads already parsed (queued) are not counted yet: nginx makes them later."""
    conn = ctx.conn
    return str(conn.requests - len(conn.queue or ()))


@builtin("connection_time")
def _connection_time(ctx):
    """Seconds since the connection was accepted, with milliseconds (nginx 1.19.10)."""
    ms = max(int((time.monotonic() - ctx.conn.started) * 1000), 0)
    return f"{ms // 1000}.{ms % 1000:03d}"


@builtin("limit_rate")
def _limit_rate(ctx):
    """The response's rate: set by `set $limit_rate` or X-Accel-Limit-Rate, else decided at the
    first write (0 before it, as nginx)."""
    return str(ctx.limit_rate or 0)


@builtin("pipe")
def _pipe(ctx):
    return "p" if ctx.pipelined else "."


@builtin("scheme")
def _scheme(ctx):
    return ctx.conn.scheme


@builtin("https")
def _https(ctx):
    return "on" if ctx.conn.scheme == "https" else ""


# TLS (server/tls.py): read from the connection's SSL object; not found on plain connections
@builtin("ssl_protocol")
def _ssl_protocol(ctx):
    tls = ctx.conn.tls
    return tls.version() if tls is not None else None


@builtin("ssl_cipher")
def _ssl_cipher(ctx):
    tls = ctx.conn.tls
    return tls.cipher()[0] if tls is not None else None


@builtin("ssl_server_name")
def _ssl_server_name(ctx):
    tls = ctx.conn.tls
    return getattr(tls, "ngate_name", None) if tls is not None else None


@builtin("ssl_session_reused")
def _ssl_session_reused(ctx):
    tls = ctx.conn.tls
    return ("r" if tls.session_reused else ".") if tls is not None else None


@builtin("ssl_client_verify")
def _ssl_client_verify(ctx):
    tls = ctx.conn.tls
    if tls is None:
        return None
    from ngate.server.openssl import verify_error, verify_result
    code = verify_result(tls)
    if code:
        return "FAILED:" + verify_error(code)
    return "SUCCESS" if tls.getpeercert(binary_form=True) else "NONE"


@builtin("ssl_client_s_dn")
def _ssl_client_s_dn(ctx):
    tls = ctx.conn.tls
    if tls is None:
        return None
    if ssl_vars.AVAILABLE:
        return ssl_vars.subject_dn(tls)
    from ngate.server.tls import client_s_dn
    return client_s_dn(tls)


def _tls_var(name: str, getter_name: str) -> None:
    """A $ssl_* variable read by ngate/server/ssl_vars.py; not found on plain connections."""
    def get(ctx):
        tls = ctx.conn.tls
        if tls is None:
            return None
        return getattr(ssl_vars, getter_name)(tls)
    builtin(name)(get)


for _name, _getter in (
        ("ssl_ciphers", "ciphers"), ("ssl_curve", "curve"), ("ssl_curves", "curves"),
        ("ssl_session_id", "session_id"), ("ssl_early_data", "early_data"),
        ("ssl_alpn_protocol", "alpn_protocol"), ("ssl_client_raw_cert", "raw_cert"),
        ("ssl_client_cert", "cert_tabbed"), ("ssl_client_escaped_cert", "escaped_cert"),
        ("ssl_client_i_dn", "issuer_dn"), ("ssl_client_s_dn_legacy", "subject_dn_legacy"),
        ("ssl_client_i_dn_legacy", "issuer_dn_legacy"), ("ssl_client_serial", "serial"),
        ("ssl_client_fingerprint", "fingerprint"), ("ssl_client_v_start", "v_start"),
        ("ssl_client_v_end", "v_end"), ("ssl_client_v_remain", "v_remain")):
    _tls_var(_name, _getter)


@builtin("host")
def _host(ctx):
    return ctx.host


@builtin("hostname")
def _hostname(ctx):
    return HOSTNAME


@builtin("request_method")
def _request_method(ctx):
    main = ctx.main         # a subrequest (GET) reports its main request's method, as nginx
    return ctx.method if main is None else main.method


@builtin("request_uri")
def _request_uri(ctx):
    return ctx.request_uri


@builtin("uri")
@builtin("document_uri")
def _uri(ctx):
    return ctx.uri


@builtin("args")
@builtin("query_string")
def _args(ctx):
    return ctx.args or None     # "/x?" has no args in nginx: not found, as without "?"


@builtin("is_args")
def _is_args(ctx):
    return "?" if ctx.args else ""


@builtin("request")
def _request(ctx):
    # an HTTP/2 WebSocket's extended CONNECT runs as a GET (ngate/http2/websocket.py)
    method = getattr(ctx.conn, "line_method", None) or ctx.method
    return f"{method} {ctx.request_uri} HTTP/{ctx.http_version}"


@builtin("server_protocol")
def _server_protocol(ctx):
    return f"HTTP/{ctx.http_version}"


@builtin("http2")
def _http2(ctx):
    """"h2" (TLS) or "h2c" (clear text) for an HTTP/2 request (ngate/http2/), else empty."""
    return getattr(ctx.conn, "proto", "")


@builtin("server_name")
def _server_name(ctx):
    return ctx.server.names.first if ctx.server is not None else ""


@builtin("content_type")
def _content_type(ctx):
    v = ctx.hdr.get(b"content-type")
    return None if v is None else v.decode("latin-1")


@builtin("content_length")
def _content_length(ctx):
    v = ctx.hdr.get(b"content-length")
    if v is None:
        # a chunked body read whole (request buffering) has a length, as in nginx
        n = ctx.content_length_in
        return None if n is None else str(n)
    return v.decode("latin-1")


@builtin("request_length")
def _request_length(ctx):
    return str(ctx.request_length)


@builtin("status")
def _status(ctx):
    return "%03d" % ctx.status if ctx.status else "000"


@builtin("body_bytes_sent")
def _body_bytes_sent(ctx):
    return str(ctx.body_bytes_sent)


@builtin("bytes_sent")
def _bytes_sent(ctx):
    return str(ctx.bytes_sent)


def _ms(seconds: float) -> str:
    """nginx's "%T.%03M": whole milliseconds, truncated, never negative."""
    ms = max(int(seconds * 1000 + 1e-6), 0)     # 60.1 s is 60100 ms, not 60099
    return "%d.%03d" % (ms // 1000, ms % 1000)


@builtin("request_time")
def _request_time(ctx):
    return _ms(time.monotonic() - ctx.start)


@builtin("msec")
def _msec(ctx):
    return _ms(time.time())


@builtin("time_local")
def _time_local(ctx):
    return time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime())


@builtin("date_local")
def _date_local(ctx):
    from ngate.filters.ssi import date_variable     # the SSI module's (config timefmt)
    return date_variable(ctx, False)


@builtin("date_gmt")
def _date_gmt(ctx):
    from ngate.filters.ssi import date_variable
    return date_variable(ctx, True)


@builtin("time_iso8601")
def _time_iso8601(ctx):
    t = time.localtime()
    z = time.strftime("%z", t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + z[:3] + ":" + z[3:]


@builtin("pid")
def _pid(ctx):
    return str(os.getpid())


@builtin("nginx_version")
def _nginx_version(ctx):
    return NGINX_VERSION


@builtin("proxy_host")
def _proxy_host(ctx):
    return ctx.proxy_host


@builtin("proxy_port")
def _proxy_port(ctx):
    h = ctx.proxy_host
    if ":" in h:
        return h.rsplit(":", 1)[1]
    return "443" if ctx.loc and ctx.conf.proxy_pass and ctx.conf.proxy_pass.scheme == "https" else "80"


@builtin("proxy_add_x_forwarded_for")
def _proxy_add_xff(ctx):
    """Every X-Forwarded-For line of the request, each followed by ", ", then $remote_addr."""
    if b"x-forwarded-for" not in ctx.hdr:
        return ctx.conn.remote_addr
    lines = [v.decode("latin-1") for n, v in ctx.headers if n.lower() == b"x-forwarded-for"]
    return ", ".join(lines) + ", " + ctx.conn.remote_addr


@builtin("upstream_addr")
def _upstream_addr(ctx):
    t = ctx.upstream_tries
    return attempts.addrs(t) if t else None


@builtin("gzip_ratio")
def _gzip_ratio(ctx):
    g = ctx.gzip
    return None if g is None else g.ratio()


@builtin("upstream_status")
def _upstream_status(ctx):
    t = ctx.upstream_tries
    return attempts.statuses(t) if t else None


@builtin("upstream_cache_status")
def _upstream_cache_status(ctx):
    return ctx.cache.status if ctx.cache is not None else None


@builtin("upstream_cache_last_modified")
def _upstream_cache_last_modified(ctx):
    return ctx.cache.last_modified() if ctx.cache is not None else None


@builtin("upstream_cache_etag")
def _upstream_cache_etag(ctx):
    return ctx.cache.etag() if ctx.cache is not None else None


# the per-try figures of upstream/attempts.py, formatted only when a log asks

@builtin("upstream_response_time")
def _upstream_response_time(ctx):
    t = ctx.upstream_tries
    return attempts.seconds(t, "response_time") if t else None


@builtin("upstream_connect_time")
def _upstream_connect_time(ctx):
    t = ctx.upstream_tries
    return attempts.seconds(t, "connect_time") if t else None


@builtin("upstream_header_time")
def _upstream_header_time(ctx):
    t = ctx.upstream_tries
    return attempts.seconds(t, "header_time") if t else None


@builtin("upstream_bytes_received")
def _upstream_bytes_received(ctx):
    t = ctx.upstream_tries
    return attempts.counts(t, "bytes_received") if t else None


@builtin("upstream_bytes_sent")
def _upstream_bytes_sent(ctx):
    t = ctx.upstream_tries
    return attempts.counts(t, "bytes_sent") if t else None


@builtin("upstream_response_length")
def _upstream_response_length(ctx):
    """The response body's length as the upstream sent it (decoded from chunks)."""
    t = ctx.upstream_tries
    return attempts.counts(t, "response_length") if t else None


@builtin("document_root")
def _document_root(ctx):
    if ctx.conf is None:
        return None
    from ngate.static.paths import document_root
    return document_root(ctx)


@builtin("realpath_root")
def _realpath_root(ctx):
    r = _document_root(ctx)
    return os.path.realpath(r) if r else None


@builtin("request_filename")
def _request_filename(ctx):
    if ctx.conf is None:
        return None
    from ngate.static.paths import map_uri
    return map_uri(ctx, ctx.uri) or ""


@builtin("invalid_referer")
def _invalid_referer(ctx):
    return referer.invalid(ctx)


@builtin("secure_link")
def _secure_link(ctx):
    return secure_link.secure_link_value(ctx)


@builtin("secure_link_expires")
def _secure_link_expires(ctx):
    return secure_link.secure_link_expires(ctx)


builtin("uid_got")(userid.uid_got)
builtin("uid_set")(userid.uid_set)


builtin("uid_reset")(_uid_reset_getter(_NO_MAPS))     # a config's own: lookup() with its UserVars


@builtin("request_body")
def _request_body(ctx):
    """The body read whole (proxy_request_buffering, FastCGI) while in memory, as nginx."""
    sp = ctx.body_spool
    body = None if sp is None else sp.memory()
    return None if body is None else body.decode("latin-1")


@builtin("request_body_file")
def _request_body_file(ctx):
    sp = ctx.body_spool
    return None if sp is None else sp.name


@builtin("remote_user")
def _remote_user(ctx):
    """The user of `Authorization: Basic ...`, checked or not (as nginx)."""
    from ngate.access.basic import credentials
    creds = credentials(ctx) if ctx.hdr else None
    return None if creds is None else creds[0].decode("latin-1")


@builtin("http_referer")
def _referer(ctx):
    v = ctx.hdr.get(b"referer")
    return None if v is None else v.decode("latin-1")


@builtin("http_user_agent")
def _ua(ctx):
    v = ctx.hdr.get(b"user-agent")
    return None if v is None else v.decode("latin-1")


def fastcgi_split(ctx) -> tuple[str, str]:
    """(script name, path info): fastcgi_split_path_info's two captures of $uri when it matches
    (nginx's ngx_http_fastcgi_split), else ($uri, "")."""
    uri = ctx.uri
    rx = ctx.conf.fastcgi_split_path_info if ctx.conf is not None else None
    if rx is not None:
        m = rx.search(uri)
        if m is not None:
            groups = m.groups()
            return ((groups[0] or "") if groups else "",
                    (groups[1] or "") if len(groups) > 1 else "")
    return uri, ""


@builtin("fastcgi_script_name")
def _fastcgi_script_name(ctx):
    name = fastcgi_split(ctx)[0]
    index = ctx.conf.fastcgi_index if ctx.conf is not None else None
    if index and name.endswith("/"):
        return name + index
    return name


@builtin("fastcgi_path_info")
def _fastcgi_path_info(ctx):
    return fastcgi_split(ctx)[1]


HOSTNAME = socket.gethostname()
