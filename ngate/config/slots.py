"""How a directive's arguments become values: nginx's ngx_conf_set_*_slot family.

Value parsers `(compiler, stmt) -> value` (flag, size, msec, number, bufs, ...) are combined with
`scalar` (one value per level, `"x" directive is duplicate` otherwise), `array` (items collected
per level; compile.py lets the innermost level that has any item replace the outer levels'
items, as nginx does) and `bitmask`. `no_effect` and `refused` are the handlers of the class-2
and class-3 rows of directives.py. The module-owned handlers (core.py, proxy.py, logs.py ...)
are built from these.
"""
from __future__ import annotations

from ngate.config.model import HeaderSet
from ngate.config.values import parse_flag, parse_number, parse_offset, parse_size, parse_time
from ngate.errors import ConfigError


# off_t values (ngx_conf_set_off_slot: `g` allowed); every other size is a size_t
OFFSET_DIRECTIVES = frozenset({"client_max_body_size", "proxy_max_temp_file_size",
                               "fastcgi_max_temp_file_size"})


def section_key(name: str) -> str:
    """The Level key of a directive that fills a field of its module's section: "proxy_x" ->
    "proxy.x" (compile.py builds LocConf.proxy from the "proxy." keys)."""
    module, _, field = name.partition("_")
    return f"{module}.{field}"


def scalar(field: str, parse):
    def handle(c, lv, st):
        if field in lv.vals:
            raise ConfigError(f'"{st.directive}" directive is duplicate', st.where)
        lv.vals[field] = parse(c, st)
    handle.fills = (field,)             # the Level key (tests/unit/test_config_sections.py)
    return handle


def array(field: str, item, extend: bool = False):
    def handle(c, lv, st):
        items = lv.vals.setdefault(field, [])
        value = item(c, st)
        items.extend(value) if extend else items.append(value)
    handle.fills = (field,)
    return handle


def no_effect(parse=None, warn: bool = False, default: tuple | None = None):
    """A class-2 directive (directives.py): its value is checked as nginx checks it, then
    dropped. `warn`: ngate says once per occurrence that it has no effect (unless the
    arguments are nginx's default, which is what ngate does anyway)."""
    def handle(c, lv, st):
        if parse is not None:
            parse(c, st)
        if warn and not is_default(st.args, default):
            no_effect_warning(f'"{st.directive}" has no effect in ngate in {st.where}')
    handle.not_implemented = True       # for readers of the handler (the row's `support` says it)
    return handle


def no_effect_warning(text: str) -> None:
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


def as_number(text: str) -> int | None:
    """ngx_atoi's value, or None where it returns NGX_ERROR."""
    try:
        return parse_number(text)
    except ValueError:
        return None


def invalid_value(st) -> ConfigError:
    return ConfigError(f'"{st.directive}" directive invalid value', st.where)


def flag(c, st) -> bool:
    try:
        return parse_flag(st.args[0])
    except ValueError:
        raise ConfigError(f'invalid value "{st.args[0]}" in "{st.directive}" directive, '
                          'it must be "on" or "off"', st.where) from None


def bitmask(field: str, parse):
    """nginx's ngx_conf_set_bitmask_slot: repeated occurrences in one block add up."""
    def handle(c, lv, st):
        lv.vals[field] = lv.vals.get(field, frozenset()) | parse(c, st)
    handle.fills = (field,)
    return handle


def msec(c, st) -> float:
    try:
        return parse_time(st.args[0])
    except ValueError:
        raise invalid_value(st) from None


def sec(c, st) -> int:
    """ngx_conf_set_sec_slot: whole seconds (no `ms`)."""
    try:
        return parse_time(st.args[0], allow_ms=False)
    except ValueError:
        raise invalid_value(st) from None


def msec_or_off(c, st) -> float:
    """A time, or `off` (0)."""
    return 0.0 if st.args[0] == "off" else msec(c, st)


def size(c, st) -> int:
    parse = parse_offset if st.directive in OFFSET_DIRECTIVES else parse_size
    try:
        return parse(st.args[0])
    except ValueError:
        raise invalid_value(st) from None


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
        raise invalid_value(st) from None
    if not number or not size_:
        raise invalid_value(st)
    return number, size_


def first_arg(c, st) -> str:
    return st.args[0]


def args_tuple(c, st) -> tuple:
    return tuple(st.args)


def each_arg(c, st) -> list[str]:
    return list(st.args)


def path_arg(c, st) -> str:
    return c.path(st.args[0])


def template(c, st):
    return c.template(st.args[0], st.where)


def lower_bytes(c, st) -> bytes:
    return st.args[0].encode("utf-8", "surrogateescape").lower()


def wire(text: str) -> str:
    """A header name or value as the config file's bytes, seen as latin-1 (the request path's
    convention for header bytes): nginx sends a name or value written in UTF-8, `X-ȿ` included,
    byte for byte."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def header_set(c, st, name: str, value: str, **flags) -> HeaderSet:
    name = wire(name)
    return HeaderSet(name, name.encode("latin-1").lower(), c.template(wire(value), st.where),
                     **flags)
