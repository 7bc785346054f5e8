"""The response filters' directives, parsed as nginx parses them, and the per-location chain
(LocConf.filters: a tuple in filters/__init__.py's order, None when the location has none;
LocConf.static.gzip_static: None, or ("on" | "always", GzipCore)).

Inheritance as nginx's merge functions: every value from the innermost level that set it;
gzip_types and gzip_disable's regexes come whole from the innermost level that has any;
gzip_proxied's flags from the innermost level that has the directive (several on one level add
up); gzip_disable msie6 is its own inherited value.
"""
from __future__ import annotations

from ngate.errors import ConfigError

DEFAULT_TYPES = frozenset({b"text/html"})


def _flag(c, st) -> bool:
    v = st.args[0].lower()
    if v not in ("on", "off"):
        raise ConfigError(f'invalid value "{st.args[0]}" in "{st.directive}" directive, '
                          'it must be "on" or "off"', st.where)
    return v == "on"


def _invalid_value(st, arg: str) -> ConfigError:
    return ConfigError(f'invalid value "{arg}"', st.where)


def register(directive, HSL, HSLI, scalar, size, bufs) -> None:
    def gzip_proxied(c, lv, st):
        flags = lv.vals.setdefault("gzip_proxied", set())
        for arg in st.args:
            if arg not in ("off", "expired", "no-cache", "no-store", "private",
                           "no_last_modified", "no_etag", "auth", "any"):
                raise _invalid_value(st, arg)
            flags.add(arg)

    def gzip_types(c, lv, st):
        types = lv.vals.setdefault("gzip_types", set())
        for arg in st.args:
            types.add(arg.lower().encode("latin-1"))

    def gzip_disable(c, lv, st):
        for arg in st.args:
            if arg == "msie6":
                lv.vals["gzip_disable_msie6"] = True
            elif arg == "degradation":
                pass
            else:
                lv.vals.setdefault("gzip_disable", []).append(c.regex(arg, st.where, True))

    def comp_level(c, st) -> int:
        v = st.args[0]
        if not v.isdigit():
            raise ConfigError(f'"{st.directive}" directive invalid number', st.where)
        if not 1 <= int(v) <= 9:
            raise ConfigError("value must be between 1 and 9", st.where)
        return int(v)

    def http_version(c, st) -> int:
        if st.args[0] not in ("1.0", "1.1"):
            raise _invalid_value(st, st.args[0])
        return 0 if st.args[0] == "1.0" else 1

    def gzip_static(c, st) -> str:
        v = st.args[0]
        if v not in ("on", "off", "always"):
            raise _invalid_value(st, v)
        return v

    def positive_bufs(c, st):
        n, sz = bufs(c, st)
        if n == 0 or sz == 0:
            raise ConfigError(f'"{st.directive}" directive invalid value', st.where)
        return (n, sz)

    directive("gzip", HSLI, 1, scalar("gzip", _flag))
    directive("gzip_vary", HSL, 1, scalar("gzip_vary", _flag))
    directive("gzip_comp_level", HSL, 1, scalar("gzip_comp_level", comp_level))
    directive("gzip_min_length", HSL, 1, scalar("gzip_min_length", size))
    directive("gzip_buffers", HSL, 2, scalar("gzip_buffers", positive_bufs))
    directive("gzip_http_version", HSL, 1, scalar("gzip_http_version", http_version))
    directive("gzip_types", HSL, (1, None), gzip_types)
    directive("gzip_proxied", HSL, (1, None), gzip_proxied)
    directive("gzip_disable", HSL, (1, None), gzip_disable)
    directive("gzip_static", HSL, 1, scalar("gzip_static", gzip_static))
    def _wire(text: str) -> str:
        return text.encode("utf-8", "surrogateescape").decode("latin-1")

    def sub_filter(c, lv, st):
        match, value = st.args
        match, value = _wire(match), _wire(value)   # nginx matches the file's bytes (UTF-8)
        match_v = c.template(match, st.where) if _has_vars(match) else \
            match.encode("latin-1").lower()
        if match_v == b"":
            raise ConfigError("empty search pattern", st.where)
        lv.vals.setdefault("sub_filter", []).append((match_v, c.template(value, st.where)))

    def sub_filter_types(c, lv, st):
        types = lv.vals.setdefault("sub_filter_types", set())
        for arg in st.args:
            types.add(arg.lower().encode("latin-1"))

    directive("sub_filter", HSL, 2, sub_filter)
    directive("sub_filter_once", HSL, 1, scalar("sub_filter_once", _flag))
    directive("sub_filter_last_modified", HSL, 1, scalar("sub_filter_last_modified", _flag))
    directive("sub_filter_types", HSL, (1, None), sub_filter_types)
    def ssi_types(c, lv, st):
        types = lv.vals.setdefault("ssi_types", set())
        for arg in st.args:
            types.add(arg.lower().encode("latin-1"))

    def addition_types(c, lv, st):
        types = lv.vals.setdefault("addition_types", set())
        for arg in st.args:
            types.add(arg.lower().encode("latin-1"))

    def body_uri(c, st):
        return st.args[0] or None

    directive("ssi", HSLI, 1, scalar("ssi", _flag))
    directive("ssi_silent_errors", HSL, 1, scalar("ssi_silent_errors", _flag))
    directive("ssi_ignore_recycled_buffers", HSL, 1,
              scalar("ssi_ignore_recycled_buffers", _flag))
    directive("ssi_last_modified", HSL, 1, scalar("ssi_last_modified", _flag))
    directive("ssi_min_file_chunk", HSL, 1, scalar("ssi_min_file_chunk", size))
    directive("ssi_value_length", HSL, 1, scalar("ssi_value_length", size))
    directive("ssi_types", HSL, (1, None), ssi_types)
    directive("add_before_body", HSL, 1, scalar("add_before_body", body_uri))
    directive("add_after_body", HSL, 1, scalar("add_after_body", body_uri))
    directive("addition_types", HSL, (1, None), addition_types)
    directive("gunzip", HSL, 1, scalar("gunzip", _flag))
    directive("gunzip_buffers", HSL, 2, scalar("gunzip_buffers", positive_bufs))


