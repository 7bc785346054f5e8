"""The zones' shared tables: fixed-size slots in shared memory, locked across processes.

A zone (`zone=name:10m`) is one memfd of exactly that size, mapped MAP_SHARED by the master
before it forks the workers, so every worker reads and writes the same slots (nginx's promise:
`rate=10r/s` admits 10 r/s whatever worker_processes is). Its lock is a POSIX semaphore made
before the fork (multiprocessing's SemLock: no system call unless contended; ~0.1-0.3 us per
lock/unlock pair here, against ~0.6-2.4 us for an fcntl record lock). The holder writes its pid
in the zone's header, as nginx's shmtx does: a waiter that has waited LOCK_WAIT seconds for a
holder that no longer exists (a worker killed inside a critical section) takes the lock over
and logs it, where nginx's master force-unlocks a dead worker's mutexes. Where POSIX semaphores
are unavailable (no /dev/shm), an fcntl record lock on the memfd is used (the kernel drops it
when its holder dies).

Layout: the memory is read as 64-bit words (a memoryview cast: one index per field, much
cheaper than struct calls), the buckets as 32-bit words.
  header    16 words: magic, slots, buckets, free list head, LRU head and tail, top (slots
            ever used), used, lock holder's pid
  buckets   u32 per bucket: the first slot of the hash chain (slot numbers are 1-based, 0 none)
  slots     fixed size; word 0 is the key's crc32 | its length << 32 (one comparison finds a
            candidate), the key's bytes follow the fields. A key longer than a slot holds is
            stored as its 16-byte BLAKE2b digest, flagged in the length (never equal to a stored
            key of the same bytes)

A limit_req slot is 128 bytes (nginx's 64-bit node for a short key lands in its 128-byte slab
class), a limit_conn slot 64 bytes (nginx's 64-byte class); with the bucket array a zone holds
about as many states as nginx's slab allocator in the same size (~7,900 and ~15,400 per MB).

limit_req keeps the slots on an LRU list (most recent at the head) and expires as nginx's
ngx_http_limit_req_expire does: before each allocation, one or two entries from the tail that
are idle for 60 s and have no excess left; when the zone is full, the tail by force (unless a
request holds it), then one or two more idle ones. limit_conn never evicts: a slot lives while
its count is above zero, and a full zone refuses (nginx: "ngx_slab_alloc() failed: no memory").

Times are integer milliseconds of CLOCK_MONOTONIC (nginx's ngx_current_msec), shared by all
processes; excess is in 1/1000 requests and rate in 1/1000 requests per second, as nginx's.
The callers pass `now`, so tests drive the clock.
"""
from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
from zlib import crc32

from ngate.observability import error_log

_MAGIC = int.from_bytes(b"ngzone02", "little")
_HEADER_WORDS = 16
_H_MAGIC, _H_SLOTS, _H_BUCKETS, _H_FREE, _H_HEAD, _H_TAIL, _H_TOP, _H_USED, _H_HOLDER = range(9)
_DIGEST = 16
LOCK_WAIT = 5.0          # seconds before a waiter checks whether the lock's holder still lives

# limit_req slot words: 0 hash|klen<<32, 1 chain next, 2 LRU prev, 3 LRU next, 4 last (ms),
# 5 excess, 6 count; key bytes from word 7
_REQ_SLOT = 128
_REQ_KEY_AT = 7 * 8
_REQ_KEY_CAP = _REQ_SLOT - _REQ_KEY_AT       # 72
_REQ_DIGEST_LEN = 0x8000 | _DIGEST

# limit_conn slot words: 0 hash|klen<<32, 1 chain next, 2 conn; key bytes from word 3
_CONN_SLOT = 64
_CONN_KEY_AT = 3 * 8
_CONN_KEY_CAP = _CONN_SLOT - _CONN_KEY_AT    # 40
_CONN_DIGEST_LEN = 0x100 | _DIGEST

# limit_req lookup results (nginx's NGX_OK, NGX_AGAIN, NGX_BUSY, NGX_ERROR)
OK, AGAIN, BUSY, ERROR = 0, 1, 2, 3
EXPIRE_AFTER = 60000

