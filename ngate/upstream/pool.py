"""Per-worker keepalive pool of idle upstream connections.

Idle connections are kept per (group, peer address), most recently used first out; a group
holds at most `upstream.keepalive` of them (nginx's rule: the cache is the group's; the least
recently used one is closed when it is full). An idle connection the peer closes, or whose
keepalive_timeout passes, removes itself.

A connection's idle deadline (server/clock.py) is watched from its first time in the pool until
it closes: taking it out sets the deadline out of reach, putting it back sets it again (an
attribute store each way, no watch/unwatch per request).
"""
from __future__ import annotations

NEVER = float("inf")        # the deadline of a connection in use


class KeepalivePool:
    __slots__ = ("idle", "order", "deadlines")

    def __init__(self, deadlines=None) -> None:
        self.deadlines = deadlines                 # server/clock.py Deadlines (idle timeouts)
        self.idle: dict[tuple, list] = {}          # (group id, peer key) -> [conn, ...] (LIFO)
        self.order: dict[int, dict] = {}           # group id -> conn -> peer key (LRU order)

    def get(self, group_id: int, peer_key: tuple):
        """An idle connection to the peer, taken out of the pool (in use), or None."""
        stack = self.idle.get((group_id, peer_key))
        while stack:
            conn = stack.pop()
            self.order[group_id].pop(conn, None)
            if not conn.closed:
                conn.pool = None
                conn.deadline = NEVER       # stays watched (UpstreamConnection.expired)
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
            order = self.order[group_id] = {}
        order[conn] = peer_key
        conn.pool = self                    # UpstreamConnection.on_idle, written out (hot path)
        conn.group_id = group_id
        conn.exchange = None
        deadlines = self.deadlines
        conn.deadline = deadlines.loop.time() + timeout
        if conn.idle_timer is None:
            conn.idle_timer = deadlines
            deadlines.watch(conn)
        if len(order) > limit:
            while len(order) > limit:
                old = next(iter(order))
                old_key = order.pop(old)
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
