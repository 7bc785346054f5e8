"""plain_file's test of an opened file (ngate/static/statkey.py): libc's fstat into a buffer and
(inode, size, mtime s, mtime ns) unpacked from it must be os.fstat's fields, for any file an
entry can be made from; the portable fallback must give the same; a failed fstat must take
plain_file back to os.fstat."""
from __future__ import annotations

import os
import platform
import sys

import pytest

from ngate.static import filemeta, handler, statkey
from tests.unit.test_static_filemeta import Server


def _key(fd: int) -> tuple:
    assert statkey.fstat(fd, statkey.BUF) == 0
    return statkey.key(statkey.BUF)


def test_libc_fstat_is_used_on_linux_64_bit():
    if not (sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64")):
        pytest.skip("the layout is checked on 64-bit Linux only")
    assert statkey.fstat is not statkey._fstat_packed


@pytest.mark.parametrize("mtime_ns", [0, 1, 999_999_999, 1_000_000_000, 1_765_000_000_123_456_789,
                                      -1, -1_500_000_001, 2**62])
@pytest.mark.parametrize("size", [0, 1, 1024, 5 * 2**30])
def test_key_is_os_fstats(tmp_path, mtime_ns, size):
    path = tmp_path / "f"
    with open(path, "wb") as f:
        f.truncate(size)            # sparse: a size over 4 GiB costs no disk
    try:
        os.utime(path, ns=(0, mtime_ns))
    except (OSError, OverflowError):
        pytest.skip("the filesystem does not keep this time")
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        want = statkey.key_of(st)
        assert want[0] == st.st_ino and want[1] == size
        assert want[2] * 1_000_000_000 + want[3] == st.st_mtime_ns and 0 <= want[3] < 10**9
        assert _key(fd) == want
        buf = bytearray(statkey.BUF_SIZE)
        assert statkey._fstat_packed(fd, buf) == 0 and statkey.key(buf) == want
    finally:
        os.close(fd)


def test_key_of_a_directory_and_a_replaced_file(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert _key(fd) == statkey.key_of(os.fstat(fd))
    finally:
        os.close(fd)
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "b").write_bytes(b"2")
    os.utime(tmp_path / "a", ns=(0, 10**18))
    os.utime(tmp_path / "b", ns=(0, 10**18))
    fa = os.open(tmp_path / "a", os.O_RDONLY)
    fb = os.open(tmp_path / "b", os.O_RDONLY)
    try:
        assert _key(fa) != _key(fb)     # same size and mtime: the inode tells them apart
    finally:
        os.close(fa)
        os.close(fb)


# plain_file, and static_handler (a location with add_header, or disable_symlinks)
LOCATIONS = ["", "add_header X-A b$is_args;", "disable_symlinks on;"]


@pytest.mark.parametrize("extra", LOCATIONS)
def test_a_failed_fstat_takes_the_handler_to_os_fstat(tmp_path, monkeypatch, extra):
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"first\n")
    server = Server(tmp_path, root, extra)
    try:
        assert server.get("/a.txt")[2] == b"first\n"
        monkeypatch.setattr(handler, "_fstat", lambda fd, buf: -1)   # BUF left as it was
        (root / "a.txt").write_bytes(b"second!\n")
        status, h, body = server.get("/a.txt")
        assert body == b"second!\n" and h[b"Content-Length"] == b"8"
    finally:
        server.close()


@pytest.mark.parametrize("extra", LOCATIONS)
def test_a_nanosecond_change_makes_a_new_entry(tmp_path, extra):
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"first\n")
    os.utime(root / "a.txt", ns=(0, 1_000_000_000_000_000_000))
    server = Server(tmp_path, root, extra)
    table = handler._PLAIN if not extra else filemeta._FILES
    name = "/a.txt" if not extra else str(root / "a.txt")
    try:
        server.get("/a.txt")
        meta = table[name]
        server.get("/a.txt")
        assert table[name] is meta                      # kept while the file is the same
        os.utime(root / "a.txt", ns=(0, 1_000_000_000_000_000_001))
        server.get("/a.txt")
        assert table[name] is not meta
        assert table[name].stkey[3] == 1
    finally:
        server.close()


@pytest.mark.parametrize("extra", LOCATIONS)
def test_same_size_and_mtime_on_a_new_inode_makes_a_new_entry(tmp_path, extra):
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"first\n")
    os.utime(root / "a.txt", ns=(0, 10**18))
    server = Server(tmp_path, root, extra)
    try:
        assert server.get("/a.txt")[2] == b"first\n"
        (root / "b.txt").write_bytes(b"other\n")
        os.utime(root / "b.txt", ns=(0, 10**18))
        os.replace(root / "b.txt", root / "a.txt")
        status, h, body = server.get("/a.txt")
        assert body == b"other\n" and h.get(b"X-A", b"b") == b"b"
    finally:
        server.close()


