"""`open_file_cache`: a worker's table of open file descriptors, as ngx_open_file_cache.c keeps
it for the static module (ngx_open_cached_file, ngx_open_and_stat_file, ngx_close_cached_file,
ngx_expire_old_cached_files).

One OpenFileCache per `open_file_cache max=N [inactive=T]` directive (locations that inherit it
share it, as nginx's merged pointer); its entries live in the worker that made them (a worker
of a new configuration starts with empty tables; an old one's descriptors go with it).

An entry (ngx_cached_open_file_t), keyed by the file's path:
  fd        the open descriptor, or None: a directory, an error, or a file not used
            `open_file_cache_min_uses` times yet (its descriptor closed after the request)
  err       the errno of a failed open kept under `open_file_cache_errors on`, else 0
  st        the stat result the responses use (Last-Modified, ETag, size, type)
  uses      lookups since the entry was made
  created   when it was last (re)validated: within `open_file_cache_valid` seconds of it the
            entry answers with no system call at all; after that a lookup revalidates:
            stat(path) keeps the descriptor when the inode is the same (size and mtime are
            taken from the new stat), else the file is opened and fstat'ed anew
  accessed  its last lookup: an entry not looked up for `inactive` seconds is expired (one or
            two at the end of each lookup that found a file, the least recently used one by
            force when the table holds `max` entries)

So, as in nginx, a file changed or removed within `open_file_cache_valid` of its last
validation is still answered from the kept descriptor and stat result. Time is whole seconds
(ngx_time()). Differences from nginx: the table is consulted by the static module's file open
(not by index, try_files, autoindex or gzip_static, which look at the file system on every
request), and a location with `disable_symlinks` opens without it (its checks run per open).
A descriptor handed to a response that outlives the lookup is a dup() of the kept one (nginx
counts the users of a kept descriptor instead), so expiring an entry can close its descriptor
at once.
"""
from __future__ import annotations

import os
import stat
import time
from collections import OrderedDict

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class Cached:
    """One entry (ngx_cached_open_file_t)."""
    __slots__ = ("fd", "err", "st", "uses", "created", "accessed")

    def __init__(self) -> None:
        self.fd = None
        self.err = 0
        self.st = None
        self.uses = 1
        self.created = 0
        self.accessed = 0


