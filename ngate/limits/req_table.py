"""limit_req's table (ngx_http_limit_req_module's state): per key the last request's time,
the excess (in 1/1000 requests) and a hold count, on an LRU list (most recent at the head),
expired as ngx_http_limit_req_expire does (see table.py's docstring). `lookup` takes the zone's
lock inline (the per-request path) and runs nginx's leaky bucket.
"""
from __future__ import annotations

from ngate.limits.table import DIGEST, H_HEAD, H_HOLDER, H_TAIL, LOCK_WAIT, PID, Table, key_hash


# limit_req slot words: 0 hash|klen<<32, 1 chain next, 2 LRU prev, 3 LRU next, 4 last (ms),
# 5 excess, 6 count; key bytes from word 7
_REQ_SLOT = 128
_REQ_KEY_AT = 7 * 8
_REQ_KEY_CAP = _REQ_SLOT - _REQ_KEY_AT       # 72
_REQ_DIGEST_LEN = 0x8000 | DIGEST


# limit_req lookup results (nginx's NGX_OK, NGX_AGAIN, NGX_BUSY, NGX_ERROR)
OK, AGAIN, BUSY, ERROR = 0, 1, 2, 3
EXPIRE_AFTER = 60000


class ReqTable(Table):
    """limit_req states: (last, excess, count) per key, on an LRU list."""
    SLOT = _REQ_SLOT
    KEY_AT = _REQ_KEY_AT
    KEY_CAP = _REQ_KEY_CAP
    DIGEST_LEN = _REQ_DIGEST_LEN

    # -------------------------------------------------------- LRU list
    def _lru_unlink(self, idx: int) -> None:
        w = self.w
        base, sw = self.base, self.sw
        at = base + idx * sw
        prev, nxt = w[at + 2], w[at + 3]
        if prev:
            w[base + prev * sw + 3] = nxt
        else:
            w[H_HEAD] = nxt
        if nxt:
            w[base + nxt * sw + 2] = prev
        else:
            w[H_TAIL] = prev

    def _lru_push(self, idx: int) -> None:
        w = self.w
        base, sw = self.base, self.sw
        head = w[H_HEAD]
        at = base + idx * sw
        w[at + 2] = 0
        w[at + 3] = head
        if head:
            w[base + head * sw + 2] = idx
        else:
            w[H_TAIL] = idx
        w[H_HEAD] = idx

    # -------------------------------------------------------- nginx's lookup / account / expire
    def lookup(self, kb: bytes, h: int, rate: int, burst: int, account: bool, now: int):
        """ngx_http_limit_req_lookup under the zone's lock: (rc, excess, slot).

        rc OK: accounted (the last limit); AGAIN: passed and the slot is held (count + 1) until
        account() or unhold(); BUSY: excess above burst; ERROR: no slot could be had."""
        if len(kb) <= _REQ_KEY_CAP:
            sk, tag = kb, h | len(kb) << 32
        else:
            sk, klen = self.stored_key(kb)
            tag = h | klen << 32
        w = self.w
        sem = self.sem
        if sem is None or not sem.acquire(True, LOCK_WAIT):
            if sem is not None:
                self._take_over()
            self.lock()
        else:
            w[H_HOLDER] = PID[0]
        try:
            idx = self._find(tag, sk)
            if idx:
                at = self.base + idx * 16
                if w[at + 2]:                           # not the LRU head: move it there
                    self._lru_unlink(idx)
                    self._lru_push(idx)
                last = w[at + 4]
                ms = now - last
                if ms < 0:
                    ms = 1 if ms < -60000 else 0
                excess = w[at + 5] - rate * ms // 1000 + 1000
                if excess < 0:
                    excess = 0
                if excess > burst:
                    return BUSY, excess, 0
                if account:
                    if ms:
                        w[at + 4] = now
                    w[at + 5] = excess
                    return OK, excess, 0
                w[at + 6] += 1
                return AGAIN, excess, idx
            return self._insert(tag, sk, rate, account, now)
        finally:
            if sem is None:
                self.unlock()
            else:
                w[H_HOLDER] = 0
                sem.release()

    def _insert(self, tag, sk, rate, account, now):
        self._expire(1, rate, now)
        idx = self._alloc()
        if not idx:
            self._expire(0, rate, now)
            idx = self._alloc()
            if not idx:
                return ERROR, 0, 0
        self._store(idx, tag, sk)
        at = self.base + idx * 16
        w = self.w
        w[at + 4] = now if account else 0
        w[at + 5] = 0
        w[at + 6] = 0 if account else 1
        self._lru_push(idx)
        return (OK, 0, 0) if account else (AGAIN, 0, idx)

    def account(self, idx: int, rate: int, now: int) -> int:
        """The held slot of an earlier limit: charge this request, release it; its excess."""
        self.lock()
        try:
            w = self.w
            at = self.base + idx * 16
            ms = now - w[at + 4]
            if ms < 0:
                ms = 1 if ms < -60000 else 0
            excess = w[at + 5] - rate * ms // 1000 + 1000
            if excess < 0:
                excess = 0
            if ms:
                w[at + 4] = now
            w[at + 5] = excess
            w[at + 6] -= 1
            return excess
        finally:
            self.unlock()

    def unhold(self, idx: int) -> None:
        """A held slot is not charged after all (a later limit rejected the request)."""
        self.lock()
        try:
            self.w[self.base + idx * 16 + 6] -= 1
        finally:
            self.unlock()

    def _expire(self, n: int, rate: int, now: int) -> None:
        """n == 1: delete one or two idle entries; n == 0: the oldest by force, then as n == 1."""
        w = self.w
        while n < 3:
            tail = w[H_TAIL]
            if not tail:
                return
            at = self.base + tail * 16
            if w[at + 6]:
                return              # held by a request: nothing older can be either (nginx)
            if n != 0:
                ms = abs(now - w[at + 4])
                if ms < EXPIRE_AFTER:
                    return
                if w[at + 5] - rate * ms // 1000 > 0:
                    return
            n += 1
            self._lru_unlink(tail)
            self._chain_remove(tail)
            self._free(tail)

    def state(self, kb: bytes):
        """(last, excess, count) of a key, or None (tests)."""
        sk, klen = self.stored_key(kb)
        idx = self._find(key_hash(kb) | klen << 32, sk)
        if not idx:
            return None
        at = self.base + idx * 16
        return self.w[at + 4], self.w[at + 5], self.w[at + 6]
