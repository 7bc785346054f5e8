"""Coarse deadlines for the request path.

Creating and cancelling an event-loop timer for every request (read timeouts, keep-alive and
header timeouts, idle pooled connections) costs more than the rest of a small request's
bookkeeping. Instead an object sets `deadline` (loop time) and is watched; one periodic tick
calls `expired()` on those past their deadline. Re-arming is an attribute store. Timeouts fire
up to TICK late, which nginx's second-granularity settings do not notice.
"""
from __future__ import annotations

TICK = 0.25


class Deadlines:
    __slots__ = ("loop", "watched", "handle")

    def __init__(self, loop) -> None:
        self.loop = loop
        self.watched: set = set()
        self.handle = None

    def watch(self, obj) -> None:
        """Watch `obj` (it has `.deadline` and `.expired()`); cheap to call again."""
        self.watched.add(obj)
        if self.handle is None:
            self.handle = self.loop.call_later(TICK, self._tick)

    def unwatch(self, obj) -> None:
        self.watched.discard(obj)

    def _tick(self) -> None:
        self.handle = None
        watched = self.watched
        if not watched:
            return
        now = self.loop.time()
        due = [o for o in watched if o.deadline <= now]
        for o in due:
            watched.discard(o)
        for o in due:
            o.expired()
        if watched and self.handle is None:
            self.handle = self.loop.call_later(TICK, self._tick)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.watched.clear()