@pytest.mark.parametrize("mtime_ns", [1, 1_765_000_000_123_456_789, -1_500_000_001])
@pytest.mark.parametrize("size", [0, 1024])
def test_the_raw_buffer_holds_the_key(tmp_path, mtime_ns, size):
    """plain_file's first test is BUF.raw against the entry's last raw: the key must be a
    function of the raw (equal raws, equal keys), for the libc buffer and the portable one."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * size)
    os.utime(path, ns=(0, mtime_ns))
    fd = os.open(path, os.O_RDONLY)
    try:
        want = statkey.key_of(os.fstat(fd))
        assert statkey.fstat(fd, statkey.ARG) == 0
        raw = statkey.BUF.raw
        assert raw.__class__ is bytes and len(raw) == statkey.BUF_SIZE
        assert statkey.key(raw) == want
        buf = statkey._Buffer(statkey.BUF_SIZE)
        assert statkey._fstat_packed(fd, buf) == 0
        assert buf.raw.__class__ is bytes and statkey.key(buf.raw) == want
    finally:
        os.close(fd)


def test_an_atime_or_ctime_change_keeps_the_entry(tmp_path):
    """A change outside the key (atime; a chmod's ctime) makes a new raw: the key's test
    passes, the entry stays and holds the new raw."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"first\n")
    os.utime(root / "a.txt", ns=(0, 10**18))
    server = Server(tmp_path, root)
    try:
        first = server.get("/a.txt")
        meta = handler._PLAIN["/a.txt"]
        raw = meta.raw
        assert raw is not None and statkey.key(raw) == meta.stkey
        os.utime(root / "a.txt", ns=(12345, 10**18))
        os.chmod(root / "a.txt", 0o600)
        second = server.get("/a.txt")
        assert handler._PLAIN["/a.txt"] is meta and meta.raw != raw
        assert statkey.key(meta.raw) == meta.stkey
        assert first[1].pop(b"Date") and second[1].pop(b"Date")
        assert first == second
    finally:
        server.close()


def test_a_raw_is_kept_only_with_its_own_key(tmp_path, monkeypatch):
    """A file that changes between plain_file's fstat and os.fstat's: the new entry (from
    os.fstat) does not take the buffer's raw, so the next request tests the key again."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"first\n")
    (root / "b.txt").write_bytes(b"other\n")
    os.utime(root / "b.txt", ns=(0, 10**18))
    server = Server(tmp_path, root)
    try:
        assert server.get("/a.txt")[2] == b"first\n"
        os.utime(root / "a.txt", ns=(0, 2 * 10**18))        # a change: the entry is made again
        real = os.fstat
        b = os.open(root / "b.txt", os.O_RDONLY)
        monkeypatch.setattr(os, "fstat", lambda fd: real(b))
        server.get("/a.txt")
        monkeypatch.setattr(os, "fstat", real)
        os.close(b)
        meta = handler._PLAIN["/a.txt"]
        assert meta.raw is None and meta.mtime == 10**9     # b's stat; a's raw not taken
        status, h, body = server.get("/a.txt")
        assert body == b"first\n" and handler._PLAIN["/a.txt"].mtime == 2 * 10**9
        assert h[b"Last-Modified"] == filemeta.http_date(2 * 10**9).encode()
        assert handler._PLAIN["/a.txt"].raw is not None
    finally:
        server.close()


class _Conf:
    etag = True
    server_tokens = True
    max_ranges = None
    keepalive_timeout = 75.0
    keepalive_disable = ()


def test_lookup_fstat_answers_as_lookup(tmp_path, monkeypatch):
    """filemeta.lookup_fstat (the raw test first) gives lookup's answer with the buffer's key,
    for a hit, an atime change, a new mtime, another conf, URI or root, an unknown path."""
    monkeypatch.setattr(filemeta, "_FILES", {})
    path = tmp_path / "a.txt"
    path.write_bytes(b"first\n")
    conf, other = _Conf(), _Conf()
    fd = os.open(path, os.O_RDONLY)
    try:
        meta = filemeta.FileMeta(conf, "/a.txt", str(tmp_path), os.fstat(fd), b"text/plain")
        filemeta.store(str(path), meta)

        def both(p=str(path), c=conf, uri="/a.txt", root=str(tmp_path)):
            assert statkey.fstat(fd, statkey.ARG) == 0
            want = filemeta.lookup(p, statkey.key(statkey.BUF), c, uri, root)
            got = filemeta.lookup_fstat(p, c, uri, root)
            assert got is want
            return got
        assert both() is meta and meta.raw == statkey.BUF.raw
        assert both() is meta                                   # the raw's hit
        os.utime(path, ns=(10**9, os.stat(path).st_mtime_ns))   # atime only
        assert both() is meta and meta.raw == statkey.BUF.raw
        assert both(c=other) is None and both(uri="/b.txt") is None
        assert both(root=str(tmp_path) + "/") is None and both(p=str(path) + "x") is None
        os.utime(path, ns=(10**9, 10**18))                      # a new mtime
        raw = meta.raw
        assert both() is None and meta.raw is raw
    finally:
        os.close(fd)
