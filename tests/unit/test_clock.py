"""server/clock.py: a deadline expires only once it had passed at the previous tick, so after a
stalled loop the data already waiting in the sockets (read after the timers) re-arms it first."""
from __future__ import annotations

from ngate.server.clock import TICK, Deadlines


class Loop:
    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay, fn):
        self.timers.append((self.now + delay, fn))
        return self

    def cancel(self) -> None:
        pass

    def run_timers(self, until: float) -> None:
        """Advance to `until`, running the tick whenever it is due (one per loop turn)."""
        while self.timers and self.timers[0][0] <= until:
            when, fn = self.timers.pop(0)
            self.now = max(self.now, when)
            fn()
        self.now = until


class Watched:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = 0

    def expired(self) -> None:
        self.fired += 1


def test_a_deadline_fires_within_two_ticks():
    loop = Loop()
    d = Deadlines(loop)
    w = Watched(1.0)
    d.watch(w)
    loop.run_timers(0.99)
    assert w.fired == 0
    loop.run_timers(1.0 + 2 * TICK + 0.01)
    assert w.fired == 1


def test_after_a_stall_the_sockets_are_read_before_a_deadline_fires():
    loop = Loop()
    d = Deadlines(loop)
    w = Watched(1.0)
    d.watch(w)
    loop.run_timers(0.5)            # ticks at 0.25 and 0.5: not due
    loop.timers[0] = (5.0, loop.timers[0][1])   # the loop stalls until 5.0
    loop.run_timers(5.0)
    assert w.fired == 0             # the tick after the stall does not judge it ...
    w.deadline = 5.0 + 1.0          # ... the waiting data is read and re-arms it
    loop.run_timers(5.0 + 2 * TICK + 0.01)
    assert w.fired == 0
    loop.run_timers(6.0 + 2 * TICK + 0.01)
    assert w.fired == 1
