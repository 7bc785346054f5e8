"""The limit_req and limit_conn directives, parsed as nginx's handlers parse them, and the
compiled per-location `Limits` (LocConf.limits; None where no limit applies, so a location
without limits pays one attribute test per request).

Inheritance (nginx's merge_conf): the limit_req list and the limit_conn list each come whole from
the innermost level that has any; `*_status` (503), `*_log_level` (error) and `*_dry_run` (off)
are ordinary inherited values. The raw values live on the compiler's levels under these keys
and are folded into one Limits by `build(vals)`.
"""
from __future__ import annotations

from dataclasses import dataclass

from ngate.errors import ConfigError
from ngate.limits.zones import CONN, REQ

PAGE = 4096
LOG_LEVELS = ("info", "notice", "warn", "error")
# nginx's delay_log_level: one level less severe than limit_req_log_level (info stays info)
_DELAY_LEVEL = {"error": "warn", "warn": "notice", "notice": "info", "info": "info"}
NODELAY = (2 ** 63 - 1) // 1000 * 1000       # nginx: NGX_MAX_INT_T_VALUE / 1000, in 1/1000


@dataclass(frozen=True, slots=True)
class LimitReq:
    zone: object           # zones.Zone
    burst: int             # 1/1000 requests
    delay: int             # 1/1000 requests (nodelay: NODELAY)


@dataclass(frozen=True, slots=True)
class LimitConn:
    zone: object
    conn: int


@dataclass(frozen=True, slots=True)
class Limits:
    req: tuple = ()
    req_status: int = 503
    req_log_level: str = "error"
    req_delay_level: str = "warn"
    req_dry_run: bool = False
    conn: tuple = ()
    conn_status: int = 503
    conn_log_level: str = "error"
    conn_dry_run: bool = False


def _atoi(text: str) -> int:
    """ngx_atoi: ASCII digits only, at most 2^63 - 1, else -1."""
    from ngate.config.values import parse_number    # (ngate.config imports this module)
    try:
        return parse_number(text)
    except ValueError:
        return -1


def _zone_size(arg: str, where) -> tuple[str, int]:
    """`zone=name:size` of a *_zone directive."""
    from ngate.config.values import parse_size      # (ngate.config imports this module)
    name, colon, size_text = arg[5:].partition(":")
    if not colon:
        raise ConfigError(f'invalid zone size "{arg}"', where)
    try:
        size = parse_size(size_text)
    except ValueError:
        raise ConfigError(f'invalid zone size "{arg}"', where) from None
    if size < 8 * PAGE:
        raise ConfigError(f'zone "{arg}" is too small', where)
    return name, size


def _declare(c, st, module: str, size: int, name: str, key):
    zone = c.zones.add(name, size, module, st.where)
    if zone.key is not None:
        raise ConfigError(f'{st.directive} "{name}" is already bound to key "{zone.key.text}"',
                          st.where)
    zone.key = key
    zone.where = st.where
    return zone


# ---------------------------------------------------------------- directive handlers

def limit_req_zone(c, lv, st) -> None:
    key = c.template(st.args[0])      # nginx names no file:line for an unknown variable
    name, size, rate, scale = "", 0, 1, 1
    for arg in st.args[1:]:
        if arg.startswith("zone="):
            name, size = _zone_size(arg, st.where)
        elif arg.startswith("rate="):
            text = arg[5:]
            if text.endswith("r/s"):
                text = text[:-3]
            elif text.endswith("r/m"):
                text, scale = text[:-3], 60
            rate = _atoi(text)
            if rate <= 0:
                raise ConfigError(f'invalid rate "{arg}"', st.where)
        else:
            raise ConfigError(f'invalid parameter "{arg}"', st.where)
    if not name:
        raise ConfigError(f'"{st.directive}" must have "zone" parameter', st.where)
    zone = _declare(c, st, REQ, size, name, key)
    zone.rate = rate * 1000 // scale


