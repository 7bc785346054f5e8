"""limit_conn's table (ngx_http_limit_conn_module's state): a connection count per key; a
slot lives while its count is above zero and a full zone refuses (no eviction).
"""
from __future__ import annotations

from ngate.limits.req_table import BUSY, ERROR, OK
from ngate.limits.table import DIGEST, Table, key_hash


# limit_conn slot words: 0 hash|klen<<32, 1 chain next, 2 conn; key bytes from word 3
_CONN_SLOT = 64
_CONN_KEY_AT = 3 * 8
_CONN_KEY_CAP = _CONN_SLOT - _CONN_KEY_AT    # 40
_CONN_DIGEST_LEN = 0x100 | DIGEST


class ConnTable(Table):
    """limit_conn states: a connection count per key; a slot lives while its count is > 0."""
    SLOT = _CONN_SLOT
    KEY_AT = _CONN_KEY_AT
    KEY_CAP = _CONN_KEY_CAP
    DIGEST_LEN = _CONN_DIGEST_LEN

    def acquire(self, kb: bytes, h: int, limit: int):
        """(OK, slot) with the count raised; (BUSY, 0) at the limit; (ERROR, 0) zone full."""
        sk, klen = self.stored_key(kb)
        tag = h | klen << 32
        self.lock()
        try:
            w = self.w
            idx = self._find(tag, sk)
            if idx:
                at = self.base + idx * 8
                if w[at + 2] >= limit:
                    return BUSY, 0
                w[at + 2] += 1
                return OK, idx
            idx = self._alloc()
            if not idx:
                return ERROR, 0
            self._store(idx, tag, sk)
            w[self.base + idx * 8 + 2] = 1
            return OK, idx
        finally:
            self.unlock()

    def release(self, idx: int) -> None:
        self.lock()
        try:
            w = self.w
            at = self.base + idx * 8 + 2
            conn = w[at] - 1
            if conn > 0:
                w[at] = conn
            else:
                w[at] = 0
                self._chain_remove(idx)
                self._free(idx)
        finally:
            self.unlock()

    def count(self, kb: bytes) -> int:
        sk, klen = self.stored_key(kb)
        idx = self._find(key_hash(kb) | klen << 32, sk)
        return self.w[self.base + idx * 8 + 2] if idx else 0
