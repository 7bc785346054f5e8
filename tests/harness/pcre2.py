"""Real PCRE2 matching (libpcre2-8 via ctypes) for tests: what nginx's regex engine answers."""
from __future__ import annotations

import ctypes

_lib = ctypes.CDLL("libpcre2-8.so.0")
_lib.pcre2_compile_8.restype = ctypes.c_void_p
_lib.pcre2_compile_8.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32,
                                 ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_size_t),
                                 ctypes.c_void_p)
_lib.pcre2_match_data_create_from_pattern_8.restype = ctypes.c_void_p
_lib.pcre2_match_data_create_from_pattern_8.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
_lib.pcre2_match_8.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t,
                               ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p)
_lib.pcre2_get_ovector_pointer_8.restype = ctypes.POINTER(ctypes.c_size_t)
_lib.pcre2_get_ovector_pointer_8.argtypes = (ctypes.c_void_p,)
_lib.pcre2_match_data_free_8.argtypes = (ctypes.c_void_p,)
_lib.pcre2_code_free_8.argtypes = (ctypes.c_void_p,)
_UNSET = ctypes.c_size_t(-1).value


def pcre_search(pattern: bytes, subject: bytes, caseless: bool = False):
    """None, or the match's captures as byte strings (None for an unset group), like nginx's."""
    err, off = ctypes.c_int(), ctypes.c_size_t()
    code = _lib.pcre2_compile_8(pattern, len(pattern), 0x8 if caseless else 0,
                                ctypes.byref(err), ctypes.byref(off), None)
    assert code, f"PCRE refuses {pattern!r}"
    md = _lib.pcre2_match_data_create_from_pattern_8(code, None)
    try:
        rc = _lib.pcre2_match_8(code, subject, len(subject), 0, 0, md, None)
        if rc < 0:
            return None
        ov = _lib.pcre2_get_ovector_pointer_8(md)
        return tuple(None if ov[2 * k] == _UNSET else subject[ov[2 * k]:ov[2 * k + 1]]
                     for k in range(rc))
    finally:
        _lib.pcre2_match_data_free_8(md)
        _lib.pcre2_code_free_8(code)
