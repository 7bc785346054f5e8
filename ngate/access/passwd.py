"""Password hashes of auth_basic_user_file, as nginx's ngx_crypt() checks them.

`crypt(password, stored) -> bytes | None` returns what nginx computes from the client's password
with the stored value as the salt; the caller compares it with the stored value (in constant
time). The formats, in nginx's order of tests:

  $apr1$   Apache's MD5 (Poul-Henning Kamp's md5crypt with the $apr1$ magic), done here
  {PLAIN}  the password itself
  {SSHA}   base64(SHA1(password salt) salt)
  {SHA}    base64(SHA1(password))
  anything else goes to the system's crypt_r(3) (libxcrypt on Debian: DES, $1$, $5$, $6$,
           $2a$/$2b$/$2y$ bcrypt, $y$ yescrypt, $gy$, $7$ ...). libxcrypt answers an unknown
           or broken salt with a failure token ("*0"), which never matches; None (crypt_r
           failed, or no libcrypt) makes nginx answer 500.

Passwords are C strings to nginx: the client's password ends at its first NUL byte.
"""
from __future__ import annotations

import base64
import binascii
import ctypes
import ctypes.util
import hashlib

_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# libxcrypt's struct crypt_data is 32768 bytes (CRYPT_DATA_RESERVED_SIZE and friends); glibc's
# older one is smaller. crypt_r only needs `initialized` (at offset 0 in both) to be zero.
_CRYPT_DATA_SIZE = 32768


def crypt(password: bytes, stored: bytes) -> bytes | None:
    key = password.split(b"\0", 1)[0]
    if stored.startswith(b"$apr1$"):
        return apr1(key, stored)
    if stored.startswith(b"{PLAIN}"):
        return b"{PLAIN}" + key
    if stored.startswith(b"{SSHA}"):
        return ssha(key, stored)
    if stored.startswith(b"{SHA}"):
        return b"{SHA}" + base64.b64encode(hashlib.sha1(key).digest())
    return libc_crypt(key, stored)


# ---------------------------------------------------------------- {SSHA}

def ssha(key: bytes, stored: bytes) -> bytes:
    """nginx's ngx_crypt_ssha: the salt is what follows the first 20 decoded bytes; a value that
    does not decode (or is shorter than a digest) has no salt."""
    decoded = decode_base64(stored[6:])
    salt = decoded[20:] if decoded is not None and len(decoded) >= 20 else b""
    digest = hashlib.sha1(key + salt).digest()
    return b"{SSHA}" + base64.b64encode(digest + salt)


def decode_base64(data: bytes) -> bytes | None:
    """nginx's ngx_decode_base64: the standard alphabet up to the first "=", any length but
    4n+1, trailing bits ignored; None where nginx fails."""
    end = data.find(b"=")
    if end >= 0:
        data = data[:end]
    if len(data) % 4 == 1 or not _B64_CHARS.issuperset(data):
        return None
    try:
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except binascii.Error:
        return None


_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


# ---------------------------------------------------------------- $apr1$

def apr1(key: bytes, stored: bytes) -> bytes:
    """Apache's apr1: md5crypt with the "$apr1$" magic (nginx's ngx_crypt_apr1); the salt is at
    most 8 characters and stops at the first "$"."""
    salt = stored[6:14].split(b"$", 1)[0].split(b"\0", 1)[0]
    md5 = hashlib.md5
    final = md5(key + salt + key).digest()
    ctx = md5(key + b"$apr1$" + salt)
    n = len(key)
    while n > 0:
        ctx.update(final[:min(n, 16)])
        n -= 16
    i = len(key)
    first = key[:1]
    while i:
        ctx.update(b"\0" if i & 1 else first)
        i >>= 1
    final = ctx.digest()
    # the 1000 rounds: the eight input shapes precomputed (i odd/even, i%3, i%7)
    ks, kk, sk = key + salt, key + key, salt + key
    for i in range(1000):
        if i & 1:
            if i % 3:
                head = ks + key if i % 7 else ks
            else:
                head = kk if i % 7 else key
            final = md5(head + final).digest()
        else:
            if i % 3:
                tail = sk + key if i % 7 else sk
            else:
                tail = kk if i % 7 else key
            final = md5(final + tail).digest()
    return b"$apr1$" + salt + b"$" + _to64_md5(final)


def _to64_md5(f: bytes) -> bytes:
    out = bytearray()
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        _to64(out, (f[a] << 16) | (f[b] << 8) | f[c], 4)
    _to64(out, f[11], 2)
    return bytes(out)


def _to64(out: bytearray, v: int, n: int) -> None:
    for _ in range(n):
        out.append(_ITOA64[v & 0x3f])
        v >>= 6


# ---------------------------------------------------------------- crypt_r(3)

class _LibCrypt:
    """crypt_r from the system's libcrypt, loaded on first use (ctypes releases the GIL during
    the call; the per-call crypt_data keeps it reentrant)."""
    fn = None
    loaded = False

    @classmethod
    def get(cls):
        if not cls.loaded:
            cls.loaded = True
            name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
            try:
                fn = ctypes.CDLL(name).crypt_r
            except (OSError, AttributeError):
                return None
            fn.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
            fn.restype = ctypes.c_char_p
            cls.fn = fn
        return cls.fn


def libc_crypt(key: bytes, salt: bytes) -> bytes | None:
    fn = _LibCrypt.get()
    if fn is None:
        return None
    data = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    return fn(key, salt.split(b"\0", 1)[0], data)
