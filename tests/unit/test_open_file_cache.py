"""static/open_cache.py's table: what it keeps open, for how long, and what it closes (time is
the module's clock, set by the test); the responses: tests/differential/test_open_file_cache.py."""
import errno
import os

import pytest

from ngate.static import open_cache
from ngate.static.open_cache import OpenFileCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(open_cache.time, "monotonic", c)
    return c


def _files(tmp_path, *names):
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    return [str(tmp_path / n) for n in names]


def _is_open(fd) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_kept_within_valid_then_revalidated(tmp_path, clock):
    (a,) = _files(tmp_path, "a")
    cache = OpenFileCache(4, 60)
    fd, st, kept = cache.open(a, 30, 1, False)
    assert kept and os.pread(fd, 10, 0) == b"a"
    os.unlink(a)
    clock.now += 29
    assert cache.open(a, 30, 1, False)[0] == fd        # valid: no system call
    clock.now += 1
    with pytest.raises(OSError) as e:                   # revalidated: stat() by name
        cache.open(a, 30, 1, False)
    assert e.value.errno == errno.ENOENT and e.value.failed == "stat()"
    assert not _is_open(fd) and a not in cache.files


def test_same_inode_keeps_the_descriptor_with_the_new_stat(tmp_path, clock):
    (a,) = _files(tmp_path, "a")
    cache = OpenFileCache(4, 60)
    fd, st, _ = cache.open(a, 0, 1, False)
    with open(a, "ab") as f:
        f.write(b"more")
    fd2, st2, kept = cache.open(a, 0, 1, False)
    assert fd2 == fd and kept and st2.st_size == 5 and st.st_size == 1


def test_min_uses_hands_the_descriptor_over_until_used_enough(tmp_path, clock):
    (a,) = _files(tmp_path, "a")
    cache = OpenFileCache(4, 60)
    fd, _, kept = cache.open(a, 60, 2, False)
    assert not kept and cache.files[a].fd is None       # the caller closes it
    os.close(fd)
    fd, _, kept = cache.open(a, 60, 2, False)
    assert kept and cache.files[a].fd == fd


def test_errors_cached_only_under_open_file_cache_errors(tmp_path, clock):
    missing = str(tmp_path / "missing")
    cache = OpenFileCache(4, 60)
    with pytest.raises(OSError):
        cache.open(missing, 60, 1, False)
    assert missing not in cache.files
    with pytest.raises(OSError):
        cache.open(missing, 60, 1, True)
    assert cache.files[missing].err == errno.ENOENT
    _files(tmp_path, "missing")
    with pytest.raises(OSError) as e:                   # remembered while valid
        cache.open(missing, 60, 1, True)
    assert e.value.failed == "open()"
    clock.now += 60
    assert cache.open(missing, 60, 1, True)[2]          # revalidated: opened


def test_inactive_entries_expire_and_a_full_table_drops_the_oldest(tmp_path, clock):
    a, b, c = _files(tmp_path, "a", "b", "c")
    cache = OpenFileCache(2, 10)
    fa = cache.open(a, 60, 1, False)[0]
    clock.now += 5
    fb = cache.open(b, 60, 1, False)[0]
    fc = cache.open(c, 60, 1, False)[0]                # full: a (least recently used) goes
    assert list(cache.files) == [b, c] and not _is_open(fa)
    clock.now += 11
    cache.open(c, 60, 1, False)                         # b is inactive for 11 > 10 s
    assert list(cache.files) == [c] and not _is_open(fb) and _is_open(fc)
    cache.close_all()
    assert not _is_open(fc) and not cache.files


def test_directory_kept_without_a_descriptor(tmp_path, clock):
    d = tmp_path / "d"
    d.mkdir()
    cache = OpenFileCache(4, 60)
    assert cache.open(str(d), 0, 1, False)[0] is None
    d.rmdir()
    d.write_bytes(b"file")                              # a directory became a file
    fd, st, kept = cache.open(str(d), 0, 1, False)
    assert kept and os.pread(fd, 10, 0) == b"file"
    cache.close_all()
