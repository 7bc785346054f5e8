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

Layout (little-endian):
  header    64 bytes: magic, slots, buckets, free list head, LRU head and tail, top
  buckets   u32 per bucket: the first slot of the hash chain (slot numbers are 1-based, 0 none)
  slots     fixed size; a key longer than a slot holds is stored as its 16-byte BLAKE2b digest
            (flagged in the length field, so it never equals a stored key of the same bytes)

A slot is 128 bytes for limit_req (nginx's 64-bit node for a short key lands in its 128-byte slab
class) and 64 bytes for limit_conn (nginx's 64-byte class); with the bucket array this holds about
as many states as nginx's slab allocator in the same zone size (~8,000 and ~15,000 per megabyte).

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
import struct
from zlib import crc32

from ngate.observability import error_log

_MAGIC = b"ngzone01"
_HEADER = struct.Struct("<8sIIIIIII")        # magic nslots nbuckets free head tail top used
_HEADER_SIZE = 64
_U32 = struct.Struct("<I")
_OFF_FREE, _OFF_HEAD, _OFF_TAIL, _OFF_TOP, _OFF_USED, _OFF_HOLDER = 16, 20, 24, 28, 32, 36
LOCK_WAIT = 5.0          # seconds before a waiter checks whether the lock's holder still lives

# this process's pid, written by lock holders (kept right across fork without a getpid() each time)
_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))
_DIGEST = 16

# limit_req slot: hash, chain next, LRU prev, LRU next, last (ms), excess, count, key length
_REQ = struct.Struct("<IIIIqqIH2x")
_REQ_SLOT = 128
_REQ_KEY_AT = _REQ.size                      # 40
_REQ_KEY_CAP = _REQ_SLOT - _REQ.size         # 88
_REQ_DIGEST_LEN = 0x8000 | _DIGEST
_REQ_LAST_EXCESS = struct.Struct("<qq")      # at +16
_REQ_COUNT = _U32                            # at +32

# limit_conn slot: hash, chain next, conn, key length
_CONN = struct.Struct("<IIHBx")
_CONN_SLOT = 64
_CONN_KEY_AT = _CONN.size                    # 12
_CONN_KEY_CAP = _CONN_SLOT - _CONN.size      # 52
_CONN_DIGEST_LEN = 0x80 | _DIGEST
_U16 = struct.Struct("<H")

# limit_req lookup results (nginx's NGX_OK, NGX_AGAIN, NGX_BUSY, NGX_ERROR)
OK, AGAIN, BUSY, ERROR = 0, 1, 2, 3
EXPIRE_AFTER = 60000


