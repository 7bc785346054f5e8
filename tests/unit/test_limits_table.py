"""The zones' shared tables (ngate/limits/table.py) with an injected clock: nginx's leaky bucket
(excess in 1/1000 requests, rate in 1/1000 r/s, milliseconds), the LRU expiry and forced
eviction of limit_req, limit_conn's counts, sizing, and sharing across fork."""
from __future__ import annotations

import os

import pytest

from ngate.limits.conn_table import ConnTable
from ngate.limits.req_table import AGAIN, BUSY, ERROR, OK, ReqTable
from ngate.limits.table import capacity, key_hash

T0 = 10_000_000          # a monotonic "now" in ms, well past boot
RATE_1RS = 1000          # rate=1r/s
RATE_1RM = 1000 // 60    # rate=1r/m: 16 (nginx's integer division)


def req(table, key: bytes, now: int, burst: int = 0, rate: int = RATE_1RS, account=True):
    return table.lookup(key, key_hash(key), rate, burst, account, now)


@pytest.fixture
def zone():
    t = ReqTable("one", 1 << 20)
    yield t
    t.close()


def test_first_request_passes_with_no_excess(zone):
    assert req(zone, b"a", T0) == (OK, 0, 0)
    assert zone.state(b"a") == (T0, 0, 0)


def test_second_request_at_once_is_over_a_zero_burst(zone):
    req(zone, b"a", T0)
    assert req(zone, b"a", T0) == (BUSY, 1000, 0)
    # a rejected request is not counted: the state is unchanged
    assert zone.state(b"a") == (T0, 0, 0)


def test_burst_admits_and_excess_leaks_at_the_rate(zone):
    assert req(zone, b"a", T0, burst=2000)[0] == OK
    assert req(zone, b"a", T0, burst=2000) == (OK, 1000, 0)
    assert req(zone, b"a", T0, burst=2000) == (OK, 2000, 0)
    assert req(zone, b"a", T0, burst=2000) == (BUSY, 3000, 0)
    # 1.5 s later at 1 r/s: 2000 - 1500 + 1000
    assert req(zone, b"a", T0 + 1500, burst=2000) == (OK, 1500, 0)


def test_excess_never_goes_below_zero(zone):
    req(zone, b"a", T0)
    assert req(zone, b"a", T0 + 3_600_000) == (OK, 0, 0)


def test_one_request_per_minute_uses_nginx_integer_rate(zone):
    req(zone, b"a", T0, rate=RATE_1RM)
    req(zone, b"a", T0 + 1, burst=1000, rate=RATE_1RM)
    # 10 s later: 1000 - 16 * 10000 / 1000 + 1000 = 1840 -> "excess: 1.840"
    assert req(zone, b"a", T0 + 10_001, burst=1000, rate=RATE_1RM) == (BUSY, 1840, 0)


def test_clock_going_back_counts_as_no_time(zone):
    req(zone, b"a", T0, burst=5000)
    assert req(zone, b"a", T0 - 500, burst=5000) == (OK, 1000, 0)
    assert zone.state(b"a")[0] == T0             # `last` kept: ms == 0
    # more than a minute back: nginx counts 1 ms (one unit at 1 r/s) and takes the new time
    assert req(zone, b"a", T0 - 70_000, burst=5000) == (OK, 1999, 0)
    assert zone.state(b"a")[0] == T0 - 70_000


def test_held_slot_is_charged_by_account(zone):
    rc, excess, idx = req(zone, b"a", T0, account=False)
    assert (rc, excess) == (AGAIN, 0) and idx
    assert zone.state(b"a") == (0, 0, 1)          # nginx: last = 0, count = 1 until accounted
    assert zone.account(idx, RATE_1RS, T0) == 0
    assert zone.state(b"a") == (T0, 0, 0)
    rc, excess, idx = req(zone, b"a", T0 + 200, burst=5000, account=False)
    assert (rc, excess) == (AGAIN, 800)
    zone.unhold(idx)                               # a later limit rejected: not charged
    assert zone.state(b"a") == (T0, 0, 0)


def test_keys_longer_than_a_slot_are_kept_apart(zone):
    long1, long2 = b"x" * 500 + b"1", b"x" * 500 + b"2"
    assert req(zone, long1, T0)[0] == OK
    assert req(zone, long2, T0)[0] == OK
    assert req(zone, long1, T0)[0] == BUSY
    assert zone.used == 2


def test_zone_size_bounds_the_states():
    assert capacity(1 << 20, 128) == 7942         # nginx's 128-byte slab class: ~8,000 per MB
    assert capacity(1 << 20, 64) == 15418         # limit_conn: nginx's 64-byte class
    t = ReqTable("small", 32 * 1024)
    try:
        assert t.nslots == capacity(32 * 1024, 128)
        assert t.mm.size() == 32 * 1024
    finally:
        t.close()


