"""Per-worker keepalive pool of idle upstream connections.

Idle connections are kept per (group, peer address[, TLS identity]) key, most recently used first out; a group
holds at most `upstream.keepalive` of them (nginx's rule: the cache is the group's; the least
recently used one is closed when it is full). An idle connection the peer closes, or whose
keepalive_timeout passes, removes itself.

The limit is enforced at the end of the event loop's turn (`trim`: one call_soon in a turn that
put a group over it), not at each put: a request read later in the same turn takes the
connection a response just freed instead of opening a new one after the least recently used
one was closed (under load, turns hold a few dozen responses and requests: bench/PROFILE.md,
Session 11 (s11-proxied)). Between two polls of the loop, a group holds at most `keepalive`
idle connections, as in nginx; the ones it closes are still its least recently used.

A connection's idle deadline (server/clock.py) is watched from its first time in the pool until
it closes: taking it out sets the deadline out of reach, putting it back sets it again (an
attribute store each way, no watch/unwatch per request). In use, it may carry its exchange's
timer instead (proxy/http_proxy.py start_pooled; ExchangeBase's `timer`).

A connection made on the raw socket (upstream/connect.py PlainConnect: a Python transport on
the worker's Poller) is handed to uvloop's transport while idle in the pool on a quiet loop:
its events then come from uvloop's own poll, not through the Poller's nested epoll_wait and
Python dispatch, which cost 3-7 us on the critical path of every response while the loop
sleeps between requests (at 1,000 req/s: bench/PROFILE.md, Session 12 (s12-p99)). Under load
it stays on the Poller, whose batches cost less there (every long-lived one on uvloop: +3.5%
CPU per request under wrk -c50). The pool is itself watched by the coarse deadlines while it
knows raw-socket connections (`raw`, from their first time in the pool): at each tick
(`expired`), when the loop was quiet since the last tick (at most QUIET_BUSY_TURNS turns wrote
more than one request head: HeadWrites.busy_turns; a late client's bursts at 1,000 req/s make
a few, wrk -c50 hundreds), the idle ones are handed over (hand_over_raw). Nothing is done per
request.

The pool also holds the worker's HeadWrites: the request heads written to upstream
connections during one busy turn of the event loop, written together at its end.
"""
from __future__ import annotations

from ..server.turn_batch import TurnBatch

NEVER = float("inf")        # the deadline of a connection in use
QUIET_BUSY_TURNS = 16       # turns of several request heads in a tick's interval on a quiet loop


class HeadWrites(TurnBatch):
    """Request heads for upstream connections, held to the end of a busy loop turn
    (server/turn_batch.py says why and when). Only writes that nothing else follows on their
    connection before the response can go this way (proxy/wire_http1.py: the head of a request
    without a body); a connection closed meanwhile (client gone, the peer closed it) is
    skipped."""
    __slots__ = ("end",)

    def __init__(self, loop) -> None:
        super().__init__(loop)
        # turn_end bound once (the worker's one HeadWrites lives as long as the worker): no
        # bound method made per scheduling turn
        self.end = self.turn_end

    def write(self, transport, data: bytes) -> None:
        self.count += 1                 # (server/turn_batch.py TurnBatch: the rule)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.end)
            if not self.busy:
                try:
                    transport.write(data)
                except (OSError, RuntimeError):
                    transport.abort()       # connection_lost tells the exchange
                return
        self.pending.append((transport, data))

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
    __slots__ = ("idle", "order", "deadlines", "head_writes", "over", "raw", "deadline")

    def __init__(self, deadlines=None) -> None:
        self.deadlines = deadlines                 # server/clock.py Deadlines (idle timeouts)
        self.idle: dict[tuple, list] = {}          # (group id, peer ...) -> [conn, ...] (LIFO)
        self.order: dict[int, dict] = {}           # group id -> conn -> its key (LRU order)
        self.head_writes = HeadWrites(deadlines.loop) if deadlines is not None else None
        self.over: dict[int, int] = {}             # group id -> its limit: over it this turn
        self.raw: set = set()       # raw-socket connections not handed over yet (first_pooled)
        self.deadline = NEVER       # the next hand_over_raw's tick (watched while `raw`)

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
        conn.idle_stack = stack             # (for the hot path's put and get: no key lookup)
        conn.idle_order = order
        conn.pool = self                    # UpstreamConnection.on_idle, written out (hot path)
        conn.group_id = group_id
        conn.exchange = None
        deadlines = self.deadlines
        # stamped from the tick's time while one is due (server/clock.py says why)
        conn.deadline = (deadlines.now if deadlines.handle is not None
                         else deadlines.loop.time()) + timeout
        if conn.idle_timer is None:
            conn.idle_timer = deadlines
            deadlines.watch(conn)
            self.first_pooled(conn)
        if len(order) > limit:
            self.trim(group_id, limit)

    def first_pooled(self, conn) -> None:
        """`conn` is in the pool for the first time: a raw-socket one is remembered for
        hand_over_raw, and the pool watched by the deadlines."""
        if hasattr(conn.transport, "hand_over"):
            self.raw.add(conn)
            if self.deadline is NEVER:
                self.deadline = 0.0         # judged at the next tick
                self.deadlines.watch(self)

    def expired(self) -> None:
        """A tick of the coarse deadlines (server/clock.py): hand_over_raw, and watched again
        while raw-socket connections are left."""
        self.deadline = NEVER
        raw = self.raw
        if raw:
            self.hand_over_raw(raw)
            if raw:
                self.deadline = 0.0
                self.deadlines.watch(self)

    def hand_over_raw(self, raw: set) -> None:
        """On a quiet loop (since the last tick at most QUIET_BUSY_TURNS turns wrote more than
        one request head), the idle raw-socket connections go on in uvloop's transport (server/
        plain_transport.py PlainTransport.hand_over: writes made meanwhile are kept;
        UpstreamConnection.transport_adopted swaps the reference); closed ones are forgotten,
        those in use wait for a later tick."""
        hw = self.head_writes
        quiet = hw.busy_turns <= QUIET_BUSY_TURNS
        hw.busy_turns = 0
        for conn in list(raw):
            if conn.closed:
                raw.discard(conn)
            elif quiet and conn.pool is self:
                raw.discard(conn)
                conn.transport.hand_over()

    def trim(self, group_id: int, limit: int) -> None:
        """Group `group_id` holds more than `limit` idle connections: its least recently used
        ones are closed at the end of the loop's turn (trim_over; at once without a loop)."""
        over = self.over
        if not over:
            if self.deadlines is None:
                return self.close_lru(self.order[group_id], limit)
            self.deadlines.loop.call_soon(self.trim_over)
        over[group_id] = limit

    def trim_over(self) -> None:
        """The end of a turn that put groups over their limit: each group's least recently used
        idle connections closed down to it (those taken again meanwhile are not idle)."""
        over = self.over
        self.over = {}
        for group_id, limit in over.items():
            order = self.order.get(group_id)
            if order is not None and len(order) > limit:
                self.close_lru(order, limit)

    def close_lru(self, order: dict, limit: int) -> None:
        """A group's LRU `order` over `limit`: its least recently used connections closed."""
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
