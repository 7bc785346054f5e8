"""Directive handlers for statements without blocks: `handler(compiler, level, stmt)`.

Value parsers `(compiler, stmt) -> value` are combined with `scalar` (one value per level,
`"x" directive is duplicate` otherwise) and `array` (items collected per level; compile.py lets
the innermost level that has any item replace the outer levels' items, as nginx does).
"""
from __future__ import annotations

import os

from ngate.config.model import (AccessLog, BreakOp, ErrorLog, ErrorPage, HeaderSet, LogFormat,
                                ProxyPass, ReturnOp, RewriteOp, SetOp, Upstream)
from ngate.config.upstreams import (addr_name, make_servers, parse_proxy_pass,
                                     split_host_port)
from ngate.config.values import parse_flag, parse_number, parse_offset, parse_size, parse_time
from ngate.errors import ConfigError
from ngate.routing.variables import has_variables, registry

NEXT_UPSTREAM = frozenset({"error", "timeout", "invalid_header", "http_500", "http_502",
                           "http_503", "http_504", "http_403", "http_404", "http_429",
                           "non_idempotent", "off"})
LOG_LEVELS = ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg")
REDIRECT_CODES = (301, 302, 303, 307, 308)
CHANGEABLE_VARIABLES = frozenset({"args", "query_string", "limit_rate", "uid_reset"})
URL_PREFIXES = ("http://", "https://", "$scheme")
# off_t values (ngx_conf_set_off_slot: `g` allowed); every other size is a size_t
OFFSET_DIRECTIVES = frozenset({"client_max_body_size", "proxy_max_temp_file_size",
                               "fastcgi_max_temp_file_size"})


# ---------------------------------------------------------------- combinators

def scalar(field: str, parse):
    def handle(c, lv, st):
        if field in lv.vals:
            raise ConfigError(f'"{st.directive}" directive is duplicate', st.where)
        lv.vals[field] = parse(c, st)
    return handle


def array(field: str, item, extend: bool = False):
    def handle(c, lv, st):
        items = lv.vals.setdefault(field, [])
        value = item(c, st)
        items.extend(value) if extend else items.append(value)
    return handle


def extra(c, lv, st):
    """Accepted for later issues: kept as lv.extra[name] = [args tuple, ...]."""
    lv.extra.setdefault(st.directive, []).append(tuple(st.args))


def no_effect(parse=None, warn: bool = False, default: tuple | None = None):
    """A class-2 directive (directives.py): its value is checked as nginx checks it, then
    dropped. `warn`: ngate says once per occurrence that it has no effect (unless the
    arguments are nginx's default, which is what ngate does anyway)."""
    def handle(c, lv, st):
        if parse is not None:
            parse(c, st)
        if warn and not is_default(st.args, default):
            _no_effect_warning(f'"{st.directive}" has no effect in ngate in {st.where}')
    handle.not_implemented = True       # for readers of the handler (the row's `support` says it)
    return handle


def _no_effect_warning(text: str) -> None:
    from ngate.observability import error_log
    error_log.warn(text)


def is_default(args, default: tuple | None) -> bool:
    """Whether a statement's arguments are nginx's default value (flags compare as nginx's,
    case-insensitively)."""
    return default is not None and tuple(a.lower() for a in args) == default


def refused(c, lv, st):
    """A class-3 directive given nginx's default value: nothing to do (directives.check has
    refused every other value)."""


refused.not_implemented = True


def extra_flag(c, lv, st):
    flag(c, st)
    extra(c, lv, st)


def extra_size(c, lv, st):
    size(c, st)
    extra(c, lv, st)


def extra_time(c, lv, st):
    msec(c, st)
    extra(c, lv, st)


def extra_bufs(c, lv, st):
    bufs(c, st)
    extra(c, lv, st)


# ---------------------------------------------------------------- value parsers

def access_rule(c, st):
    """allow/deny: (allow?, network or None for "all"); unix: is matched as "unix:"."""
    import ipaddress
    allow = st.directive == "allow"
    arg = st.args[0]
    if arg == "all":
        return (allow, None)
    if arg == "unix:":
        return (allow, "unix:")
    try:
        return (allow, ipaddress.ip_network(arg, strict=False))
    except ValueError:
        raise ConfigError(f'invalid parameter "{arg}"', st.where) from None