# this process's pid, written by lock holders (kept right across fork without a getpid() each time)
_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def capacity(size: int, slot: int) -> int:
    """Slots in a zone of `size` bytes (one 4-byte bucket per slot)."""
    return max(0, (size - 8 * _HEADER_WORDS - 8) // (slot + 4))


def key_hash(kb: bytes) -> int:
    return crc32(kb)


class Table:
    """A zone's memory and lock. Subclasses own the slot layout."""
    SLOT = 8
    KEY_AT = 0
    KEY_CAP = 0
    DIGEST_LEN = 0

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.fd = os.memfd_create("ngate-zone-" + name, os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, size)
            self.mm = mmap.mmap(self.fd, size)     # MAP_SHARED: inherited by forked workers
        except OSError:
            os.close(self.fd)
            raise
        self.nslots = n = capacity(size, self.SLOT)
        self.nbuckets = max(1, n)
        boff = 8 * _HEADER_WORDS
        self.soff = (boff + 4 * self.nbuckets + 7) & ~7
        self.sw = self.SLOT // 8                   # words per slot
        self.base = self.soff // 8 - self.sw       # word index of slot 1 is base + sw
        view = memoryview(self.mm)
        self.w = view.cast("Q")
        self.b = view
        self.buckets = view[boff:boff + 4 * self.nbuckets].cast("I")
        w = self.w
        w[_H_MAGIC], w[_H_SLOTS], w[_H_BUCKETS] = _MAGIC, n, self.nbuckets
        self.sem = _semaphore()
        if self.sem is None:
            self.lock, self.unlock = self._flock, self._funlock

    def close(self) -> None:
        try:
            self.buckets.release()
            self.w.release()
            self.b.release()
            self.mm.close()
        finally:
            os.close(self.fd)

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, ValueError, AttributeError, BufferError):
            pass

    # -------------------------------------------------------- lock
    def lock(self) -> None:
        sem = self.sem
        while not sem.acquire(True, LOCK_WAIT):
            self._take_over()
        self.w[_H_HOLDER] = _PID[0]

    def unlock(self) -> None:
        self.w[_H_HOLDER] = 0
        self.sem.release()

    def _take_over(self) -> None:
        """LOCK_WAIT passed: if the holder is gone, free the lock it can no longer release."""
        holder = self.w[_H_HOLDER]
        if holder and _alive(holder):
            return
        error_log.alert(f'zone "{self.name}" lock was held by {holder or "a process"} that is '
                        "gone: unlocking")
        self.w[_H_HOLDER] = 0
        try:
            self.sem.release()
        except ValueError:          # another waiter did it first
            pass

    def _flock(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)

    def _funlock(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN)

    # -------------------------------------------------------- slots
    @property
    def used(self) -> int:
        return self.w[_H_USED]

    def stored_key(self, kb: bytes) -> tuple[bytes, int]:
        if len(kb) <= self.KEY_CAP:
            return kb, len(kb)
        return hashlib.blake2b(kb, digest_size=_DIGEST).digest(), self.DIGEST_LEN

    def _find(self, tag: int, sk: bytes) -> int:
        """The slot whose tag (hash | length << 32) and key match, or 0."""
        w = self.w
        idx = self.buckets[(tag & 0xFFFFFFFF) % self.nbuckets]
        base, sw = self.base, self.sw
        while idx:
            at = base + idx * sw
            if w[at] == tag:
                off = at * 8 + self.KEY_AT
                if self.b[off:off + len(sk)] == sk:
                    return idx
            idx = w[at + 1]
        return 0

    def _alloc(self) -> int:
        """A free slot number (not yet linked anywhere), or 0 when the zone is full."""
        w = self.w
        idx = w[_H_FREE]
        if idx:
            w[_H_FREE] = w[self.base + idx * self.sw + 1]
        else:
            top = w[_H_TOP]
            if top >= self.nslots:
                return 0
            idx = w[_H_TOP] = top + 1
        w[_H_USED] += 1
        return idx

    def _free(self, idx: int) -> None:
        w = self.w
        w[self.base + idx * self.sw + 1] = w[_H_FREE]
        w[_H_FREE] = idx
        w[_H_USED] -= 1

    def _store(self, idx: int, tag: int, sk: bytes) -> None:
        """Key and tag into a fresh slot, linked at the head of its bucket's chain."""
        at = self.base + idx * self.sw
        off = at * 8 + self.KEY_AT
        self.b[off:off + len(sk)] = sk
        b = (tag & 0xFFFFFFFF) % self.nbuckets
        w = self.w
        w[at] = tag
        w[at + 1] = self.buckets[b]
        self.buckets[b] = idx

    def _chain_remove(self, idx: int) -> None:
        w = self.w
        base, sw = self.base, self.sw
        at = base + idx * sw
        nxt = w[at + 1]
        b = (w[at] & 0xFFFFFFFF) % self.nbuckets
        cur = self.buckets[b]
        if cur == idx:
            self.buckets[b] = nxt
            return
        while cur:
            cat = base + cur * sw
            if w[cat + 1] == idx:
                w[cat + 1] = nxt
                return
            cur = w[cat + 1]


def _semaphore():
    """A process-shared lock, or None where POSIX semaphores cannot be made."""
    try:
        import multiprocessing
        return multiprocessing.get_context("fork").Lock()
    except (OSError, ImportError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
            w[_H_HEAD] = nxt
        if nxt:
            w[base + nxt * sw + 2] = prev
        else:
            w[_H_TAIL] = prev

    def _lru_push(self, idx: int) -> None:
        w = self.w
        base, sw = self.base, self.sw
        head = w[_H_HEAD]
        at = base + idx * sw
        w[at + 2] = 0
        w[at + 3] = head
        if head:
            w[base + head * sw + 2] = idx
        else:
            w[_H_TAIL] = idx
        w[_H_HEAD] = idx

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
            w[_H_HOLDER] = _PID[0]
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
                w[_H_HOLDER] = 0
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
            tail = w[_H_TAIL]
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
