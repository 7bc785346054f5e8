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

Here: the zone's memory, lock and hash chains (Table); limit_req's slots and algorithm in
req_table.py, limit_conn's in conn_table.py.
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
H_MAGIC, H_SLOTS, H_BUCKETS, H_FREE, H_HEAD, H_TAIL, H_TOP, H_USED, H_HOLDER = range(9)
DIGEST = 16
LOCK_WAIT = 5.0          # seconds before a waiter checks whether the lock's holder still lives


# this process's pid, written by lock holders (kept right across fork without a getpid() each time)
PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: PID.__setitem__(0, os.getpid()))


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
        w[H_MAGIC], w[H_SLOTS], w[H_BUCKETS] = _MAGIC, n, self.nbuckets
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
        self.w[H_HOLDER] = PID[0]

    def unlock(self) -> None:
        self.w[H_HOLDER] = 0
        self.sem.release()

    def _take_over(self) -> None:
        """LOCK_WAIT passed: if the holder is gone, free the lock it can no longer release."""
        holder = self.w[H_HOLDER]
        if holder and _alive(holder):
            return
        error_log.alert(f'zone "{self.name}" lock was held by {holder or "a process"} that is '
                        "gone: unlocking")
        self.w[H_HOLDER] = 0
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
        return self.w[H_USED]

    def stored_key(self, kb: bytes) -> tuple[bytes, int]:
        if len(kb) <= self.KEY_CAP:
            return kb, len(kb)
        return hashlib.blake2b(kb, digest_size=DIGEST).digest(), self.DIGEST_LEN

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
        idx = w[H_FREE]
        if idx:
            w[H_FREE] = w[self.base + idx * self.sw + 1]
        else:
            top = w[H_TOP]
            if top >= self.nslots:
                return 0
            idx = w[H_TOP] = top + 1
        w[H_USED] += 1
        return idx

    def _free(self, idx: int) -> None:
        w = self.w
        w[self.base + idx * self.sw + 1] = w[H_FREE]
        w[H_FREE] = idx
        w[H_USED] -= 1

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