def auth_basic_user_file(c, st) -> tuple:
    """(Template, conf prefix): a relative name is relative to the main config file's
    directory (nginx's conf_prefix), also when it comes from variables."""
    name = st.args[0]
    if not has_variables(name) and not name.startswith("/"):
        name = os.path.join(c.conf_dir, name)
    return (c.template(name, st.where), c.conf_dir)


def auth_request_set(c, st) -> tuple:
    var = st.args[0]
    if not var.startswith("$") or len(var) < 2:
        raise ConfigError(f'invalid variable name "{var}"', st.where)
    name = var[1:]
    if name in registry() and name not in CHANGEABLE_VARIABLES:
        raise ConfigError(f'the duplicate "{name}" variable', st.where)
    return (name, c.template(st.args[1], st.where))


def satisfy(c, st) -> str:
    if st.args[0] not in ("all", "any"):
        raise ConfigError(f'invalid value "{st.args[0]}"', st.where)
    return st.args[0]


def as_number(text: str) -> int | None:
    """ngx_atoi's value, or None where it returns NGX_ERROR."""
    try:
        return parse_number(text)
    except ValueError:
        return None


def _invalid(st) -> ConfigError:
    return ConfigError(f'"{st.directive}" directive invalid value', st.where)


def flag(c, st) -> bool:
    try:
        return parse_flag(st.args[0])
    except ValueError:
        raise ConfigError(f'invalid value "{st.args[0]}" in "{st.directive}" directive, '
                          'it must be "on" or "off"', st.where) from None


IGNORE_HEADERS = ("X-Accel-Redirect", "X-Accel-Expires", "X-Accel-Limit-Rate",
                  "X-Accel-Buffering", "X-Accel-Charset", "Expires", "Cache-Control",
                  "Set-Cookie", "Vary")


def bitmask(field: str, parse):
    """nginx's ngx_conf_set_bitmask_slot: repeated occurrences in one block add up."""
    def handle(c, lv, st):
        lv.vals[field] = lv.vals.get(field, frozenset()) | parse(c, st)
    return handle


def ignore_headers(c, st) -> frozenset:
    """proxy_ignore_headers / fastcgi_ignore_headers: the names nginx knows (any case)."""
    known = {n.lower(): n for n in IGNORE_HEADERS}
    out = set()
    for arg in st.args:
        if arg.lower() not in known:
            raise ConfigError(f'invalid value "{arg}"', st.where)
        out.add(arg.lower().encode())
    return frozenset(out)


def rate_size(c, st):
    """limit_rate / limit_rate_after: a size, or a value with variables (nginx 1.17.0)."""
    arg = st.args[0]
    if has_variables(arg):
        if st.directive == "limit_rate":
            c.limit_rate_used = True
        return c.template(arg, st.where)
    try:
        value = parse_size(arg)
    except ValueError:
        raise _invalid(st) from None
    if value and st.directive == "limit_rate":
        c.limit_rate_used = True
    return value


def upstream_zone(c, st) -> tuple:
    """`zone name [size]` in an upstream block: (name, size; 0 when declared elsewhere). The
    peers' state is then shared by the workers (upstream/shared_state.py)."""
    size_ = 0
    if not st.args[0]:
        raise ConfigError(f'invalid zone name "{st.args[0]}"', st.where)
    if len(st.args) == 2:
        try:
            size_ = parse_size(st.args[1])
        except ValueError:
            size_ = -1
        if size_ < 0:
            raise ConfigError(f'invalid zone size "{st.args[1]}"', st.where)
        if size_ < 8 * 4096:
            raise ConfigError(f'zone "{st.args[0]}" is too small', st.where)
    return st.args[0], size_, st.where


def keepalive_timeout(c, lv, st):
    """keepalive_timeout timeout [header_timeout]: the second sets `Keep-Alive: timeout=N`
    after `Connection: keep-alive` (LocConf.keepalive_line)."""
    if "keepalive_timeout" in lv.vals:
        raise ConfigError('"keepalive_timeout" directive is duplicate', st.where)
    lv.vals["keepalive_timeout"] = msec(c, st)
    line = b"Connection: keep-alive\r\n"
    if len(st.args) == 2:
        try:
            header = int(parse_time(st.args[1], allow_ms=False))
        except ValueError:
            raise ConfigError('"keepalive_timeout" directive invalid value', st.where) from None
        line += b"Keep-Alive: timeout=%d\r\n" % header
    lv.vals["keepalive_line"] = line


