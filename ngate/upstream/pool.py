"""Per-worker keepalive pool of idle upstream connections.

Idle connections are kept per (group, peer address), most recently used first out; a group
holds at most `upstream.keepalive` of them (nginx's rule: the cache is the group's; the least
recently used one is closed when it is full). An idle connection the peer closes, or whose
keepalive_timeout passes, removes itself.
"""
from __future__ import annotations

from collections import OrderedDict


class KeepalivePool:
    __slots__ = ("idle", "order", "deadlines")

    def __init__(self, deadlines=None) -> None:
        self.deadlines = deadlines                 # server/clock.py Deadlines (idle timeouts)
        self.idle: dict[tuple, list] = {}          # (group id, peer key) -> [conn, ...] (LIFO)
        self.order: dict[int, OrderedDict] = {}    # group id -> conn -> peer key (LRU order)

    def get(self, group_id: int, peer_key: tuple):
        stack = self.idle.get((group_id, peer_key))
        while stack:
            conn = stack.pop()
            self.order[group_id].pop(conn, None)
            if not conn.closed:
                return conn
        return None

    def put(self, group_id: int, peer_key: tuple, conn, limit: int, timeout: float) -> None:
        key = (group_id, peer_key)
        stack = self.idle.get(key)
        if stack is None:
            stack = self.idle[key] = []
        stack.append(conn)
        order = self.order.get(group_id)
        if order is None:
            order = self.order[group_id] = OrderedDict()
        order[conn] = peer_key
        conn.on_idle(self, group_id, timeout)
        while len(order) > limit:
            old, old_key = order.popitem(last=False)
            self.idle[(group_id, old_key)].remove(old)
            old.close()

    def discard(self, group_id: int, conn) -> None:
        order = self.order.get(group_id)
        if order is None:
            return
        peer_key = order.pop(conn, None)
        if peer_key is not None:
            stack = self.idle.get((group_id, peer_key))
            if stack and conn in stack:
                stack.remove(conn)

    def close_all(self) -> None:
        for stack in self.idle.values():
            for conn in stack:
                conn.pool = None
                conn.close()
            stack.clear()
        for order in self.order.values():
            order.clear()
