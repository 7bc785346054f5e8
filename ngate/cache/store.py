"""Cache entries on disk, shared by every worker through the file system.

An entry is one file named by the md5 of its key under nginx's `levels` directories
(levels=1:2: <path>/c/29/b7f54b2df7773722d382f4809d65029c). Its layout (ngate's own):

  b"NGATE-CACHE 1\n" <JSON header> b"\n" <body bytes>

The JSON header holds the key (compared on every read: an md5 collision or a corrupt file is a
miss, never another key's response), the expiry, the status, the response headers and the Vary
names with the request's values. Files are written under <path>/.tmp and renamed into place, so
a reader sees a whole entry or none. A hit refreshes the file's mtime: that is the entry's last
use for `inactive` and for the cache manager (cache/manager.py), which removes the least recently
used first.

The keys zone (SharedKeys): per key, the uses count for proxy_cache_min_uses and when a request
started fetching it (the proxy_cache_lock / `updating` mark), in a shared anonymous mapping made
by the master before it forks, so all workers see them. It is a fixed table of keys_zone's size
(32 bytes a key, open addressing over 8 slots, the oldest overwritten when they are all taken).
The busy mark is taken (claim) under a process-shared lock, as nginx sets fcn->updating under
the zone's mutex: of requests for one key in several workers, one fetches and the others wait
(proxy_cache_lock) or answer stale (`updating`). The uses count is kept without it: a race there
costs at most one use, never a wrong response.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import os
import time

MAGIC = b"NGATE-CACHE 1\n"


class Entry:
    __slots__ = ("path", "fd", "meta", "offset", "size", "valid", "status")

    def __init__(self, path, fd, meta, offset, size) -> None:
        self.path = path
        self.fd = fd
        self.meta = meta
        self.offset = offset            # where the body starts in the file
        self.size = size                # body length
        self.valid = meta["valid"]
        self.status = meta["status"]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @property
    def headers(self) -> list:
        return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self.meta["headers"]]

    def read_body(self) -> bytes:
        return os.pread(self.fd, self.size, self.offset) if self.size else b""


_SLOT_WORDS = 4            # key (64 bits of the md5), uses, fetch start (ms), last touch (ms)
_PROBES = 8


class SharedKeys:
    """uses and busy marks per key hash, shared by every worker (see the module docstring)."""
    __slots__ = ("mem", "words", "slots", "lock")

    def __init__(self, size: int) -> None:
        self.slots = max(64, size // (_SLOT_WORDS * 8))
        self.mem = mmap.mmap(-1, self.slots * _SLOT_WORDS * 8)     # MAP_SHARED | MAP_ANONYMOUS
        self.words = memoryview(self.mem).cast("Q")
        self.lock = _process_lock()     # made before the fork, as the mapping: shared

    def _slot(self, h: str, create: bool) -> int:
        key = int(h[:16], 16) or 1
        w = self.words
        base = key % self.slots
        oldest, oldest_at = -1, None
        for i in range(_PROBES):
            at = ((base + i) % self.slots) * _SLOT_WORDS
            k = w[at]
            if k == key:
                return at
            if k == 0:
                if not create:
                    return -1
                oldest, oldest_at = at, -1
                break
            if oldest_at is None or w[at + 3] < oldest_at:
                oldest, oldest_at = at, w[at + 3]
        if not create:
            return -1
        w[oldest] = key
        w[oldest + 1] = w[oldest + 2] = 0
        w[oldest + 3] = _now_ms()
        return oldest

    def add_use(self, h: str) -> int:
        at = self._slot(h, True)
        w = self.words
        w[at + 1] += 1
        w[at + 3] = _now_ms()
        return w[at + 1]

    def busy_since(self, h: str) -> float | None:
        at = self._slot(h, False)
        if at < 0 or not self.words[at + 2]:
            return None
        return self.words[at + 2] / 1000.0

    def claim(self, h: str, age: float | None = None) -> int:
        """Mark the key busy unless another request holds the mark (one younger than `age`
        seconds, when given: *_cache_lock_age); the mark (its time in ms, nginx's lock_time)
        when this caller now holds it, else 0. The test and the mark are one step for all
        workers (nginx: ngx_http_file_cache_lock under the zone's mutex)."""
        self._lock()
        try:
            at = self._slot(h, True)
            w = self.words
            now = _now_ms()
            busy = w[at + 2]
            if busy and (age is None or now - busy < age * 1000):
                return 0
            if now <= busy:         # taken over within the same ms: still a mark of its own
                now = busy + 1
            w[at + 2] = now
            return now
        finally:
            self._unlock()

    def release(self, h: str, mark: int) -> None:
        """Clear the busy mark if it is still `mark` (nginx's ngx_http_file_cache_free:
        `updating` cleared only when the node's lock_time is the request's own): a mark taken
        over after *_cache_lock_age stays with its new owner."""
        self._lock()
        try:
            at = self._slot(h, False)
            if at >= 0 and self.words[at + 2] == mark:
                self.words[at + 2] = 0
        finally:
            self._unlock()

    def _lock(self) -> None:
        lock = self.lock
        if lock is not None and not lock.acquire(True, _LOCK_WAIT):
            pass    # its holder died inside these few lines: take the lock over (released below)

    def _unlock(self) -> None:
        if self.lock is not None:
            try:
                self.lock.release()
            except ValueError:      # released already by a waiter that took it over
                pass

    def set_busy(self, h: str, busy: bool) -> None:
        at = self._slot(h, busy)
        if at >= 0:
            self.words[at + 2] = _now_ms() if busy else 0


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


_LOCK_WAIT = 1.0        # seconds: a holder of SharedKeys.lock this long has died holding it


def _process_lock():
    """A lock shared by the processes forked after it is made, or None where POSIX semaphores
    cannot be made (the busy mark is then taken without it)."""
    try:
        import multiprocessing
        return multiprocessing.get_context("fork").Lock()
    except (OSError, ImportError):
        return None


class Zone:
    """The runtime side of one keys zone: its directory, its shared keys, the manager's clock."""
    __slots__ = ("path", "levels", "inactive", "keys")

    def __init__(self, cp) -> None:
        self.path = cp.path
        self.levels = cp.levels
        self.inactive = cp.inactive
        self.keys = SharedKeys(cp.size)

    def hash(self, key: str) -> str:
        return hashlib.md5(key.encode("utf-8", "surrogateescape")).hexdigest()

    def file_for(self, h: str) -> str:
        parts = [self.path]
        end = len(h)
        for n in self.levels:
            parts.append(h[end - n:end])
            end -= n
        parts.append(h)
        return os.path.join(*parts)

    # ------------------------------------------------------------ read

    def open(self, key: str, h: str):
        """The entry for key, or None (absent, another key, unreadable, inactive too long)."""
        path = self.file_for(h)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if st.st_mtime + self.inactive < time.time():
                raise ValueError("inactive")
            data = os.pread(fd, 65536, 0)
            if not data.startswith(MAGIC):
                raise ValueError("magic")
            end = data.find(b"\n", len(MAGIC))
            while end < 0 and len(data) < st.st_size and len(data) < 1 << 22:
                data += os.pread(fd, 65536, len(data))
                end = data.find(b"\n", len(MAGIC))
            if end < 0:
                raise ValueError("header")
            meta = json.loads(data[len(MAGIC):end])
            if meta.get("key") != key:
                raise ValueError("key")
            offset = end + 1
            size = st.st_size - offset
            if size != meta.get("len"):
                raise ValueError("length")
        except (OSError, ValueError, KeyError):
            os.close(fd)
            return None
        return Entry(path, fd, meta, offset, size)

    def touch(self, entry: Entry) -> None:
        try:
            os.utime(entry.path)
        except OSError:
            pass

    def remove(self, h: str) -> None:
        try:
            os.unlink(self.file_for(h))
        except OSError:
            pass

    # ------------------------------------------------------------ write

    def writer(self, h: str, meta: dict):
        return EntryWriter(self, h, meta)


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


class EntryWriter:
    """A body written as it streams to a temp file; `commit` renames it into place."""
    __slots__ = ("zone", "h", "meta", "chunks", "size", "error")

    def __init__(self, zone: Zone, h: str, meta: dict) -> None:
        self.zone = zone
        self.h = h
        self.meta = meta
        self.chunks: list = []
        self.size = 0
        self.error = ""

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)

    def commit(self) -> bool:
        zone = self.zone
        self.meta["len"] = self.size
        head = MAGIC + json.dumps(self.meta, separators=(",", ":")).encode("latin-1") + b"\n"
        final = zone.file_for(self.h)
        tmpdir = os.path.join(zone.path, ".tmp")
        tmp = os.path.join(tmpdir, "%s.%d.%d" % (self.h, os.getpid(), time.monotonic_ns()))
        try:
            os.makedirs(tmpdir, exist_ok=True)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, head)
                for chunk in self.chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except OSError as err:
            _unlink(tmp)
            self.error = f'{err.strerror} "{err.filename}"'
            return False
        finally:
            self.chunks = []
        return True