def keepalive_disable(c, st) -> frozenset:
    """keepalive_disable none | browser ...: msie6, safari."""
    out = set()
    for arg in st.args:
        if arg not in ("none", "msie6", "safari"):
            raise ConfigError(f'invalid value "{arg}"', st.where)
        if arg != "none":
            out.add(arg)
    return frozenset(out)


def msec(c, st) -> float:
    try:
        return parse_time(st.args[0])
    except ValueError:
        raise _invalid(st) from None


def temp_path(c, st) -> tuple:
    """`client_body_temp_path path [level1 [level2 [level3]]]` (ngx_conf_set_path_slot); the
    master creates the directory (ngx_create_paths)."""
    levels = []
    for arg in st.args[1:]:
        n = as_number(arg)
        if not n:
            raise ConfigError(f'"{st.directive}" directive invalid value', st.where)
        levels.append(n)
    if sum(levels) > 10:           # nginx: the name's 10 digits hold the levels
        raise ConfigError(f'"{st.directive}" directive invalid value', st.where)
    path = c.path(st.args[0])
    value = (path, tuple(levels))
    if c.temp_paths.get(path, value) != value:
        raise ConfigError(f'the same path name "{path}" has the different levels', st.where)
    c.temp_paths.setdefault(path, value)
    return value


def in_file_only(c, st) -> str:
    value = st.args[0].lower()
    if value not in ("on", "off", "clean"):
        raise ConfigError(f'invalid value "{st.args[0]}"', st.where)
    return value


def msec_or_off(c, st) -> float:
    """A time, or `off` (0)."""
    return 0.0 if st.args[0] == "off" else msec(c, st)


def size(c, st) -> int:
    parse = parse_offset if st.directive in OFFSET_DIRECTIVES else parse_size
    try:
        return parse(st.args[0])
    except ValueError:
        raise _invalid(st) from None


def number(c, st) -> int:
    try:
        return parse_number(st.args[0])
    except ValueError:
        raise ConfigError(f'"{st.directive}" directive invalid number', st.where) from None


def count(c, st) -> int:
    try:
        return parse_number(st.args[0])
    except ValueError:
        raise ConfigError(f'invalid number "{st.args[0]}"', st.where) from None


def bufs(c, st) -> tuple[int, int]:
    """ngx_conf_set_bufs_slot: a number and a size, neither 0."""
    try:
        number, size_ = parse_number(st.args[0]), parse_size(st.args[1])
    except ValueError:
        raise _invalid(st) from None
    if not number or not size_:
        raise _invalid(st)
    return number, size_


def worker_processes(c, st) -> int:
    if st.args[0] == "auto":
        return os.cpu_count() or 1
    try:
        return parse_number(st.args[0])
    except ValueError:
        raise _invalid(st) from None


def first_arg(c, st) -> str:
    return st.args[0]


def args_tuple(c, st) -> tuple:
    return tuple(st.args)


def each_arg(c, st) -> list[str]:
    return list(st.args)


def index_args(c, st) -> list:
    """index: names with variables become Templates (rendered per request, as nginx)."""
    return [c.template(a, st.where) if "$" in a else a for a in st.args]


def path_arg(c, st) -> str:
    return c.path(st.args[0])


def template(c, st):
    return c.template(st.args[0], st.where)


def lower_bytes(c, st) -> bytes:
    return st.args[0].encode("utf-8", "surrogateescape").lower()


def http_version(c, st) -> str:
    if st.args[0] not in ("1.0", "1.1"):
        raise ConfigError(f'invalid value "{st.args[0]}"', st.where)
    return st.args[0]


def empty_gif(c, lv, st) -> None:
    lv.vals["empty_gif"] = True


def autoindex_format(c, st) -> str:
    if st.args[0] not in ("html", "xml", "json", "jsonp"):
        raise ConfigError(f'invalid value "{st.args[0]}"', st.where)
    return st.args[0]


