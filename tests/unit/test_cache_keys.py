"""The keys zone's busy mark (cache/store.py SharedKeys.claim): proxy_cache_lock and `updating`
let one request fetch a key, whichever worker each request is in; nginx takes the mark under the
zone's mutex (ngx_http_file_cache_lock). Before, a worker tested the mark and another set it
in between: two fetches, and two MISSes where proxy_cache_lock promises one."""
from __future__ import annotations

import os
import time

from ngate.cache.store import SharedKeys

H = "0123456789abcdef0123456789abcdef"


def test_one_claim_wins_until_released_or_too_old():
    keys = SharedKeys(1 << 20)
    first = keys.claim(H, 5.0)
    assert first
    assert not keys.claim(H, 5.0) and not keys.claim(H)
    second = keys.claim(H, 0.0)                 # older than *_cache_lock_age: taken over
    assert second and second != first
    keys.release(H, second)
    assert keys.busy_since(H) is None
    assert keys.claim(H)


def test_a_mark_taken_over_is_not_cleared_by_its_first_owner():
    # nginx (ngx_http_file_cache_free): `updating` is cleared only when the node's lock_time is
    # still the request's own; a request whose mark was taken over after *_cache_lock_age ends
    # late and must leave the new owner's mark alone (else a third request fetches too)
    keys = SharedKeys(1 << 20)
    first = keys.claim(H, 5.0)
    second = keys.claim(H, 0.0)
    keys.release(H, first)
    assert keys.busy_since(H) is not None
    assert not keys.claim(H, 5.0)
    keys.release(H, second)
    assert keys.busy_since(H) is None


def test_the_test_and_the_mark_are_one_step_across_processes():
    # the parent holds the lock while a forked worker claims: the worker must wait for it and
    # then see the mark the parent set meanwhile (without a shared lock it claims at once)
    keys = SharedKeys(1 << 20)
    keys.lock.acquire()
    pid = os.fork()
    if pid == 0:
        os._exit(0 if not keys.claim(H, 5.0) else 1)
    try:
        time.sleep(0.3)             # the worker is in claim() by now (or sees the mark later)
        keys.set_busy(H, True)
    finally:
        keys.lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