def test_idle_entries_expire_one_or_two_per_allocation():
    t = ReqTable("z", 32 * 1024)
    try:
        for i in range(5):
            req(t, b"k%d" % i, T0)
        assert t.used == 5
        req(t, b"new", T0 + 30_000)                # nothing idle for 60 s: nothing expires
        assert t.used == 6
        req(t, b"new2", T0 + 61_000)               # the two oldest went
        assert t.used == 5
        assert t.state(b"k0") is None and t.state(b"k1") is None
        assert t.state(b"k2") is not None
    finally:
        t.close()


def test_entry_with_excess_left_does_not_expire():
    t = ReqTable("z", 32 * 1024)
    try:
        for _ in range(3):
            req(t, b"busy", T0, burst=10_000, rate=RATE_1RM)   # excess 2000 at 16/1000 r/s
        req(t, b"other", T0 + 61_000, rate=RATE_1RM)
        assert t.state(b"busy") is not None
    finally:
        t.close()


def test_full_zone_evicts_the_least_recently_used():
    t = ReqTable("z", 32 * 1024)
    try:
        n = t.nslots
        for i in range(n):
            assert req(t, b"k%d" % i, T0)[0] == OK
        assert t.used == n
        req(t, b"k0", T0, burst=5000)              # k0 becomes the most recent
        assert req(t, b"extra", T0)[0] == OK       # k1, the oldest, is evicted by force
        assert t.state(b"k1") is None
        assert t.state(b"k0") is not None and t.used == n
        # k1 comes back as a new key: no excess
        assert req(t, b"k1", T0) == (OK, 0, 0)
    finally:
        t.close()


def test_full_zone_with_held_oldest_cannot_allocate():
    t = ReqTable("z", 32 * 1024)
    try:
        _, _, held = req(t, b"k0", T0, account=False)
        for i in range(1, t.nslots):
            req(t, b"k%d" % i, T0)
        assert req(t, b"extra", T0)[0] == ERROR     # nginx: "could not allocate node"
        t.account(held, RATE_1RS, T0)
        assert req(t, b"extra", T0)[0] == OK
    finally:
        t.close()


def test_limit_conn_counts_and_frees_slots():
    t = ConnTable("c", 32 * 1024)
    try:
        h = key_hash(b"ip")
        rc1, s1 = t.acquire(b"ip", h, 2)
        rc2, s2 = t.acquire(b"ip", h, 2)
        assert (rc1, rc2) == (OK, OK) and s1 == s2
        assert t.acquire(b"ip", h, 2) == (BUSY, 0)
        assert t.count(b"ip") == 2
        t.release(s1)
        assert t.count(b"ip") == 1
        t.release(s2)
        assert t.count(b"ip") == 0 and t.used == 0    # the slot is gone at zero
    finally:
        t.close()


def test_full_limit_conn_zone_refuses_without_evicting():
    t = ConnTable("c", 32 * 1024)
    try:
        for i in range(t.nslots):
            assert t.acquire(b"k%d" % i, key_hash(b"k%d" % i), 1)[0] == OK
        assert t.acquire(b"one-more", key_hash(b"one-more"), 1) == (ERROR, 0)
        assert t.count(b"k0") == 1
    finally:
        t.close()


def test_workers_forked_after_creation_share_the_table():
    t = ReqTable("shared", 32 * 1024)
    try:
        pids = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    for _ in range(50):
                        req(t, b"ip", T0, burst=10_000_000)
                except BaseException:
                    code = 1
                os._exit(code)
            pids.append(pid)
        for pid in pids:
            assert os.waitpid(pid, 0)[1] == 0
        # 200 charged requests at the same ms under the lock: 199 excess units (the first is 0)
        assert t.state(b"ip")[1] == 199_000
    finally:
        t.close()


def test_lock_of_a_worker_killed_inside_it_is_taken_over(monkeypatch):
    from ngate.limits import req_table, table as table_module
    monkeypatch.setattr(table_module, "LOCK_WAIT", 0.2)
    monkeypatch.setattr(req_table, "LOCK_WAIT", 0.2)      # lookup() takes the lock inline
    t = ReqTable("wedged", 32 * 1024)
    try:
        pid = os.fork()
        if pid == 0:
            t.lock()
            os._exit(0)                  # dies holding the lock
        os.waitpid(pid, 0)
        assert req(t, b"a", T0)[0] == OK         # the waiter took the lock over
        assert req(t, b"a", T0) == (BUSY, 1000, 0)
    finally:
        t.close()


def test_lock_of_a_live_holder_is_waited_for(monkeypatch):
    from ngate.limits import req_table, table as table_module
    monkeypatch.setattr(table_module, "LOCK_WAIT", 0.05)
    monkeypatch.setattr(req_table, "LOCK_WAIT", 0.05)      # lookup() takes the lock inline
    t = ReqTable("busy", 32 * 1024)
    r, w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:
            t.lock()
            os.write(w, b"x")
            import time
            time.sleep(0.5)              # several LOCK_WAITs: still alive, so not taken over
            t.w[12] = 7                # a mark made inside the critical section
            t.unlock()
            os._exit(0)
        os.read(r, 1)
        t.lock()
        assert t.w[12] == 7           # we got in only after the holder left
        t.unlock()
        os.waitpid(pid, 0)
    finally:
        os.close(r)
        os.close(w)
        t.close()