def server_tokens(c, st) -> bool:
    if st.args[0].lower() == "build":     # nginx compares the enum case-insensitively
        return True
    try:
        return parse_flag(st.args[0])
    except ValueError:
        raise ConfigError(f'invalid value "{st.args[0]}"', st.where) from None


def next_upstream(c, st) -> frozenset:
    for arg in st.args:
        if arg not in NEXT_UPSTREAM:
            raise ConfigError(f'invalid value "{arg}"', st.where)
    return frozenset(a for a in st.args if a != "off")


def user(c, lv, st):
    """`user name [group]` (main): resolved now, as nginx does; ignored with nginx's warning
    unless ngate runs as root."""
    from ngate.supervisor.identity import resolve
    if "user" in lv.vals or "user_ignored" in lv.vals:
        raise ConfigError('"user" directive is duplicate', st.where)
    if os.geteuid() != 0:
        from ngate.observability import error_log
        error_log.warn('the "user" directive makes sense only if the master process runs with '
                       f'super-user privileges, ignored in {st.where}')
        lv.vals["user_ignored"] = True
        return
    group = st.args[1] if len(st.args) == 2 else None
    lv.vals["uid"], lv.vals["gid"] = resolve(st.args[0], group, st.where)
    lv.vals["user"], lv.vals["group"] = st.args[0], group or st.args[0]


def charset_types(c, lv, st):
    """`charset_types mime ...` (`*`: any) in addition to text/html, as nginx; a level that sets
    it replaces the inherited list."""
    if "charset_types" in lv.vals:
        raise ConfigError('"charset_types" directive is duplicate', st.where)
    types = [t.lower().encode("latin-1") for t in st.args]
    lv.vals["charset_types"] = None if b"*" in types else frozenset(types) | {b"text/html"}


# ---------------------------------------------------------------- logs

def error_log(c, lv, st):
    path = st.args[0]
    level = st.args[1] if len(st.args) > 1 else "error"
    if level not in LOG_LEVELS:
        raise ConfigError(f'invalid log level "{level}"', st.where)
    if path != "stderr" and not path.startswith("syslog:"):
        path = c.path(path)
        c.open_files[path] = st.where
    lv.vals.setdefault("error_log", []).append(ErrorLog(path=path, level=level))


def log_format(c, lv, st):
    name, rest = st.args[0], st.args[1:]
    escape = "default"
    if rest and rest[0].startswith("escape="):
        escape = rest[0][7:]
        if escape not in ("default", "json", "none"):
            raise ConfigError(f'unknown log format escaping "{escape}"', st.where)
        rest = rest[1:]
    if name in c.log_formats:
        raise ConfigError(f'duplicate "log_format" name "{name}"', st.where)
    if not rest:
        raise ConfigError('invalid number of arguments in "log_format" directive', st.where)
    c.log_formats[name] = LogFormat(name, c.template("".join(rest), st.where), escape)


def access_log(c, lv, st):
    if st.args[0] == "off":
        if len(st.args) > 1:
            raise ConfigError(f'invalid parameter "{st.args[1]}"', st.where)
        lv.vals.setdefault("access_log", []).append(AccessLog(path="off"))
        return
    fmt = c.log_formats["combined"]
    params = st.args[1:]
    if params and "=" not in params[0]:
        fmt = c.log_formats.get(params[0])
        if fmt is None:
            raise ConfigError(f'unknown log format "{params[0]}"', st.where)
        params = params[1:]
    condition = None
    buffer, flush = 0, None
    for p in params:
        if p.startswith("if="):
            condition = c.template(p[3:], st.where)
        elif p.startswith("buffer="):
            buffer = _log_param(parse_size, st, p, 7)
        elif p.startswith("flush="):
            flush = _log_param(parse_time, st, p, 6)
        elif p.startswith("gzip"):
            buffer = buffer or 64 * 1024            # nginx: gzip implies a 64k buffer
            _no_effect_warning(f'"gzip" parameter of "access_log" has no effect in ngate in '
                               f'{st.where}')
        else:
            raise ConfigError(f'invalid parameter "{p}"', st.where)
    if flush is not None and not buffer:
        raise ConfigError(f'no buffer is defined for access_log "{st.args[0]}"', st.where)
    path = st.args[0]
    path_template = None
    if not path.startswith("syslog:") and path != "/dev/stderr":
        path = c.path(path)
        if not has_variables(path):
            c.open_files[path] = st.where
        elif buffer:
            raise ConfigError("buffered logs cannot have variables in name", st.where)
        else:
            path_template = c.template(path, st.where)
    lv.vals.setdefault("access_log", []).append(
        AccessLog(path, fmt, condition, buffer, flush, path_template))