class OpenFileCache:
    """The table of one `open_file_cache` directive (ngx_open_file_cache_t)."""
    __slots__ = ("max", "inactive", "files", "check_at")

    def __init__(self, max_entries: int, inactive: int) -> None:
        self.max = max_entries
        self.inactive = inactive
        self.files: OrderedDict = OrderedDict()     # path -> Cached, least recently used first
        # no entry can be inactive before this second: the least recently used one's last
        # lookup + inactive + 1 (lookups only move entries to the end with a later time)
        self.check_at = 0

    def __repr__(self) -> str:
        return f"OpenFileCache(max={self.max}, inactive={self.inactive})"

    def open(self, path: str, valid: int, min_uses: int, errors: bool):
        """ngx_open_cached_file and its cleanup: (fd, st, kept) for `path`, or OSError (a
        cached one under `errors`; its `failed` names the call, as nginx's of->failed).
        `kept`: fd is the cache's own (read it in place, never close it; dup() it for a
        response that outlives the call); else the caller owns fd (None for a directory)."""
        now = int(time.monotonic())
        files = self.files
        file = files.get(path)
        if file is None:
            fd, st, err = _open_and_stat(path, errors)
            if len(files) >= self.max:
                self.expire(now, force=True)
            file = files[path] = Cached()
            return self._update(path, file, fd, st, err, now, min_uses)
        file.uses += 1
        files.move_to_end(path)
        if file.fd is None and file.err == 0 and not stat.S_ISDIR(file.st.st_mode):
            # a file not used often enough to keep open
            try:
                fd, st, err = _open_and_stat(path, errors)
            except OSError:
                self._drop(path, file)
                raise
            return self._update(path, file, fd, st, err, now, min_uses)
        if now - file.created < valid:
            file.accessed = now
            if file.err:
                raise _error(file.err, path, "open()")
            if file.fd is None:                 # a directory
                return None, file.st, False
            return self._handed(file, now, min_uses)
        return self._revalidate(path, file, now, min_uses, errors)

    def _revalidate(self, path: str, file: Cached, now: int, min_uses: int, errors: bool):
        """The entry is older than open_file_cache_valid: stat(path) first when a descriptor
        or a directory is kept (ngx_open_and_stat_file with of->fd / of->test_dir)."""
        fd = st = None
        err = 0
        failed = "open()"
        old_fd = file.fd
        was_dir = not file.err and stat.S_ISDIR(file.st.st_mode)
        if old_fd is not None or was_dir:
            try:
                st = os.stat(path)
            except OSError as exc:
                exc.failed = "stat()"
                if not errors or not exc.errno:
                    self._drop(path, file)
                    raise
                err, failed = exc.errno, "stat()"
            else:
                if old_fd is not None and st.st_ino == file.st.st_ino \
                        or was_dir and stat.S_ISDIR(st.st_mode):
                    file.st = st                # the same file (or still a directory)
                    file.created = file.accessed = now
                    if old_fd is None:
                        return None, st, False
                    return self._handed(file, now, min_uses)
                st = None
        if not err:
            try:
                fd, st, err = _open_and_stat(path, errors)
            except OSError:
                self._drop(path, file)
                raise
        if old_fd is not None:                  # changed, removed, or became a directory
            os.close(old_fd)
            file.fd = None
        return self._update(path, file, fd, st, err, now, min_uses, failed)

    def _update(self, path, file, fd, st, err, now, min_uses, failed="open()"):
        """ngx_open_cached_file's `update:` and `found:`, then the request's cleanup."""
        file.fd = fd
        file.err = err
        if not err:
            file.st = st
        file.created = file.accessed = now
        if err:
            raise _error(err, path, failed)
        if fd is None:                          # a directory
            return None, st, False
        return self._handed(file, now, min_uses)

    def _handed(self, file: Cached, now: int, min_uses: int):
        """ngx_open_file_cleanup at once: an entry used fewer than min_uses times gives its
        descriptor away (the caller closes it); then one or two inactive entries expire.
        (static/handler.py plain_cached writes out the case of a kept descriptor.)"""
        if now >= self.check_at:
            self.expire(now, force=False)
        fd = file.fd
        if file.uses < min_uses:
            file.fd = None
            return fd, file.st, False
        return fd, file.st, True

    def _drop(self, path: str, file: Cached) -> None:
        """`failed:` - the entry goes, its descriptor closed."""
        self.files.pop(path, None)
        if file.fd is not None:
            os.close(file.fd)
            file.fd = None

    def expire(self, now: int, force: bool) -> None:
        """ngx_expire_old_cached_files: force (the table is full) drops the least recently
        used entry whatever its age; then up to two entries inactive longer than `inactive`."""
        files = self.files
        n = 0 if force else 1
        while n < 3 and files:
            path = next(iter(files))
            file = files[path]
            if n != 0 and now - file.accessed <= self.inactive:
                break
            n += 1
            del files[path]
            if file.fd is not None:
                os.close(file.fd)
                file.fd = None
        oldest = next(iter(files.values()), None)
        self.check_at = (oldest.accessed if oldest is not None else now) + self.inactive + 1

    def close_all(self) -> None:
        while self.files:
            _, file = self.files.popitem()
            if file.fd is not None:
                os.close(file.fd)
                file.fd = None


def _open_and_stat(path: str, errors: bool):
    """ngx_open_and_stat_file: (fd, st, 0) for a file, (None, st, 0) for a directory (its
    descriptor closed), (None, None, errno) for a failed open under open_file_cache_errors;
    any other failure raises."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if errors and exc.errno:
            return None, None, exc.errno
        raise
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        return None, st, 0
    return fd, st, 0


def _error(err: int, path: str, failed: str) -> OSError:
    exc = OSError(err, os.strerror(err), path)
    exc.failed = failed
    return exc
