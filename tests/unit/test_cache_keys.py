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
    assert keys.claim(H, 5.0) is True
    assert keys.claim(H, 5.0) is False and keys.claim(H) is False
    assert keys.claim(H, 0.0) is True           # older than *_cache_lock_age: taken over
    keys.set_busy(H, False)
    assert keys.busy_since(H) is None
    assert keys.claim(H) is True


def test_the_test_and_the_mark_are_one_step_across_processes():
    # the parent holds the lock while a forked worker claims: the worker must wait for it and
    # then see the mark the parent set meanwhile (without a shared lock it claims at once)
    keys = SharedKeys(1 << 20)
    keys.lock.acquire()
    pid = os.fork()
    if pid == 0:
        os._exit(0 if keys.claim(H, 5.0) is False else 1)
    try:
        time.sleep(0.3)             # the worker is in claim() by now (or sees the mark later)
        keys.set_busy(H, True)
    finally:
        keys.lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
