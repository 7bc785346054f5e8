"""The cache manager (nginx's ngx_http_file_cache_manager, run by its "cache manager process").

One worker runs it: the one that holds the zone's lock (flock on <path>/.tmp/manager.lock, taken
again by another worker when its holder exits). Each pass, for every zone, works as nginx's:

1. expire: entries unused for `inactive` are removed, oldest first; the wait until the next one
   expires (at most 10 s; 10 s when the cache is empty) is the next pass's time. Removing
   `manager_files` entries, or working for `manager_threshold`, ends the pass: the next comes
   after `manager_sleep`.
2. while the cache is at or above `max_size`, or holds as many entries as the keys zone's
   watermark (7/8 of what the zone holds, once it was full), or the file system has no more than
   `min_free` free, the least recently used entry is removed; `manager_files` removals or
   `manager_threshold` of work end the pass (next after `manager_sleep`).

The passes of all zones run together; the next is after the shortest of their waits. The state
(sizes, counts, last use) is read from the directory each pass: ngate keeps no index in shared
memory. A size is counted in 4 KiB blocks, as nginx counts file system blocks.
"""
from __future__ import annotations

import fcntl
import os
import time

from ngate.cache.config import PAGE
from ngate.observability import error_log

_BLOCK = 4096
_NODE = 128                 # bytes of keys zone per entry (nginx: ~8000 keys a megabyte)
_EMPTY_WAIT = 10.0          # nginx: the wait when nothing is due (and at most this)


def zone_capacity(size: int) -> int:
    """How many entries a keys zone of `size` bytes holds (its slab's first pages are its own)."""
    return max(1, (size - 2 * PAGE) // _NODE)


class ZoneManager:
    """One zone's manager state: its lock and the keys zone's watermark."""
    __slots__ = ("cp", "lock_fd", "capacity", "watermark", "files", "started")

    def __init__(self, cp) -> None:
        self.cp = cp
        self.lock_fd = -1
        self.capacity = zone_capacity(cp.size)
        self.watermark = None           # set once the zone was full: entries kept below it
        self.files = 0
        self.started = 0.0

    def locked(self) -> bool:
        if self.lock_fd >= 0:
            return True
        tmp = os.path.join(self.cp.path, ".tmp")
        try:
            os.makedirs(tmp, exist_ok=True)
            fd = os.open(os.path.join(tmp, "manager.lock"),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self.lock_fd = fd
        return True

    def release(self) -> None:
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1

    # ------------------------------------------------------------ a pass

    def run(self) -> float:
        """One pass; the seconds until the next."""
        cp = self.cp
        self.started = time.monotonic()
        self.files = 0
        entries = scan(cp.path)             # [(last use, size in blocks, path)], oldest first
        wait = self.expire(entries)
        if wait == 0:
            return cp.manager_sleep
        size = sum(e[1] for e in entries)
        if len(entries) >= self.capacity and self.watermark is None:
            self.watermark = self.capacity - self.capacity // 8
        while True:
            below = (cp.max_size is None or size < cp.max_size) and \
                (self.watermark is None or len(entries) < self.watermark)
            if below and (not cp.min_free or free_space(cp.path) > cp.min_free):
                return wait
            if not entries:
                return _EMPTY_WAIT
            _mtime, blocks, path = entries.pop(0)
            remove(path)
            size -= blocks
            if self.spent():
                return cp.manager_sleep

    def expire(self, entries: list) -> float:
        """Remove the entries unused for `inactive` (oldest first). The wait until the next
        expires (at most 10 s), or 0 when the pass's work is used up."""
        if not entries:
            return _EMPTY_WAIT
        now = time.time()
        inactive = self.cp.inactive
        while entries:
            wait = entries[0][0] + inactive - now
            if wait > 0:
                return min(wait, _EMPTY_WAIT)
            remove(entries.pop(0)[2])
            if self.spent():
                return 0
        return _EMPTY_WAIT

    def spent(self) -> bool:
        """Count one removal; True when manager_files or manager_threshold is reached."""
        self.files += 1
        cp = self.cp
        return (self.files >= cp.manager_files
                or time.monotonic() - self.started >= cp.manager_threshold)


def scan(root: str) -> list:
    """The entries under root (not .tmp): (mtime, size in blocks, path), least recently used
    first."""
    out = []
    for dirpath, dirs, names in os.walk(root):
        if dirpath == root and ".tmp" in dirs:
            dirs.remove(".tmp")
        for name in names:
            p = os.path.join(dirpath, name)
            try:
                st = os.stat(p)
            except OSError:
                continue
            out.append((st.st_mtime, -(-st.st_size // _BLOCK) * _BLOCK, p))
    out.sort()
    return out


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        error_log.crit(f'unlink() "{path}" failed {error_log.os_error(err)}')


def free_space(path: str) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 1 << 62
    return st.f_bavail * st.f_frsize


class CacheManager:
    """The manager of a worker: passes over the zones whose lock it holds, on the loop's timer."""

    def __init__(self, cache_paths, loop) -> None:
        self.zones = [ZoneManager(cp) for cp in cache_paths]
        self.loop = loop
        self.timer = None

    def start(self) -> "CacheManager":
        if self.zones:
            self.timer = self.loop.call_soon(self.tick)
        return self

    def tick(self) -> None:
        self.timer = None
        wait = _EMPTY_WAIT
        for z in self.zones:
            if z.locked():
                try:
                    wait = min(wait, z.run())
                except Exception as exc:  # noqa: BLE001 - the manager must not stop the worker
                    error_log.alert(f"cache manager: {type(exc).__name__}: {exc}")
        self.timer = self.loop.call_later(max(wait, 0.001), self.tick)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for z in self.zones:
            z.release()


def start(config, loop) -> CacheManager:
    return CacheManager(getattr(config, "cache_paths", ()), loop).start()
