"""Coarse deadlines for the request path.

Creating and cancelling an event-loop timer for every request (read timeouts, keep-alive and
header timeouts, idle pooled connections) costs more than the rest of a small request's
bookkeeping. Instead an object sets `deadline` (loop time) and is watched; one periodic tick
calls `expired()` on those past their deadline. Re-arming is an attribute store.

A deadline expires only once it had passed at the previous tick: the event loop runs timers
before it reads the sockets, so after a stall (a loaded machine, a long callback) the data that
would re-arm a deadline is already waiting when the tick runs; nginx handles events before
timers. One more tick lets that data in first. Timeouts therefore fire up to 2 x TICK late,
which nginx's second-granularity settings do not notice.

`now` is the loop time of the last tick, or of the chain's start: while `handle` is set (a tick
is due) a deadline may be stamped from it instead of loop.time(), as nginx stamps its timers
with the time cached at its event loop's turn (ngx_current_msec). Such a deadline is at most
one tick's interval earlier than loop.time() would make it, and it is only judged at a tick
after the next one (see above): with ticks TICK apart it never fires before its timeout, and
at most 2 x TICK after it.
"""
from __future__ import annotations

TICK = 0.25


class Deadlines:
    __slots__ = ("loop", "watched", "handle", "prev", "now")

    def __init__(self, loop) -> None:
        self.loop = loop
        self.watched: set = set()
        self.handle = None
        self.prev = 0.0         # loop time of the previous tick
        self.now = 0.0          # loop time of the last tick or of the chain's start (above)

    def watch(self, obj) -> None:
        """Watch `obj` (it has `.deadline` and `.expired()`); cheap to call again.
        (server/lifecycle.py finish_request writes this out for keepalive_timeout.)"""
        self.watched.add(obj)
        if self.handle is None:
            self.start()

    def start(self) -> None:
        """The chain of ticks starts again (`handle` None): the next tick in TICK."""
        loop = self.loop
        self.now = loop.time()
        self.handle = loop.call_later(TICK, self._tick)

    def unwatch(self, obj) -> None:
        self.watched.discard(obj)

    def _tick(self) -> None:
        self.handle = None
        watched = self.watched
        if not watched:
            return
        now = self.loop.time()
        cutoff, self.prev = self.prev, now
        self.now = now
        due = [o for o in watched if o.deadline <= cutoff]
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


class OneTimer:
    """A connection with one coarse deadline at a time: `timer` is the function of the
    connection the next expiry runs (None: not watched; a plain function, not a bound method:
    none is made per arming, and an idle connection holds no reference to itself), `deadline`
    its loop time, `runtime.deadlines` the watcher. Subclasses arm it their own way and list
    `timer`, `deadline` in their slots."""
    __slots__ = ()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer = None
            self.runtime.deadlines.unwatch(self)

    def expired(self) -> None:
        callback = self.timer
        self.timer = None
        if callback is not None:
            callback(self)
