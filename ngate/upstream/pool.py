"""Per-worker keepalive pool of idle upstream connections.

Idle connections are kept per (group, peer address[, TLS identity]) key, most recently used first out; a group
holds at most `upstream.keepalive` of them (nginx's rule: the cache is the group's; the least
recently used one is closed when it is full). An idle connection the peer closes, or whose
keepalive_timeout passes, removes itself.

A connection's idle deadline (server/clock.py) is watched from its first time in the pool until
it closes: taking it out sets the deadline out of reach, putting it back sets it again (an
attribute store each way, no watch/unwatch per request).

The pool also holds the worker's HeadWrites: the request heads written to upstream
connections during one busy turn of the event loop, written together at its end.
"""
from __future__ import annotations

NEVER = float("inf")        # the deadline of a connection in use


class HeadWrites:
    """Request heads for upstream connections, written together once the event loop has run
    the callbacks of this turn's events (call_soon: before it polls again).

    Loopback TCP delivers a write in the writer's context and wakes the reader: a backend that
    went back to sleep between two of the proxy's writes (each request's own Python comes in
    between) is woken, at a cost, for every request. Written back to back, the writes of one
    turn find it awake. Only writes that nothing else follows on their connection before the
    response can go this way (proxy/wire_http1.py: the head of a request without a body); a
    connection closed meanwhile (client gone, the peer closed it) is skipped.

    Batching pays only under load: when the last turn that wrote heads wrote one, the first
    head of a turn goes at once, since waiting for the end of the turn would only add latency
    (the p99 at a fixed rate measured it: bench/PROFILE.md "Session 9 (s9-p99)"); the heads
    after it in that turn, and every head of a turn after a busy one, wait for its end."""
    __slots__ = ("deadlines", "pending", "scheduled", "count", "busy")

    def __init__(self, deadlines) -> None:
        self.deadlines = deadlines  # (its loop: the worker's)
        self.pending: list = []     # [(transport, bytes), ...] of this turn
        self.scheduled = False      # turn_end is scheduled (call_soon)
        self.count = 0              # heads written or deferred this turn
        self.busy = False           # the last turn that wrote heads wrote more than one

    def write(self, transport, data: bytes) -> None:
        self.count += 1
        if not self.scheduled:
            self.scheduled = True
            self.deadlines.loop.call_soon(self.turn_end)
            if not self.busy:
                try:
                    transport.write(data)
                except (OSError, RuntimeError):
                    transport.abort()       # connection_lost tells the exchange
                return
        self.pending.append((transport, data))

    def turn_end(self) -> None:
        self.scheduled = False
        self.busy = self.count > 1
        self.count = 0
        self.flush()

    def flush(self) -> None:
        pending = self.pending
        if not pending:
            return
        self.pending = []
        for transport, data in pending:
            if not transport.is_closing():
                try:
                    transport.write(data)
                except (OSError, RuntimeError):
                    transport.abort()       # connection_lost tells the exchange


class KeepalivePool:
    __slots__ = ("idle", "order", "deadlines", "head_writes")

    def __init__(self, deadlines=None) -> None:
        self.deadlines = deadlines                 # server/clock.py Deadlines (idle timeouts)
        self.idle: dict[tuple, list] = {}          # (group id, peer ...) -> [conn, ...] (LIFO)
        self.order: dict[int, dict] = {}           # group id -> conn -> its key (LRU order)
        self.head_writes = HeadWrites(deadlines) if deadlines is not None else None

    def get(self, key: tuple):
        """An idle connection for `key` (group id, peer address[, TLS identity]), taken out of
        the pool (in use), or None."""
        stack = self.idle.get(key)
        while stack:
            conn = stack.pop()
            self.order[key[0]].pop(conn, None)
            if not conn.closed:
                conn.pool = None
                conn.deadline = NEVER       # stays watched (UpstreamConnection.expired)
                return conn
        return None

    def put(self, key: tuple, conn, limit: int, timeout: float) -> None:
        """`conn` idle under `key` (see get); the group's least recently used one closed when the
        group holds more than `limit`."""
        stack = self.idle.get(key)
        if stack is None:
            stack = self.idle[key] = []
        stack.append(conn)
        group_id = key[0]
        order = self.order.get(group_id)
        if order is None:
            order = self.order[group_id] = {}
        order[conn] = key
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
                self.idle[order.pop(old)].remove(old)
                old.close()

    def discard(self, group_id: int, conn) -> None:
        order = self.order.get(group_id)
        if order is None:
            return
        key = order.pop(conn, None)
        if key is not None:
            stack = self.idle.get(key)
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