def _log_param(parse, st, p: str, skip: int):
    """buffer=size / flush=time of access_log, with nginx's message for a bad value."""
    try:
        value = parse(p[skip:])
    except ValueError:
        value = None
    if not value:
        raise ConfigError(f'invalid {p[:skip - 1]} value "{p}"', st.where)
    return value


# ---------------------------------------------------------------- headers, error pages, paths

def wire(text: str) -> str:
    """A header name or value as the config file's bytes, seen as latin-1 (the request path's
    convention for header bytes): nginx sends a name or value written in UTF-8, `X-ȿ` included,
    byte for byte."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def header_set(c, st, name: str, value: str, **flags) -> HeaderSet:
    name = wire(name)
    return HeaderSet(name, name.encode("latin-1").lower(), c.template(wire(value), st.where),
                     **flags)


def proxy_set_header(c, lv, st):
    name, value = st.args
    lv.vals.setdefault("proxy_set_header", []).append(header_set(c, st, name, value))
    lv.vals["proxy_set_header_given"] = True


def add_header(c, lv, st):
    """add_header and add_trailer (ngx_http_headers_add): name, value, optional `always`."""
    always = False
    if len(st.args) == 3:
        if st.args[2] != "always":
            raise ConfigError(f'invalid parameter "{st.args[2]}"', st.where)
        always = True
    lv.vals.setdefault(st.directive, []).append(
        header_set(c, st, st.args[0], st.args[1], always=always))


def error_page(c, lv, st):
    args = list(st.args)
    uri = args.pop()
    override = None
    if args and args[-1].startswith("="):
        text = args.pop()[1:]
        try:
            override = parse_number(text) if text else -1
        except ValueError:
            raise ConfigError(f'invalid value "={text}"', st.where) from None
    if not args:
        raise ConfigError('invalid number of arguments in "error_page" directive', st.where)
    page = ErrorPage(uri=c.template(uri, st.where), override=override, where=st.where)
    items = lv.vals.setdefault("error_page", [])
    for code in args:
        number = as_number(code)
        if number is None:
            raise ConfigError(f'invalid value "{code}"', st.where)
        if not 300 <= number <= 599:
            raise ConfigError(f'value "{code}" must be between 300 and 599', st.where)
        items.append((number, page))


def root(c, lv, st):
    _root_or_alias(c, lv, st, "root", "alias")


def alias(c, lv, st):
    _root_or_alias(c, lv, st, "alias", "root")


def _root_or_alias(c, lv, st, field: str, other: str):
    if field in lv.vals:
        raise ConfigError(f'"{field}" directive is duplicate', st.where)
    if other in lv.vals:
        raise ConfigError(f'"{field}" directive is duplicate, "{other}" directive was '
                          'specified earlier', st.where)
    path = st.args[0]
    if field == "root" and len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    if not path.startswith("$"):
        slash = field == "alias" and path.endswith("/")
        path = c.path(path) + ("/" if slash and path != "/" else "")
    lv.vals[field] = c.template(path, st.where)
    if field == "alias":    # nginx's clcf->alias: the prefix length it replaces, or the whole URI
        lv.vals["alias_len"] = -1 if lv.regex is not None or lv.modifier == "@" \
            else len(lv.pattern)


# ---------------------------------------------------------------- proxy_pass and redirect

def proxy_pass(c, lv, st):
    if "proxy_pass" in lv.vals:
        raise ConfigError('"proxy_pass" directive is duplicate', st.where)
    url = st.args[0]
    loc = lv.location()
    if has_variables(url):
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        lv.vals["proxy_pass"] = ProxyPass(
            scheme=scheme, upstream=None, host_header="", uri=None,
            location_prefix=loc.pattern if loc is not None else "",
            template=c.template(url, st.where), where=st.where)
        return
    pp = parse_proxy_pass(url, st.where, c.upstreams, c.implicit,
                          loc.pattern if loc is not None else "")
    if pp.uri is not None and (lv.ctx in ("lif", "limit_except") or loc is None
                               or loc.modifier in ("~", "~*", "@")):
        raise ConfigError('"proxy_pass" cannot have URI part in location given by regular '
                          'expression, or inside named location, or inside "if" statement, '
                          'or inside "limit_except" block', st.where)
    lv.vals["proxy_pass"] = pp


def proxy_redirect(c, lv, st):
    items = lv.vals.setdefault("proxy_redirect", [])
    if len(st.args) == 1:
        if st.args[0] not in ("default", "off"):
            raise ConfigError(f'invalid parameter "{st.args[0]}"', st.where)
        items.append(st.args[0])
        return
    src, dst = st.args
    if src.startswith("~*"):
        match = c.regex(src[2:], st.where, caseless=True)
    elif src.startswith("~"):
        match = c.regex(src[1:], st.where)
    else:
        match = c.template(src, st.where) if has_variables(src) else src
    items.append((match, c.template(dst, st.where)))


def proxy_cookie(c, lv, st):
    """proxy_cookie_domain / proxy_cookie_path `off` | `pattern replacement` (proxy/cookies.py):
    "~" (domain: any case) or "~*" / "~" (path) for a regex; a domain's leading dots dropped."""
    field = st.directive
    items = lv.vals.setdefault(field, [])
    if len(st.args) == 1:
        if st.args[0] != "off":
            raise ConfigError(f'invalid parameter "{st.args[0]}"', st.where)
        return                          # an empty list: nothing inherited
    pattern, repl = st.args
    domain = field == "proxy_cookie_domain"
    if pattern.startswith("~"):
        caseless = domain or pattern.startswith("~*")
        rx = c.regex(pattern[2:] if pattern.startswith("~*") and not domain else pattern[1:],
                     st.where, caseless=caseless)
        items.append(("regex", rx, c.template(repl, st.where)))
        return
    if domain:
        pattern = pattern[1:] if pattern.startswith(".") else pattern
        repl = repl[1:] if repl.startswith(".") else repl
    text = c.template(pattern, st.where) if has_variables(pattern) else pattern
    items.append(("domain" if domain else "path", text, c.template(repl, st.where)))


