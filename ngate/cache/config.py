"""proxy_cache_path and the proxy_cache* / fastcgi_cache* directives (nginx 1.22), and the
frozen CacheConf of a location (LocConf.proxy.cache / LocConf.fastcgi.cache; None: no cache).

A zone is one `proxy_cache_path ... keys_zone=name:size` or `fastcgi_cache_path ...`; as in
nginx each belongs to its module (a proxy_cache of a fastcgi_cache_path zone: "the shared memory
zone ... is already declared for a different use"). `proxy_cache name` may come before the path
that declares it, and an undeclared name fails the configuration once it is all read (`finish`).
fastcgi_cache has no default key: without fastcgi_cache_key nginx warns and every request has
the empty key. Inheritance is nginx's merge: every value is
inherited unless the level sets it; the list directives (proxy_cache_valid, _bypass, no_cache)
come whole from the innermost level that has any.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ngate.errors import ConfigError
from ngate.observability import error_log

PAGE = 4096
STALE_WORDS = frozenset({"error", "timeout", "invalid_header", "updating", "http_500",
                         "http_502", "http_503", "http_504", "http_403", "http_404", "http_429",
                         "off"})
DEFAULT_KEY = {"proxy": "$scheme$proxy_host$request_uri", "fastcgi": ""}


class CachePath:
    """One keys zone and its directory. Filled by proxy_cache_path; mutable only while the
    configuration is compiled (the store keeps its runtime state in store.Zone)."""
    __slots__ = ("name", "size", "path", "levels", "inactive", "max_size", "min_free",
                 "manager_files", "manager_sleep", "manager_threshold",
                 "where", "store", "used_at", "module", "warned")

    def __init__(self, name: str) -> None:
        self.name = name
        self.size = 0
        self.path = ""
        self.levels = ()
        self.inactive = 600
        self.max_size = None        # None: no limit (nginx's NGX_MAX_OFF_T_VALUE); 0 is a size
        self.min_free = 0
        self.manager_files = 100    # nginx's defaults: files per pass, then sleep (seconds),
        self.manager_sleep = 0.05   # and the time a pass may take (seconds)
        self.manager_threshold = 0.2
        self.where = None
        self.store = None
        self.used_at = None         # the first proxy_cache naming it (for "is unknown")
        self.module = None          # "proxy" or "fastcgi": the first directive naming it
        self.warned = set()         # where `no "fastcgi_cache_key"` was said


@dataclass(frozen=True, slots=True)
class CacheConf:
    zone: CachePath | None      # None: `zone_name` renders the name per request
    zone_name: object           # Template or None
    zones: object               # name -> CachePath, for zone_name
    key: object                 # Template
    valid: tuple                # ((frozenset of codes | None for any), seconds), in order
    methods: frozenset
    min_uses: int
    bypass: tuple               # Templates: any non-empty, not "0" -> BYPASS
    no_cache: tuple             # Templates: any non-empty, not "0" -> not stored
    use_stale: frozenset
    background_update: bool
    lock: bool
    lock_timeout: float
    lock_age: float
    revalidate: bool
    convert_head: bool
    ignore: frozenset           # lower-case header names of proxy_ignore_headers
    max_range_offset: int | None


def _paths(c) -> dict:
    paths = getattr(c, "cache_paths", None)
    if paths is None:
        paths = c.cache_paths = {}
    return paths


def zone_ref(c, name: str, module: str = "proxy", where=None) -> CachePath:
    paths = _paths(c)
    zone = paths.get(name)
    if zone is None:
        zone = paths[name] = CachePath(name)
    if zone.module is None:
        zone.module = module
    elif zone.module != module:
        raise ConfigError(f'the shared memory zone "{name}" is already declared for a '
                          f'different use', where)
    return zone


# ---------------------------------------------------------------- directive handlers

def cache_path(c, lv, st) -> None:
    """proxy_cache_path path [levels=1:2] [use_temp_path=on|off] keys_zone=name:size
    [inactive=time] [max_size=size] [min_free=size] [manager_*=] [loader_*=] [purger*=]"""
    from ngate.config.values import parse_size, parse_time
    path = st.args[0]
    if not os.path.isabs(path):
        path = os.path.join(c.prefix, path)
    name, size, levels = "", 0, ()
    inactive, max_size, min_free = 600, None, 0
    manager = {"manager_files": 100, "manager_sleep": 0.05, "manager_threshold": 0.2}
    for arg in st.args[1:]:
        key, eq, value = arg.partition("=")
        try:
            if key == "levels" and eq:
                levels = tuple(int(x) for x in value.split(":"))
                if len(levels) > 3 or any(n not in (1, 2) for n in levels):
                    raise ValueError
            elif key == "use_temp_path" and eq:
                if value not in ("on", "off"):
                    raise ValueError
            elif key == "keys_zone" and eq:
                name, colon, size_text = value.partition(":")
                if not colon or not name:
                    raise ConfigError(f'invalid keys zone size "{arg}"', st.where)
                size = parse_size(size_text)
                if size < 2 * PAGE:
                    raise ConfigError(f'keys zone "{name}" is too small', st.where)
            elif key == "inactive" and eq:
                inactive = parse_time(value)
            elif key == "max_size" and eq:
                max_size = parse_size(value) if value[-1:] not in "gG" else \
                    parse_size(value[:-1]) * 1024 * 1024 * 1024
            elif key == "min_free" and eq:
                min_free = parse_size(value)
            elif key == "manager_files" and eq:
                if not value.isdigit() or int(value) == 0:
                    raise ValueError
                manager[key] = int(value)
            elif key in ("manager_sleep", "manager_threshold") and eq:
                manager[key] = parse_time(value)
            elif key in ("loader_files",
                         "loader_sleep", "loader_threshold", "purger", "purger_files",
                         "purger_sleep", "purger_threshold") and eq:
                pass        # tuning of nginx's loader process (ngate has no loader)
            else:
                raise ConfigError(f'invalid parameter "{arg}"', st.where)
        except ValueError:
            what = '"levels"' if key == "levels" else f"{key} value"
            raise ConfigError(f'invalid {what} "{arg}"', st.where) from None
    if not name:
        raise ConfigError(f'"{st.directive}" must have "keys_zone" parameter', st.where)
    zone = zone_ref(c, name, st.directive.partition("_")[0], st.where)
    if zone.size:
        raise ConfigError(f'duplicate zone "{name}"', st.where)
    zone.size, zone.path, zone.levels = size, path, levels
    zone.inactive, zone.max_size, zone.min_free, zone.where = inactive, max_size, min_free, st.where
    zone.manager_files = manager["manager_files"]
    zone.manager_sleep = manager["manager_sleep"]
    zone.manager_threshold = manager["manager_threshold"]


def cache_paths(c) -> tuple:
    """Every proxy_cache_path / fastcgi_cache_path of the configuration (for the manager)."""
    return tuple(_paths(c).values())


def _key(mod: str, field: str) -> str:
    return f"{mod}_{field}"


def cache(mod: str):
    def handle(c, lv, st):
        field = _key(mod, "cache")
        if field in lv.vals:
            raise ConfigError(f'"{st.directive}" directive is duplicate', st.where)
        arg = st.args[0]
        if "$" in arg:
            # the zone named at request time among every proxy_cache_path (ngx_http_upstream_
            # cache_get: an unknown name is a 500, an empty one no cache)
            lv.vals[field] = (c.template(arg), _paths(c))
            return
        if arg == "off":
            lv.vals[field] = None
            return
        zone = lv.vals[field] = zone_ref(c, arg, mod, st.where)
        lv.vals[_key(mod, "cache_at")] = st.where
        if zone.used_at is None:
            zone.used_at = (st.directive, st.where)
    return handle


def cache_key(mod: str):
    def handle(c, lv, st):
        field = _key(mod, "cache_key")
        if field in lv.vals:
            raise ConfigError(f'"{st.directive}" directive is duplicate', st.where)
        lv.vals[field] = c.template(st.args[0])
    return handle


def templates(mod: str, name: str):
    def handle(c, lv, st):
        lv.vals.setdefault(_key(mod, name), []).extend(c.template(a) for a in st.args)
    return handle


def cache_valid(mod: str):
    from ngate.config.values import parse_time

    def handle(c, lv, st):
        try:
            seconds = parse_time(st.args[-1], allow_ms=False)
        except ValueError:
            raise ConfigError(f'invalid time value "{st.args[-1]}"', st.where) from None
        codes = st.args[:-1]
        items = lv.vals.setdefault(_key(mod, "cache_valid"), [])
        if not codes:
            items.append((frozenset({200, 301, 302}), seconds))
            return
        if "any" in codes:
            items.append((None, seconds))
            codes = [x for x in codes if x != "any"]
        if codes:
            try:
                nums = frozenset(int(x) for x in codes)
            except ValueError:
                raise ConfigError(f'invalid status "{codes[0]}"', st.where) from None
            if any(n < 100 or n > 599 for n in nums):
                raise ConfigError("status must be between 100 and 599", st.where)
            items.append((nums, seconds))
    return handle


def words(mod: str, name: str, allowed: frozenset | None, lower: bool = False):
    """A bitmask directive (ngx_conf_set_bitmask_slot): repeated occurrences add up."""
    def handle(c, lv, st):
        field = _key(mod, name)
        vals = [a.lower() if lower else a for a in st.args] + list(lv.vals.get(field, ()))
        if allowed is not None:
            for a in vals:
                if a not in allowed:
                    raise ConfigError(f'invalid value "{a}"', st.where)
        lv.vals[field] = frozenset(vals)
    return handle


def register(directive, hsl, scalar, flag, number, msec, size) -> None:
    """Rows for config/directives.py: the proxy and fastcgi cache directives."""
    for mod in ("proxy", "fastcgi"):
        directive(f"{mod}_cache_path", {"http"}, (2, None), cache_path)
        directive(f"{mod}_cache", hsl, 1, cache(mod))
        directive(f"{mod}_cache_key", hsl, 1, cache_key(mod))
        directive(f"{mod}_cache_valid", hsl, (1, None), cache_valid(mod))
        directive(f"{mod}_cache_bypass", hsl, (1, None), templates(mod, "cache_bypass"))
        directive(f"{mod}_no_cache", hsl, (1, None), templates(mod, "no_cache"))
        directive(f"{mod}_cache_methods", hsl, (1, None),
                  words(mod, "cache_methods", frozenset({"GET", "HEAD", "POST"})))
        directive(f"{mod}_cache_use_stale", hsl, (1, None),
                  words(mod, "cache_use_stale", STALE_WORDS))
        directive(f"{mod}_cache_min_uses", hsl, 1, scalar(f"{mod}_cache_min_uses", number))
        directive(f"{mod}_cache_lock", hsl, 1, scalar(f"{mod}_cache_lock", flag))
        directive(f"{mod}_cache_lock_timeout", hsl, 1, scalar(f"{mod}_cache_lock_timeout", msec))
        directive(f"{mod}_cache_lock_age", hsl, 1, scalar(f"{mod}_cache_lock_age", msec))
        directive(f"{mod}_cache_revalidate", hsl, 1, scalar(f"{mod}_cache_revalidate", flag))
        directive(f"{mod}_cache_background_update", hsl, 1,
                  scalar(f"{mod}_cache_background_update", flag))
        directive(f"{mod}_cache_max_range_offset", hsl, 1,
                  scalar(f"{mod}_cache_max_range_offset", size))
    directive("proxy_cache_convert_head", hsl, 1, scalar("proxy_cache_convert_head", flag))


# ---------------------------------------------------------------- compiled per location

def build(vals: dict, mod: str):
    """The CacheConf of a level's merged values, or None without `proxy_cache` (or
    `fastcgi_cache`). fastcgi_cache never sends a HEAD as GET (nginx has no
    fastcgi_cache_convert_head: the application gets REQUEST_METHOD HEAD)."""
    zone = vals.get(_key(mod, "cache"))
    if zone is None:
        return None
    zone_name = zones = None
    if isinstance(zone, tuple):
        zone_name, zones = zone
        zone = None
    g = vals.get
    key = g(_key(mod, "cache_key"))
    if key is None:
        from ngate.routing.variables import compile_template
        key = compile_template(DEFAULT_KEY[mod])
        where = g(_key(mod, "cache_at"))
        if mod == "fastcgi" and zone is not None and where not in zone.warned:
            zone.warned.add(where)
            error_log.warn(f'no "fastcgi_cache_key" for "fastcgi_cache" in {where}')
    methods = g(_key(mod, "cache_methods"), frozenset()) | {"GET", "HEAD"}
    return CacheConf(
        zone=zone, zone_name=zone_name, zones=zones, key=key, valid=tuple(g(_key(mod, "cache_valid"), ())),
        methods=frozenset(methods), min_uses=g(_key(mod, "cache_min_uses"), 1),
        bypass=tuple(g(_key(mod, "cache_bypass"), ())),
        no_cache=tuple(g(_key(mod, "no_cache"), ())),
        use_stale=g(_key(mod, "cache_use_stale"), frozenset()) - {"off"},
        background_update=g(_key(mod, "cache_background_update"), False),
        lock=g(_key(mod, "cache_lock"), False),
        lock_timeout=g(_key(mod, "cache_lock_timeout"), 5.0),
        lock_age=g(_key(mod, "cache_lock_age"), 5.0),
        revalidate=g(_key(mod, "cache_revalidate"), False),
        convert_head=g("proxy_cache_convert_head", True) if mod == "proxy" else False,
        ignore=frozenset(n.decode() for n in g(f"{mod}.ignore_headers", frozenset())),
        max_range_offset=g(_key(mod, "cache_max_range_offset")))


def finish(c) -> None:
    """After the whole configuration: every zone used has a proxy_cache_path."""
    for zone in _paths(c).values():
        if not zone.size:
            directive, where = zone.used_at
            raise ConfigError(f'"{directive}" zone "{zone.name}" is unknown', where)


def create_paths(c, main) -> None:
    """nginx's ngx_create_paths: each cache directory is made (0700) when the configuration is
    loaded and, for a master running as root, given to the workers' user."""
    from ngate.cache.store import Zone
    for zone in _paths(c).values():
        zone.store = Zone(zone)
        path = zone.path
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as err:
            raise ConfigError(f'mkdir() "{path}" failed ({err.errno}: {err.strerror})',
                              zone.where) from None
        uid = getattr(main, "uid", None)
        if uid is not None and os.geteuid() == 0:
            try:
                st = os.stat(path)
                if st.st_uid != uid:
                    os.chown(path, uid, -1)
            except OSError as err:
                raise ConfigError(f'chown("{path}", {uid}) failed ({err.errno}: '
                                  f'{err.strerror})', zone.where) from None
