"""What a file's entry (filemeta.py) depends on in a descriptor's fstat, without os.fstat's
stat_result.

os.fstat builds a 20-field stat_result per call, with each of its three times as a float and
an int of nanoseconds (a bignum multiplication each): two thirds of its cost, and the object's
free on top (~5.6k instructions per request of a 1 KiB file, the largest single part of
plain_file). An entry is valid while (inode, size, mtime) are the ones it was made from
(filemeta.py says why those are enough), so plain_file and static_handler ask libc's fstat for
the struct stat into one buffer and unpack those four fields alone:

    if fstat(fd, BUF) or key(BUF) != meta.stkey:     # nonzero: fstat failed (BUF not written)
        ... os.fstat(fd) and the general way, as before

`fstat` is a ctypes.PyDLL function without argtypes: it holds the GIL through the call (an
fstat does not block; a CDLL function would release and take it again); `key` is a struct unpacker of st_ino, st_size, st_mtim.tv_sec
and st_mtim.tv_nsec at their offsets in Linux's struct stat on 64-bit ABIs (x86_64 and the
generic layout of aarch64 and others agree on 8, 48, 88, 96). The layout is checked at import
against os.fstat of a file (its size and a nanosecond mtime set) and a directory; on any other
platform, or any mismatch, `fstat` is a Python function that packs os.fstat's fields into the
buffer (the same answers, at os.fstat's cost). One buffer per process: the request path runs
on the event loop's thread alone.

`ARG` is what `fstat` is given for BUF: ctypes.byref(BUF) (the call then passes the pointer as
it is; BUF itself is converted into a new pointer object per call). `BUF.raw` is the buffer as
one bytes object: equal raws mean equal keys, as the key's fields are in it (plain_file compares
it first, ~1.4k instructions less than unpacking the key and comparing the tuple; the raw also
holds st_atime, st_ctime, mode, owner and links, so a change of those only costs the key's test
once, after which the entry holds the new raw).
"""
from __future__ import annotations

import os
import struct
import tempfile

_KEY = struct.Struct("=8xQ32xq32xqq")       # st_ino @8, st_size @48, st_mtim @88 (sec, nsec)
BUF_SIZE = 256                              # struct stat is 144 bytes on these ABIs

key = _KEY.unpack_from


def key_of(st) -> tuple:
    """An os.stat_result's key, in `key`'s form: (inode, size, mtime s, mtime ns part)."""
    sec, nsec = divmod(st.st_mtime_ns, 1_000_000_000)
    return (st.st_ino, st.st_size, sec, nsec)


def _fstat_packed(fd: int, buf) -> int:
    """The portable `fstat`: os.fstat's fields packed where `key` reads them; 0, or raises."""
    _KEY.pack_into(buf, 0, *key_of(os.fstat(fd)))
    return 0


def _libc_fstat():
    """libc's fstat as a PyDLL function, or None when it is missing or its struct stat does not
    hold the four fields where `key` reads them (checked on a file and a directory)."""
    try:
        import ctypes
        fstat = ctypes.PyDLL(None).fstat
    except (ImportError, OSError, AttributeError):
        return None
    fstat.restype = ctypes.c_int
    buf = ctypes.create_string_buffer(BUF_SIZE)

    def agrees(*names: str) -> bool:
        for name in names:
            fd = os.open(name, os.O_RDONLY)
            try:
                if fstat(fd, buf) != 0 or key(buf) != key_of(os.fstat(fd)):
                    return False
            finally:
                os.close(fd)
        return True
    try:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "f")
                with open(path, "wb") as f:
                    f.write(b"x" * 1234)
                os.utime(path, ns=(1, 1_234_567_890_123_456_789))
                if not agrees(path, tmp):
                    return None
        except OSError:             # no writable temporary directory: this module's own file
            if not agrees(__file__, os.path.dirname(__file__)):
                return None
    except (OSError, ValueError, TypeError, ctypes.ArgumentError):
        return None
    return fstat


class _Buffer(bytearray):
    """The portable `fstat`'s buffer, with a ctypes buffer's `raw`."""
    __slots__ = ()

    @property
    def raw(self) -> bytes:
        return bytes(self)


def _pick():
    fstat = _libc_fstat() if os.name == "posix" and struct.calcsize("P") == 8 else None
    if fstat is None:
        buf = _Buffer(BUF_SIZE)
        return _fstat_packed, buf, buf
    import ctypes
    buf = ctypes.create_string_buffer(BUF_SIZE)
    return fstat, buf, ctypes.byref(buf)


fstat, BUF, ARG = _pick()