def capacity(size: int, slot: int) -> int:
    """Slots in a zone of `size` bytes (one bucket per slot)."""
    return max(0, (size - _HEADER_SIZE) // (slot + 4))


class Table:
    """A zone's memory and lock. Subclasses own the slot layout."""
    SLOT = 0

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
        self.boff = _HEADER_SIZE
        self.soff = (_HEADER_SIZE + 4 * self.nbuckets + 7) & ~7
        _HEADER.pack_into(self.mm, 0, _MAGIC, n, self.nbuckets, 0, 0, 0, 0, 0)
        self.sem = _semaphore()
        if self.sem is None:
            self.lock, self.unlock = self._flock, self._funlock
    def close(self) -> None:
        try:
            self.mm.close()
        finally:
            os.close(self.fd)

    def __del__(self) -> None:
        try:
            self.close()
        except (OSError, ValueError, AttributeError):
            pass

    # -------------------------------------------------------- lock
    def lock(self) -> None:
        sem = self.sem
        while not sem.acquire(True, LOCK_WAIT):
            self._take_over()
        _U32.pack_into(self.mm, _OFF_HOLDER, _PID[0])

    def unlock(self) -> None:
        _U32.pack_into(self.mm, _OFF_HOLDER, 0)
        self.sem.release()

    def _take_over(self) -> None:
        """LOCK_WAIT passed: if the holder is gone, free the lock it can no longer release."""
        holder = _U32.unpack_from(self.mm, _OFF_HOLDER)[0]
        if holder and _alive(holder):
            return
        error_log.alert(f'zone "{self.name}" lock was held by {holder or "a process"} that is '
                        "gone: unlocking")
        _U32.pack_into(self.mm, _OFF_HOLDER, 0)
        try:
            self.sem.release()
        except ValueError:          # another waiter did it first
            pass

    def _flock(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)

    def _funlock(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN)

    # -------------------------------------------------------- header fields
    def _get(self, off: int) -> int:
        return _U32.unpack_from(self.mm, off)[0]

    def _set(self, off: int, value: int) -> None:
        _U32.pack_into(self.mm, off, value)

    @property
    def used(self) -> int:
        return self._get(_OFF_USED)

    def _slot(self, idx: int) -> int:
        return self.soff + (idx - 1) * self.SLOT

    def _alloc(self) -> int:
        """A free slot number (not yet linked anywhere), or 0 when the zone is full."""
        idx = self._get(_OFF_FREE)
        if idx:
            self._set(_OFF_FREE, _U32.unpack_from(self.mm, self._slot(idx) + 4)[0])
        else:
            top = self._get(_OFF_TOP)
            if top >= self.nslots:
                return 0
            idx = top + 1
            self._set(_OFF_TOP, idx)
        self._set(_OFF_USED, self._get(_OFF_USED) + 1)
        return idx

    def _free(self, idx: int) -> None:
        _U32.pack_into(self.mm, self._slot(idx) + 4, self._get(_OFF_FREE))
        self._set(_OFF_FREE, idx)
        self._set(_OFF_USED, self._get(_OFF_USED) - 1)

    def _chain_insert(self, idx: int, h: int) -> None:
        b = self.boff + 4 * (h % self.nbuckets)
        off = self._slot(idx)
        mm = self.mm
        _U32.pack_into(mm, off, h)
        _U32.pack_into(mm, off + 4, _U32.unpack_from(mm, b)[0])
        _U32.pack_into(mm, b, idx)

    def _chain_remove(self, idx: int) -> None:
        mm = self.mm
        off = self._slot(idx)
        h, nxt = struct.unpack_from("<II", mm, off)
        b = self.boff + 4 * (h % self.nbuckets)
        cur = _U32.unpack_from(mm, b)[0]
        if cur == idx:
            _U32.pack_into(mm, b, nxt)
            return
        while cur:
            coff = self._slot(cur)
            cnext = _U32.unpack_from(mm, coff + 4)[0]
            if cnext == idx:
                _U32.pack_into(mm, coff + 4, nxt)
                return
            cur = cnext


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


def key_hash(kb: bytes) -> int:
    return crc32(kb)


class ReqTable(Table):
    """limit_req states: (last, excess, count) per key, on an LRU list."""
    SLOT = _REQ_SLOT

    @staticmethod
    def stored_key(kb: bytes) -> tuple[bytes, int]:
        if len(kb) <= _REQ_KEY_CAP:
            return kb, len(kb)
        return hashlib.blake2b(kb, digest_size=_DIGEST).digest(), _REQ_DIGEST_LEN

    def _find(self, h: int, sk: bytes, klen: int):
        mm = self.mm
        idx = _U32.unpack_from(mm, self.boff + 4 * (h % self.nbuckets))[0]
        unpack = _REQ.unpack_from
        while idx:
            off = self.soff + (idx - 1) * _REQ_SLOT
            rec = unpack(mm, off)
            if rec[0] == h and rec[7] == klen and \
                    mm[off + _REQ_KEY_AT:off + _REQ_KEY_AT + len(sk)] == sk:
                return idx, rec
            idx = rec[1]
        return 0, None

    # -------------------------------------------------------- LRU list
    def _lru_unlink(self, idx: int, prev: int, nxt: int) -> None:
        mm = self.mm
        if prev:
            _U32.pack_into(mm, self._slot(prev) + 12, nxt)
        else:
            _U32.pack_into(mm, _OFF_HEAD, nxt)
        if nxt:
            _U32.pack_into(mm, self._slot(nxt) + 8, prev)
        else:
            _U32.pack_into(mm, _OFF_TAIL, prev)

    def _lru_push(self, idx: int) -> None:
        mm = self.mm
        head = _U32.unpack_from(mm, _OFF_HEAD)[0]
        off = self._slot(idx)
        _U32.pack_into(mm, off + 8, 0)
        _U32.pack_into(mm, off + 12, head)
        if head:
            _U32.pack_into(mm, self._slot(head) + 8, idx)
        else:
            _U32.pack_into(mm, _OFF_TAIL, idx)
        _U32.pack_into(mm, _OFF_HEAD, idx)

    # -------------------------------------------------------- nginx's lookup / account / expire
    def lookup(self, kb: bytes, h: int, rate: int, burst: int, account: bool, now: int):
        """ngx_http_limit_req_lookup under the zone's lock: (rc, excess, slot).

        rc OK: accounted (the last limit); AGAIN: passed and the slot is held (count + 1) until
        account() or unhold(); BUSY: excess above burst; ERROR: no slot could be had."""
        if len(kb) <= _REQ_KEY_CAP:
            sk, klen = kb, len(kb)
        else:
            sk, klen = self.stored_key(kb)
        mm = self.mm
        self.lock()
        try:
            idx, rec = self._find(h, sk, klen)
            if idx:
                off = self.soff + (idx - 1) * _REQ_SLOT
                if rec[2]:                              # not the LRU head: move it there
                    self._lru_unlink(idx, rec[2], rec[3])
                    self._lru_push(idx)
                ms = now - rec[4]
                if ms < 0:
                    ms = 1 if ms < -60000 else 0
                excess = rec[5] - rate * ms // 1000 + 1000
                if excess < 0:
                    excess = 0
                if excess > burst:
                    return BUSY, excess, 0
                if account:
                    _REQ_LAST_EXCESS.pack_into(mm, off + 16, now if ms else rec[4], excess)
                    return OK, excess, 0
                _REQ_COUNT.pack_into(mm, off + 32, rec[6] + 1)
                return AGAIN, excess, idx
            return self._insert(h, sk, klen, rate, account, now)
        finally:
            self.unlock()

    def _insert(self, h, sk, klen, rate, account, now):
        self._expire(1, rate, now)
        idx = self._alloc()
        if not idx:
            self._expire(0, rate, now)
            idx = self._alloc()
            if not idx:
                return ERROR, 0, 0
        mm = self.mm
        off = self._slot(idx)
        _REQ.pack_into(mm, off, h, 0, 0, 0, now if account else 0, 0, 0 if account else 1, klen)
        mm[off + _REQ_KEY_AT:off + _REQ_KEY_AT + len(sk)] = sk
        self._chain_insert(idx, h)
        self._lru_push(idx)
        return (OK, 0, 0) if account else (AGAIN, 0, idx)

    def account(self, idx: int, rate: int, now: int) -> int:
        """The held slot of an earlier limit: charge this request, release it; its excess."""
        self.lock()
        try:
            mm = self.mm
            off = self._slot(idx)
            rec = _REQ.unpack_from(mm, off)
            ms = now - rec[4]
            if ms < -60000:
                ms = 1
            elif ms < 0:
                ms = 0
            excess = rec[5] - rate * ms // 1000 + 1000
            if excess < 0:
                excess = 0
            _REQ_LAST_EXCESS.pack_into(mm, off + 16, now if ms else rec[4], excess)
            _REQ_COUNT.pack_into(mm, off + 32, rec[6] - 1)
            return excess
        finally:
            self.unlock()

    def unhold(self, idx: int) -> None:
        """A held slot is not charged after all (a later limit rejected the request)."""
        self.lock()
        try:
            off = self._slot(idx) + 32
            _REQ_COUNT.pack_into(self.mm, off, _REQ_COUNT.unpack_from(self.mm, off)[0] - 1)
        finally:
            self.unlock()

    def _expire(self, n: int, rate: int, now: int) -> None:
        """n == 1: delete one or two idle entries; n == 0: the oldest by force, then as n == 1."""
        mm = self.mm
        while n < 3:
            tail = _U32.unpack_from(mm, _OFF_TAIL)[0]
            if not tail:
                return
            rec = _REQ.unpack_from(mm, self._slot(tail))
            if rec[6]:
                return              # held by a request: nothing older can be either (nginx)
            if n != 0:
                ms = abs(now - rec[4])
                if ms < EXPIRE_AFTER:
                    return
                if rec[5] - rate * ms // 1000 > 0:
                    return
            n += 1
            self._lru_unlink(tail, rec[2], 0)
            self._chain_remove(tail)
            self._free(tail)

    def state(self, kb: bytes):
        """(last, excess, count) of a key, or None (tests, ngate explain)."""
        sk, klen = self.stored_key(kb)
        idx, rec = self._find(key_hash(kb), sk, klen)
        return None if rec is None else (rec[4], rec[5], rec[6])


class ConnTable(Table):
    """limit_conn states: a connection count per key; a slot lives while its count is > 0."""
    SLOT = _CONN_SLOT

    @staticmethod
    def stored_key(kb: bytes) -> tuple[bytes, int]:
        if len(kb) <= _CONN_KEY_CAP:
            return kb, len(kb)
        return hashlib.blake2b(kb, digest_size=_DIGEST).digest(), _CONN_DIGEST_LEN

    def _find(self, h: int, sk: bytes, klen: int):
        mm = self.mm
        idx = _U32.unpack_from(mm, self.boff + 4 * (h % self.nbuckets))[0]
        unpack = _CONN.unpack_from
        while idx:
            off = self.soff + (idx - 1) * _CONN_SLOT
            rec = unpack(mm, off)
            if rec[0] == h and rec[3] == klen and \
                    mm[off + _CONN_KEY_AT:off + _CONN_KEY_AT + len(sk)] == sk:
                return idx, rec
            idx = rec[1]
        return 0, None

    def acquire(self, kb: bytes, h: int, limit: int):
        """(OK, slot) with the count raised; (BUSY, 0) at the limit; (ERROR, 0) zone full."""
        self.lock()
        try:
            sk, klen = self.stored_key(kb)
            idx, rec = self._find(h, sk, klen)
            mm = self.mm
            if idx:
                if rec[2] >= limit:
                    return BUSY, 0
                _U16.pack_into(mm, self.soff + (idx - 1) * _CONN_SLOT + 8, rec[2] + 1)
                return OK, idx
            idx = self._alloc()
            if not idx:
                return ERROR, 0
            off = self._slot(idx)
            _CONN.pack_into(mm, off, h, 0, 1, klen)
            mm[off + _CONN_KEY_AT:off + _CONN_KEY_AT + len(sk)] = sk
            self._chain_insert(idx, h)
            return OK, idx
        finally:
            self.unlock()

    def release(self, idx: int) -> None:
        self.lock()
        try:
            mm = self.mm
            off = self._slot(idx) + 8
            conn = _U16.unpack_from(mm, off)[0] - 1
            if conn > 0:
                _U16.pack_into(mm, off, conn)
            else:
                _U16.pack_into(mm, off, 0)
                self._chain_remove(idx)
                self._free(idx)
        finally:
            self.unlock()

    def count(self, kb: bytes) -> int:
        sk, klen = self.stored_key(kb)
        idx, rec = self._find(key_hash(kb), sk, klen)
        return 0 if rec is None else rec[2]