def proxy_cookie_flags(c, lv, st):
    """`proxy_cookie_flags off | cookie flag...` (`~cookie`: a regex, any case); flags may hold
    variables; unknown ones are ignored at run time, as nginx does."""
    items = lv.vals.setdefault("proxy_cookie_flags", [])
    if len(st.args) == 1:
        if st.args[0] != "off":
            raise ConfigError(f'invalid parameter "{st.args[0]}"', st.where)
        return
    cookie = st.args[0]
    flags = tuple(c.template(a, st.where) if has_variables(a) else a for a in st.args[1:])
    if cookie.startswith("~"):
        items.append(("regex", c.regex(cookie[1:], st.where, caseless=True), flags))
    else:
        items.append(("name", c.template(cookie, st.where) if has_variables(cookie) else cookie,
                      flags))


# ---------------------------------------------------------------- fastcgi module

def fastcgi_pass(c, lv, st):
    """`host:port`, `unix:/path` or an upstream block's name -> the Upstream group; with
    variables, the Template (resolved per request by proxy/fastcgi_proxy.py)."""
    if "fastcgi_pass" in lv.vals:
        raise ConfigError('"fastcgi_pass" directive is duplicate', st.where)
    addr = st.args[0]
    if has_variables(addr):
        lv.vals["fastcgi_pass"] = c.template(addr, st.where)
        return
    if addr[:5].lower() == "unix:":
        key = ("unix", addr[5:])
        name = addr
    else:
        host, port = split_host_port(addr, "upstream", st.where)
        if not host:
            raise ConfigError(f'no host in upstream "{addr}"', st.where)
        if port is None:
            group = c.upstreams.get(host.lower())
            if group is None:
                raise ConfigError(f'no port in upstream "{addr}"', st.where)
            lv.vals["fastcgi_pass"] = group
            return
        key = (host.lower(), port)
        name = addr_name(*key) if ":" not in host else f"[{host}]:{port}"
    group = c.implicit.get(key)
    if group is None:
        group = c.implicit[key] = Upstream(name=addr, servers=tuple(make_servers(name, st.where)),
                                           implicit=True, where=st.where)
    lv.vals["fastcgi_pass"] = group


