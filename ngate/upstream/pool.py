"""Per-worker keepalive pool of idle upstream connections, keyed by peer address.

At most `upstream.keepalive` idle connections are cached per group (nginx's rule: the pool is the
group's, LRU eviction). An idle connection that the peer closes removes itself.
"""
from __future__ import annotations

import time
from collections import OrderedDict


class KeepalivePool:
    __slots__ = ("idle",)

    def __init__(self) -> None:
        # group id -> OrderedDict[conn, (peer key, expires)]
        self.idle: dict[int, OrderedDict] = {}

    def get(self, group_id: int, peer_key: tuple):
        entries = self.idle.get(group_id)
        if not entries:
            return None
        now = time.monotonic()
        for conn, (key, expires) in reversed(list(entries.items())):
            if key == peer_key:
                del entries[conn]
                if expires < now or conn.closed:
                    conn.close()
                    continue
                return conn
        return None

    def put(self, group_id: int, peer_key: tuple, conn, limit: int, timeout: float) -> None:
        entries = self.idle.get(group_id)
        if entries is None:
            entries = self.idle[group_id] = OrderedDict()
        entries[conn] = (peer_key, time.monotonic() + timeout)
        conn.on_idle(self, group_id, timeout)
        while len(entries) > limit:
            old, _ = entries.popitem(last=False)
            old.close()

    def discard(self, group_id: int, conn) -> None:
        entries = self.idle.get(group_id)
        if entries is not None:
            entries.pop(conn, None)

    def close_all(self) -> None:
        for entries in self.idle.values():
            for conn in list(entries):
                conn.close()
            entries.clear()
