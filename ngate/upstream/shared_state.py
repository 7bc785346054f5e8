"""Peer state of `upstream { zone name [size]; }` groups in shared memory (ngx_http_upstream_zone).

Without `zone`, each worker keeps its own peer state (balancer.PeerHealth), as nginx does. With
it, the state nginx keeps in the zone lives in one memfd mapped by every worker: per peer the
active connections (max_conns, least_conn, random two), `fails`, `accessed` and `checked`
(max_fails / fail_timeout), and `current_weight` / `effective_weight` (the smooth round robin
position). The memory is the limits package's table (ngate/limits/table.py: a memfd mapped
MAP_SHARED and a process-shared lock, both made by the master before it forks the workers);
here it is read as a plain array of peers, SLOT bytes each, in the order of the zone's upstream
blocks and their servers. Several upstream blocks may name one zone; its size is given once.

Locking is nginx's: one lock per zone, taken once around a whole selection (the pick and the
connection it takes, so max_conns holds across workers), once to give a connection back and once
to count a failure or a success.

Across a reload a zone starts afresh: nginx marks upstream zones `noreuse`
(ngx_http_upstream_zone), so the new configuration's workers get new memory whatever its name
and size; the old workers keep theirs until they exit.
"""
from __future__ import annotations

import ctypes

from ngate.errors import ConfigError
from ngate.limits.table import Table

_SLOT = 64           # bytes per peer (six 64-bit fields used)


class PeerTable(Table):
    """A zone's memory as an array of peer slots (slot numbers from 1)."""
    SLOT = _SLOT

    def offset(self, idx: int) -> int:
        """The byte offset of slot `idx`."""
        return (self.base + idx * self.sw) * 8


class SharedHealth(ctypes.Structure):
    """balancer.PeerHealth's fields in a zone's slot, read and written under the zone's lock
    (a ctypes view: attribute access without a Python call, ~3x cheaper than a property)."""
    _fields_ = [(name, ctypes.c_int64) for name in (
        "fails", "accessed", "checked", "conns", "current_weight", "effective_weight")]


class UpstreamZone:
    """One `zone` of one configuration: its name, size, the upstream blocks in it and, once
    the configuration is read, its table and the first slot of each of its upstreams."""
    __slots__ = ("name", "size", "where", "upstreams", "table", "first")

    def __init__(self, name: str, where) -> None:
        self.name = name
        self.size = 0
        self.where = where
        self.upstreams: list = []
        self.table: PeerTable | None = None
        self.first: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"UpstreamZone({self.name!r} {self.size})"

    def healths(self, upstream) -> list:
        """(server, SharedHealth) of each server of `upstream`, in its order."""
        first = self.first[upstream.name]
        mm, table = self.table.mm, self.table
        return [(s, SharedHealth.from_buffer(mm, table.offset(first + i)))
                for i, s in enumerate(upstream.servers)]


class UpstreamZones:
    """The upstream zones of the configuration being compiled (ngx_shared_memory_add's rules
    for their names and sizes)."""

    def __init__(self, others: dict) -> None:
        self.by_name: dict[str, UpstreamZone] = {}
        self.others = others        # name -> the limit zones of the same configuration

    def add(self, name: str, size: int, where) -> UpstreamZone:
        if name in self.others:
            raise _different_use(name, where)
        zone = self.by_name.get(name)
        if zone is None:
            zone = self.by_name[name] = UpstreamZone(name, where)
        if size:
            if zone.size and size != zone.size:
                raise ConfigError(f'the size {size} of shared memory zone "{name}" conflicts '
                                  f'with already declared size {zone.size}', where)
            zone.size = size
        return zone

    def finish(self, upstreams) -> tuple:
        """After the whole configuration is read: sizes checked, memory made (in the master,
        before the workers fork), each peer given its slot."""
        for ups in upstreams:
            if ups.zone is not None:
                ups.zone.upstreams.append(ups)
        for zone in self.by_name.values():
            other = self.others.get(zone.name)
            if other is not None:       # the limit zone came second (limits are compiled later)
                raise _different_use(zone.name, _later(other.where, zone.where))
            if zone.size == 0:
                raise ConfigError(f'zero size shared memory zone "{zone.name}"')
        for zone in self.by_name.values():
            table = PeerTable(zone.name, zone.size)
            idx = 1
            for ups in zone.upstreams:
                zone.first[ups.name] = idx
                idx += len(ups.servers)
            if idx - 1 > table.nslots:
                table.close()
                raise ConfigError(f'upstream zone "{zone.name}" is too small for its '
                                  f'{idx - 1} servers', zone.where)
            zone.table = table
            for ups in zone.upstreams:
                for server, h in zone.healths(ups):
                    h.effective_weight = server.weight
        return tuple(self.by_name.values())


def _different_use(name: str, where) -> ConfigError:
    return ConfigError(f'the shared memory zone "{name}" is already declared for a different use',
                       where)


def _later(a, b):
    """The later of two places of one file (nginx reports the second declaration)."""
    if a is None or b is None or a.file != b.file:
        return a or b
    return a if a.line > b.line else b
