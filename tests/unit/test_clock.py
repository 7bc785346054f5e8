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


class Stamped(Watched):
    def __init__(self, loop) -> None:
        super().__init__(float("inf"))
        self.loop = loop
        self.at = None

    def expired(self) -> None:
        self.fired += 1
        self.at = self.loop.now


def test_now_is_the_time_of_the_last_tick_or_of_the_chains_start():
    loop = Loop()
    d = Deadlines(loop)
    loop.now = 0.1
    d.watch(Watched(100.0))         # the chain starts: stamped
    assert d.now == 0.1
    loop.run_timers(0.3)            # a tick at 0.35 is not due yet
    assert d.now == 0.1
    loop.run_timers(0.4)
    assert d.now == 0.35


def test_a_deadline_stamped_from_now_fires_after_its_timeout_within_two_ticks():
    """finish_request's keepalive_timeout and connection_made's client_header_timeout run from
    Deadlines.now while a tick is due (nginx's cached time): never before the timeout with
    ticks TICK apart, never later than a deadline from loop.time()."""
    for i in range(40):
        loop = Loop()
        d = Deadlines(loop)
        d.watch(Watched(1000.0))    # keeps the ticks going
        arm = 1.0 + i * TICK / 40   # anywhere inside a tick's interval
        loop.run_timers(arm)
        assert d.handle is not None
        w = Stamped(loop)
        w.deadline = d.now + 1.0
        d.watched.add(w)
        step = arm
        while not w.fired:
            step += 0.001
            loop.run_timers(step)
        assert arm + 1.0 <= w.at <= arm + 1.0 + 2 * TICK


def test_one_timer_runs_a_function_of_the_connection():
    from ngate.server.clock import OneTimer

    class Conn(OneTimer):
        __slots__ = ("timer", "deadline", "runtime", "ran")

    def callback(conn):
        conn.ran = conn.timer       # cleared before it runs
    c = Conn()
    c.timer = callback
    c.ran = "no"
    c.expired()
    assert c.ran is None and c.timer is None
    c.ran = "no"
    c.expired()                     # nothing armed: nothing runs
    assert c.ran == "no"