def fastcgi_param(c, lv, st):
    if_not_empty = len(st.args) == 3
    if if_not_empty and st.args[2] != "if_not_empty":
        raise ConfigError(f'invalid parameter "{st.args[2]}"', st.where)
    lv.vals.setdefault("fastcgi_param", []).append(
        header_set(c, st, st.args[0], st.args[1], if_not_empty=if_not_empty))


def split_path_info(c, lv, st):
    """Two captures, as nginx requires; a repeated directive replaces the earlier one."""
    rx = c.regex(st.args[0], st.where)
    if rx.groups != 2:
        raise ConfigError(f'pattern "{st.args[0]}" must have 2 captures', st.where)
    lv.vals["fastcgi_split_path_info"] = rx


# ---------------------------------------------------------------- rewrite module

def set_var(c, lv, st):
    var, value = st.args
    if not var.startswith("$") or len(var) < 2:
        raise ConfigError(f'invalid variable name "{var}"', st.where)
    name = var[1:]
    if name in registry() and name not in CHANGEABLE_VARIABLES:
        raise ConfigError(f'the duplicate "{name}" variable', st.where)
    lv.ops.append(SetOp(name, c.template(value, st.where), st.where))


def return_(c, lv, st):
    first = st.args[0]
    code = as_number(first)
    if len(st.args) == 1 and code is None:
        if not first.startswith(URL_PREFIXES):
            raise ConfigError(f'invalid return code "{first}"', st.where)
        lv.ops.append(ReturnOp(302, c.template(first, st.where), st.where))
        return
    if code is None or code > 999:
        raise ConfigError(f'invalid return code "{first}"', st.where)
    # the text as the file's bytes (latin-1 view, as variables from the request render)
    text = c.template(wire(st.args[1]), st.where) if len(st.args) == 2 else None
    lv.ops.append(ReturnOp(code, text, st.where))


def rewrite(c, lv, st):
    flag_ = st.args[2] if len(st.args) == 3 else ""
    if flag_ not in ("", "last", "break", "redirect", "permanent"):
        raise ConfigError(f'invalid parameter "{flag_}"', st.where)
    replacement = st.args[1]
    if not flag_ and replacement.startswith(URL_PREFIXES):
        flag_ = "redirect"
    text = replacement[:-1] if replacement.endswith("?") else replacement
    q = text.find("?")
    parts = (c.template(text[:q], st.where), c.template(text[q + 1:], st.where)) if q >= 0 \
        else None
    lv.ops.append(RewriteOp(c.regex(st.args[0], st.where),
                            c.template(replacement, st.where), flag_, st.where, parts))


def break_(c, lv, st):
    lv.ops.append(BreakOp(st.where))


# ---------------------------------------------------------------- static files (ngate/static)

def expires(c, st):
    from ngate.static.expires import compile_expires
    return compile_expires(tuple(st.args), st.where)


def if_modified_since(c, st) -> str:
    if st.args[0] not in ("off", "exact", "before"):
        raise ConfigError(f'invalid value "{st.args[0]}" in "{st.directive}" directive, '
                          'it must be "off", "exact" or "before"', st.where)
    return st.args[0]


def lingering_close(c, st) -> str:
    if st.args[0] not in ("off", "on", "always"):
        raise ConfigError(f'invalid value "{st.args[0]}"', st.where)
    return st.args[0]


def try_files(c, lv, st):
    if "try_files" in lv.vals:
        raise ConfigError('"try_files" directive is duplicate', st.where)
    from ngate.config.model import TryFiles
    last = st.args[-1]
    code = None
    if last.startswith("="):
        code = as_number(last[1:])
        if code is None or not 0 < code < 1000:
            raise ConfigError(f'invalid code "{last}"', st.where)
    items = tuple(c.template(a, st.where) for a in st.args)
    lv.vals["try_files"] = TryFiles(block=lv.where, items=items, code=code)


