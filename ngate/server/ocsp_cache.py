"""ssl_ocsp_cache's shared zone: a certificate's OCSP status by nginx's 60-byte key (SHA-1 of
the issuer's name and key, the serial), valid until the response's nextUpdate (or an hour), in
limits/table.py's shared memory so that every worker sees what one fetched
(ngx_ssl_ocsp_cache_lookup/_store). An expired entry is dropped when looked up; a full zone
drops its oldest entry (nginx's expire queue tail).

Slot (104 bytes): tag, next, status, valid (unix seconds), insertion number, key at byte 40.
"""
from __future__ import annotations

import time

from ngate.limits.table import H_HEAD, Table, key_hash
from ngate.observability import error_log

_STATUS, _VALID, _SEQ = 2, 3, 4
_REFRESH = 3600


class OcspCache(Table):
    SLOT = 104
    KEY_AT = 40
    KEY_CAP = 64
    DIGEST_LEN = 0

    def lookup(self, key: bytes) -> int | None:
        """The cached status, or None (missing or expired: then dropped)."""
        tag = key_hash(key) | len(key) << 32
        self.lock()
        try:
            idx = self._find(tag, key)
            if not idx:
                return None
            at = self.base + idx * self.sw
            if self.w[at + _VALID] > int(time.time()):
                return self.w[at + _STATUS]
            self._chain_remove(idx)
            self._free(idx)
            return None
        finally:
            self.unlock()

    def store(self, key: bytes, status: int, valid: float) -> None:
        now = int(time.time())
        if valid < now:
            return
        valid = now + _REFRESH if valid >= 2 ** 62 else int(valid)
        tag = key_hash(key) | len(key) << 32
        self.lock()
        try:
            idx = self._alloc() or self._evict()
            if not idx:
                error_log.alert(f'could not allocate new entry in OCSP cache "{self.name}"')
                return
            self._store(idx, tag, key)
            at = self.base + idx * self.sw
            w = self.w
            w[H_HEAD] += 1                  # the insertion counter (no LRU list here)
            w[at + _STATUS], w[at + _VALID], w[at + _SEQ] = status, valid, w[H_HEAD]
        finally:
            self.unlock()

    def _evict(self) -> int:
        """The oldest entry's slot, unlinked and reused (the zone is full)."""
        w, base, sw = self.w, self.base, self.sw
        oldest = min(range(1, self.nslots + 1), key=lambda i: w[base + i * sw + _SEQ],
                     default=0)
        if oldest:
            self._chain_remove(oldest)
        return oldest
