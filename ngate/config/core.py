"""The handlers of nginx's core modules with a syntax of their own: main (worker_processes,
user), ngx_http_core_module (keepalive_*, client_body_temp_path, error_page, root, alias,
try_files, disable_symlinks, if_modified_since, lingering_close, limit_rate, server_tokens),
the headers module (add_header, add_trailer, expires), index, autoindex, empty_gif and
charset_types. Plain flags, sizes and times are rows of directives.py built from slots.py.
"""
from __future__ import annotations

import os

from ngate.config.model import ErrorPage
from ngate.config.slots import as_number, header_set, invalid_value, msec
from ngate.config.values import parse_flag, parse_number, parse_size, parse_time
from ngate.errors import ConfigError
from ngate.routing.variables import has_variables


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
        raise invalid_value(st) from None
    if value and st.directive == "limit_rate":
        c.limit_rate_used = True
    return value


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


def worker_processes(c, st) -> int:
    if st.args[0] == "auto":
        return os.cpu_count() or 1
    try:
        return parse_number(st.args[0])
    except ValueError:
        raise invalid_value(st) from None


def index_args(c, st) -> list:
    """index: names with variables become Templates (rendered per request, as nginx)."""
    return [c.template(a, st.where) if "$" in a else a for a in st.args]


def empty_gif(c, lv, st) -> None:   # the content handler (nginx's clcf->handler)
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


def add_header(c, lv, st):
    """add_header and add_trailer (ngx_http_headers_add): name, value, optional `always`."""
    always = False
    if len(st.args) == 3:
        if st.args[2] != "always":
            raise ConfigError(f'invalid parameter "{st.args[2]}"', st.where)
        always = True
    key = "headers.add_header" if st.directive == "add_header" else "add_trailer"  # filters'
    lv.vals.setdefault(key, []).append(header_set(c, st, st.args[0], st.args[1], always=always))


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


def open_file_cache(c, st):
    """ngx_http_core_open_file_cache: `off`, or `max=N [inactive=time]` (60s): a new table
    (static/open_cache.py) per directive; None for off (which wins wherever it stands)."""
    from ngate.static.open_cache import OpenFileCache
    max_entries, inactive, off = 0, 60, False
    for arg in st.args:
        if arg.startswith("max="):
            max_entries = as_number(arg[4:])
            if max_entries is None or max_entries <= 0:
                raise ConfigError(f'invalid "open_file_cache" parameter "{arg}"', st.where)
        elif arg.startswith("inactive="):
            try:
                inactive = parse_time(arg[9:], allow_ms=False)
            except ValueError:
                raise ConfigError(f'invalid "open_file_cache" parameter "{arg}"',
                                  st.where) from None
        elif arg == "off":
            off = True
        else:
            raise ConfigError(f'invalid "open_file_cache" parameter "{arg}"', st.where)
    if off:
        return None
    if max_entries == 0:
        raise ConfigError('"open_file_cache" must have the "max" parameter', st.where)
    return OpenFileCache(max_entries, inactive)


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
