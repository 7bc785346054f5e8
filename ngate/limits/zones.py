"""Shared memory zones as nginx declares them: `limit_req_zone` / `limit_conn_zone` and the
`zone=` references of `limit_req` / `limit_conn` (ngx_shared_memory_add's rules).

A name is one zone whatever module uses it: a reference may come before the declaration (the
size comes later), two declarations of a name are an error, a zone referenced by one module and
declared by the other is "already declared for a different use", and a name never given a size
is `zero size shared memory zone` once the whole configuration is read.

Across a reload a zone keeps its memory, and so its states, when its name, module and size are
unchanged (nginx's ngx_init_cycle); its key must then be unchanged too, or the reload fails. The
master records the zones of the configuration it runs with `adopt(config)`; the compiler looks
there first. New tables are created before the workers fork, so every worker maps the same one.
"""
from __future__ import annotations

from ngate.errors import ConfigError
from ngate.limits.conn_table import ConnTable
from ngate.limits.req_table import ReqTable

REQ, CONN = "limit_req", "limit_conn"
_TABLES = {REQ: ReqTable, CONN: ConnTable}

# (name) -> Zone of the configuration the master runs (set by adopt)
_LIVE: dict = {}


class Zone:
    """One zone of one configuration. Mutable only while the configuration is compiled."""
    __slots__ = ("name", "module", "size", "key", "rate", "table", "where")

    def __init__(self, name: str, module: str) -> None:
        self.name = name
        self.module = module
        self.size = 0
        self.key = None           # Template
        self.rate = 0             # limit_req: 1/1000 requests per second
        self.table = None
        self.where = None

    def __repr__(self) -> str:
        return f"Zone({self.module} {self.name!r} {self.size})"


class Zones:
    """The zones of the configuration being compiled (the compiler holds one)."""

    def __init__(self) -> None:
        self.by_name: dict[str, Zone] = {}

    def add(self, name: str, size: int, module: str, where) -> Zone:
        """ngx_shared_memory_add: the zone called `name` (size 0: a reference)."""
        zone = self.by_name.get(name)
        if zone is None:
            zone = self.by_name[name] = Zone(name, module)
        elif zone.module != module:
            raise ConfigError(f'the shared memory zone "{name}" is already declared for a '
                              'different use', where)
        if zone.size == 0:
            zone.size = size
        if size and size != zone.size:
            raise ConfigError(f'the size {size} of shared memory zone "{name}" conflicts with '
                              f'already declared size {zone.size}', where)
        return zone

    def finish(self) -> tuple:
        """After the whole configuration is read: sizes checked, memory attached."""
        for zone in self.by_name.values():
            if zone.size == 0:
                raise ConfigError(f'zero size shared memory zone "{zone.name}"')
        for zone in self.by_name.values():
            old = _LIVE.get(zone.name)
            if old is not None and old.module == zone.module and old.size == zone.size:
                if old.key.text != zone.key.text:
                    what = REQ if zone.module == REQ else "limit_conn_zone"
                    raise ConfigError(f'{what} "{zone.name}" uses the "{zone.key.text}" key '
                                      f'while previously it used the "{old.key.text}" key')
                zone.table = old.table
            else:
                zone.table = _TABLES[zone.module](zone.name, zone.size)
        return tuple(self.by_name.values())


def adopt(zones: tuple) -> None:
    """The master now runs a configuration with these zones: a reload reuses them."""
    _LIVE.clear()
    for zone in zones:
        _LIVE[zone.name] = zone