def limit_conn_zone(c, lv, st) -> None:
    key = c.template(st.args[0])      # nginx names no file:line for an unknown variable
    name, size = "", 0
    for arg in st.args[1:]:
        if arg.startswith("zone="):
            name, size = _zone_size(arg, st.where)
        else:
            raise ConfigError(f'invalid parameter "{arg}"', st.where)
    if not name:
        raise ConfigError(f'"{st.directive}" must have "zone" parameter', st.where)
    _declare(c, st, CONN, size, name, key)


def limit_req(c, lv, st) -> None:
    zone, burst, delay = None, 0, 0
    for arg in st.args:
        if arg.startswith("zone="):
            zone = c.zones.add(arg[5:], 0, REQ, st.where)
        elif arg.startswith("burst="):
            burst = _atoi(arg[6:])
            if burst <= 0:
                raise ConfigError(f'invalid burst value "{arg}"', st.where)
        elif arg.startswith("delay="):
            delay = _atoi(arg[6:])
            if delay <= 0:
                raise ConfigError(f'invalid delay value "{arg}"', st.where)
        elif arg == "nodelay":
            delay = NODELAY // 1000
        else:
            raise ConfigError(f'invalid parameter "{arg}"', st.where)
    if zone is None:
        raise ConfigError(f'"{st.directive}" must have "zone" parameter', st.where)
    items = lv.vals.setdefault("limit_req", [])
    if any(item.zone is zone for item in items):
        raise ConfigError(f'"{st.directive}" directive is duplicate', st.where)
    items.append(LimitReq(zone, burst * 1000, delay * 1000))


def limit_conn(c, lv, st) -> None:
    zone = c.zones.add(st.args[0], 0, CONN, st.where)
    items = lv.vals.setdefault("limit_conn", [])
    if any(item.zone is zone for item in items):
        raise ConfigError(f'"{st.directive}" directive is duplicate', st.where)
    n = _atoi(st.args[1])
    if n <= 0:
        raise ConfigError(f'invalid number of connections "{st.args[1]}"', st.where)
    if n > 65535:
        raise ConfigError("connection limit must be less 65536", st.where)
    items.append(LimitConn(zone, n))


def status_code(c, st) -> int:
    n = _atoi(st.args[0])
    if n < 0:
        raise ConfigError(f'"{st.directive}" directive invalid number', st.where)
    if not 400 <= n <= 599:
        raise ConfigError("value must be between 400 and 599", st.where)
    return n


def log_level(c, st) -> str:
    if st.args[0] not in LOG_LEVELS:
        raise ConfigError(f'invalid value "{st.args[0]}"', st.where)
    return st.args[0]


def register(directive, contexts, scalar, flag) -> None:
    """Rows for config/directives.py (contexts: http, server, location)."""
    directive("limit_req_zone", {"http"}, 3, limit_req_zone)
    directive("limit_req", contexts, (1, 3), limit_req)
    directive("limit_req_status", contexts, 1, scalar("limit_req_status", status_code))
    directive("limit_req_log_level", contexts, 1, scalar("limit_req_log_level", log_level))
    directive("limit_req_dry_run", contexts, 1, scalar("limit_req_dry_run", flag))
    directive("limit_conn_zone", {"http"}, 2, limit_conn_zone)
    directive("limit_conn", contexts, 2, limit_conn)
    directive("limit_conn_status", contexts, 1, scalar("limit_conn_status", status_code))
    directive("limit_conn_log_level", contexts, 1, scalar("limit_conn_log_level", log_level))
    directive("limit_conn_dry_run", contexts, 1, scalar("limit_conn_dry_run", flag))


# ---------------------------------------------------------------- compiled per location

def build(vals: dict):
    """The Limits of a level's merged values, or None when it has no limit_req/limit_conn."""
    req = tuple(vals.get("limit_req", ()))
    conn = tuple(vals.get("limit_conn", ()))
    if not req and not conn:
        return None
    level = vals.get("limit_req_log_level", "error")
    return Limits(req=req, req_status=vals.get("limit_req_status", 503), req_log_level=level,
                  req_delay_level=_DELAY_LEVEL[level],
                  req_dry_run=vals.get("limit_req_dry_run", False),
                  conn=conn, conn_status=vals.get("limit_conn_status", 503),
                  conn_log_level=vals.get("limit_conn_log_level", "error"),
                  conn_dry_run=vals.get("limit_conn_dry_run", False))
