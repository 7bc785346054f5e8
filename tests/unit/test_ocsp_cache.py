"""ssl_ocsp_cache's zone (server/ocsp_cache.py): statuses by key until their time, expired
entries dropped, the oldest entry dropped when the zone is full."""
from __future__ import annotations

import time

from ngate.server.ocsp_cache import OcspCache


def _key(i: int) -> bytes:
    return i.to_bytes(60, "big")


def test_store_lookup_and_expiry():
    cache = OcspCache("t1", 32768)
    now = int(time.time())
    cache.store(_key(1), 0, now + 100)
    cache.store(_key(2), 1, now + 100)
    cache.store(_key(3), 0, now - 1)            # already stale: not stored
    assert (cache.lookup(_key(1)), cache.lookup(_key(2)), cache.lookup(_key(3))) == (0, 1, None)
    cache.store(_key(4), 0, 2 ** 62)            # no nextUpdate: an hour
    assert cache.lookup(_key(4)) == 0
    used = cache.used
    cache.w[cache.base + cache._find(_tag(cache, _key(1)), _key(1)) * cache.sw + 3] = now - 1
    assert cache.lookup(_key(1)) is None and cache.used == used - 1


def _tag(cache, key: bytes) -> int:
    from ngate.limits.table import key_hash
    return key_hash(key) | len(key) << 32


def test_full_zone_drops_the_oldest_entry():
    cache = OcspCache("t2", 32768)
    now = int(time.time())
    for i in range(cache.nslots):
        cache.store(_key(i), 0, now + 100)
    assert cache.used == cache.nslots
    cache.store(_key(10 ** 6), 1, now + 100)
    assert cache.lookup(_key(10 ** 6)) == 1
    assert cache.lookup(_key(0)) is None                    # the oldest went
    assert cache.lookup(_key(1)) == 0 and cache.used == cache.nslots