def _has_vars(text: str) -> bool:
    from ngate.routing.variables import has_variables
    return has_variables(text)


def build(vals: dict, recode=None):
    """(filters tuple or None, gzip_static or None) for a location's merged values."""
    gzip_on = vals.get("gzip", False)
    gunzip_on = vals.get("gunzip", False)
    static = vals.get("gzip_static", "off")
    subs = vals.get("sub_filter")
    ssi_on = vals.get("ssi", False)
    before = vals.get("add_before_body")
    after = vals.get("add_after_body")
    trailers = vals.get("add_trailer")
    if not (gzip_on or gunzip_on or subs or static != "off" or ssi_on or before or after
            or recode is not None or trailers):
        return None, None
    from ngate.filters.gzip import GunzipFilter, GzipCore, GzipFilter
    proxied = vals.get("gzip_proxied")
    core = GzipCore(vary=vals.get("gzip_vary", False),
                    proxied=frozenset(proxied) if proxied else frozenset({"off"}),
                    disable=tuple(vals.get("gzip_disable", ())),
                    msie6=vals.get("gzip_disable_msie6", False),
                    http_version=vals.get("gzip_http_version", 1))
    chain = []
    if gunzip_on:
        number, size = vals.get("gunzip_buffers", (32, 4096))
        chain.append(GunzipFilter(core, number * size))
    if before or after:
        from ngate.filters.addition import AdditionFilter
        at = vals.get("addition_types")
        chain.append(AdditionFilter(before, after,
                                    DEFAULT_TYPES | frozenset(at) if at else DEFAULT_TYPES))
    if subs:
        from ngate.filters.sub import SubFilter
        st = vals.get("sub_filter_types")
        chain.append(SubFilter(tuple(subs), DEFAULT_TYPES | frozenset(st) if st else DEFAULT_TYPES,
                               vals.get("sub_filter_once", True),
                               vals.get("sub_filter_last_modified", False)))
    if recode is not None:
        from ngate.filters.charset import CharsetFilter
        chain.append(CharsetFilter(recode))
    if ssi_on:
        from ngate.filters.ssi import SsiFilter
        st = vals.get("ssi_types")
        chain.append(SsiFilter(DEFAULT_TYPES | frozenset(st) if st else DEFAULT_TYPES,
                               vals.get("ssi_silent_errors", False),
                               vals.get("ssi_value_length", 256),
                               vals.get("ssi_last_modified", False)))
    if gzip_on:
        types = vals.get("gzip_types")
        types = DEFAULT_TYPES | frozenset(types) if types else DEFAULT_TYPES
        chain.append(GzipFilter(core, types, vals.get("gzip_min_length", 20),
                                vals.get("gzip_comp_level", 1)))
    if trailers:
        from ngate.filters.trailers import TrailersFilter
        chain.append(TrailersFilter(tuple(trailers)))
    return (tuple(chain) or None), (None if static == "off" else (static, core))
