"""Writes held to the end of the event loop's turn, under load only.

Loopback TCP delivers a write in the writer's context and wakes the reader: a peer that went
back to sleep between two of the proxy's writes (each request's own Python comes in between) is
woken, at a cost, for every one. Written together after the turn's callbacks (call_soon: before
the loop polls again), the writes of one turn find it awake.

Batching pays only under load: when the last turn that wrote wrote once, the first write of a
turn goes at once, since waiting for the turn's end would only add latency (the p99 at a fixed
1,000 req/s measured it: bench/PROFILE.md "Session 9 (s9-p99)", "Session 9 (lead)"); the writes
after it in that turn, and every one of a turn after a busy one, wait for its end.

Two batches use it: upstream/pool.py HeadWrites (request heads to upstreams) and
server/turn_writes.py TurnWrites (HTTP/1.x responses to clients).
"""
from __future__ import annotations


class TurnBatch:
    """One kind of write held to the end of the loop's turn (module docstring). A subclass
    holds its writes in `pending` and writes them in `flush`; its write path keeps the count
    and the quiet-loop rule inline (a call per write is what batching saves):

        self.count += 1
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.turn_end)
            if not self.busy:
                ... write at once; return
        ... hold it in self.pending
    """
    __slots__ = ("loop", "pending", "scheduled", "count", "busy", "busy_turns")

    def __init__(self, loop) -> None:
        self.loop = loop
        self.pending: list = []     # this turn's held writes (the subclass's form)
        self.scheduled = False      # turn_end is scheduled (call_soon)
        self.count = 0              # writes made or held this turn
        self.busy = False           # the last turn that wrote wrote more than once
        self.busy_turns = 0         # turns that wrote more than once since the owner cleared
        #                             this (upstream/pool.py hand_over_raw, at each tick)

    def turn_end(self) -> None:
        self.scheduled = False
        busy = self.busy = self.count > 1
        if busy:
            self.busy_turns += 1
        self.count = 0
        if self.pending:            # (a quiet turn's one write went at once: nothing held)
            self.flush()

    def flush(self) -> None:
        raise NotImplementedError