def disable_symlinks(c, lv, st):
    """ngx_http_disable_symlinks: off | on | if_not_owner, and from=part (with variables)."""
    from ngate.config.model import DisableSymlinks
    if "disable_symlinks" in lv.vals:
        raise ConfigError('"disable_symlinks" directive is duplicate', st.where)
    mode = part = None
    for arg in st.args:
        if arg in ("off", "on", "if_not_owner"):
            mode = arg
        elif arg.startswith("from="):
            part = c.template(arg[5:], st.where)
        else:
            raise ConfigError(f'invalid parameter "{arg}"', st.where)
    if mode is None:
        raise ConfigError('"disable_symlinks" must have "off", "on" or "if_not_owner" parameter',
                          st.where)
    if len(st.args) == 2 and part is None:
        raise ConfigError(f'duplicate parameters "{st.args[0]} {st.args[1]}"', st.where)
    if mode == "off" and part is not None:
        raise ConfigError('"from=" cannot be used with "off" parameter', st.where)
    lv.vals["disable_symlinks"] = None if mode == "off" else DisableSymlinks(mode, part)


# ---------------------------------------------------------------- cors (an ngate extension)

CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def cors(c, lv, st):
    """`cors * | <origin>... | $var [credentials]`: the usual CORS headers on every response (as
    `add_header ... always`) and a 204 answer to preflight OPTIONS requests.

    Literal origins are an allow-list: a request whose Origin is one of them gets it back in
    Access-Control-Allow-Origin (with Access-Control-Allow-Credentials under `credentials`);
    any other origin gets neither. `*` and a variable are sent as they are; with `credentials`
    they reflect every origin, so -t warns about them."""
    from ngate.config.model import IfCondition, IfOp
    from ngate.observability import error_log
    args = list(st.args)
    credentials = args[-1] == "credentials"
    if credentials:
        args.pop()
    if not args:
        raise ConfigError('invalid number of arguments in "cors" directive', st.where)
    for arg in args:
        if arg == "credentials" or (len(args) > 1 and (arg == "*" or "$" in arg)):
            raise ConfigError(f'invalid parameter "{arg}"', st.where)
    origin = args[0]
    reflecting = origin == "*" or "$" in origin
    if credentials and reflecting:
        error_log.warn(f'"cors {origin} credentials" lets every web site read responses with '
                       f"the user's credentials; list the allowed origins instead in {st.where}")
    if reflecting:
        allow = c.template("$http_origin" if credentials and origin == "*" else origin, st.where)
        allow_credentials = c.template("true") if credentials else None
    else:
        allow, allow_credentials = _cors_allow_list(c, frozenset(args), credentials)
    headers = [("Access-Control-Allow-Origin", allow)]
    if origin != "*" or credentials:
        headers.append(("Vary", c.template("Origin")))
    if allow_credentials is not None:
        headers.append(("Access-Control-Allow-Credentials", allow_credentials))
    headers += [("Access-Control-Allow-Methods", c.template(CORS_METHODS)),
                ("Access-Control-Allow-Headers",
                 c.template("$http_access_control_request_headers")),
                ("Access-Control-Max-Age", c.template("86400"))]
    items = lv.vals.setdefault("add_header", [])
    for name, value in headers:
        items.append(HeaderSet(name, name.lower().encode("latin-1"), value, always=True))
    if lv.ctx in ("server", "location"):
        preflight = IfCondition("=", c.template("$request_method"), c.template("OPTIONS"))
        lv.ops.insert(0, IfOp(preflight, (ReturnOp(204, None, st.where),), None, st.where))


def _cors_allow_list(c, origins: frozenset, credentials: bool):
    """Templates for Access-Control-Allow-Origin and -Credentials that render only for a
    request whose Origin is in `origins` (an empty value is not sent, as add_header)."""
    from ngate.routing.variables import Template
    request_origin = c.template("$http_origin")

    def allowed(ctx):
        value = request_origin.render(ctx)
        return value if value in origins else None

    def allowed_credentials(ctx):
        return "true" if request_origin.render(ctx) in origins else None

    text = " ".join(sorted(origins))
    allow = Template(f"<origin if one of: {text}>", (allowed,))
    if not credentials:
        return allow, None
    return allow, Template(f"<true if Origin is one of: {text}>", (allowed_credentials,))
