"""libpcre2-8 through ctypes, at config time only: nginx's own verdict on a pattern.

nginx compiles every regex with pcre2_compile() (no UTF mode) and, when that fails, says
`pcre2_compile() failed: <PCRE's message> in "<pattern>" at "<rest>"`. ngate asks the same library
(Debian's libpcre2-8, which nginx and grep use) so a pattern nginx refuses is refused with the same
words, and one nginx accepts is never refused for PCRE reasons. Matching itself runs on Python's
engines (ngate/config/regex.py): this module is never on the request path. Without the library,
check() returns None and ngate falls back to its own translation errors.
"""
from __future__ import annotations

import ctypes
import ctypes.util

PCRE2_CASELESS = 0x00000008

_lib = None
_loaded = False


def _load():
    global _lib, _loaded
    if _loaded:
        return _lib
    _loaded = True
    for name in ("libpcre2-8.so.0", ctypes.util.find_library("pcre2-8")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcre2_compile_8.restype = ctypes.c_void_p
        lib.pcre2_compile_8.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32,
                                        ctypes.POINTER(ctypes.c_int),
                                        ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p)
        lib.pcre2_code_free_8.argtypes = (ctypes.c_void_p,)
        lib.pcre2_get_error_message_8.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
        _lib = lib
        break
    return _lib


def available() -> bool:
    return _load() is not None


def check(pattern: bytes, caseless: bool = False) -> str | None:
    """nginx's error text for a pattern pcre2_compile() refuses; "" when it compiles; None when
    libpcre2-8 is not there to ask."""
    lib = _load()
    if lib is None:
        return None
    err = ctypes.c_int(0)
    off = ctypes.c_size_t(0)
    code = lib.pcre2_compile_8(pattern, len(pattern), PCRE2_CASELESS if caseless else 0,
                               ctypes.byref(err), ctypes.byref(off), None)
    if code:
        lib.pcre2_code_free_8(code)
        return ""
    buf = ctypes.create_string_buffer(256)
    lib.pcre2_get_error_message_8(err.value, buf, len(buf))
    msg = buf.value.decode("latin-1")
    text = pattern.decode("utf-8", "replace")
    if off.value >= len(pattern):
        return f'pcre2_compile() failed: {msg} in "{text}"'
    rest = pattern[off.value:].decode("utf-8", "replace")
    return f'pcre2_compile() failed: {msg} in "{text}" at "{rest}"'
