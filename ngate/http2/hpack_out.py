"""The HPACK encoder of responses: stateless. nginx's ngx_http_v2_header_filter never refers
to the dynamic table either (it sends a few fields "with incremental indexing" and never uses
the entries); here every literal is "without indexing", so the client's table stays empty.

Every field is a static-table index when the static table holds it whole (`:status 200`),
else a literal *without indexing* (RFC 7541 6.2.2) with the static table's index of its name
when there is one; strings Huffman-coded when that is shorter. The dynamic table is never
used, so a field always encodes to the same bytes: they are cached per (name, value) (the
response heads of a server repeat: server, date within a second, content-type, status), in a
bounded dict emptied when full. The connection's framing (framing.py) calls `encode`.
"""
from __future__ import annotations

from ngate.http2.huffman import STATIC_TABLE
from ngate.http2.huffman import encode as _huffman

_FULL: dict = {}        # (name, value) -> static index
_NAME: dict = {}        # name -> lowest static index
for _i, (_n, _v) in enumerate(STATIC_TABLE, 1):
    _FULL.setdefault((_n, _v), _i)
    _NAME.setdefault(_n, _i)
_CACHE_MAX = 4096


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 5.1 with `first`'s high bits (the representation's pattern) on the first byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(s: bytes) -> bytes:
    h = _huffman(s)
    if len(h) < len(s):
        return _integer(len(h), 7, 0x80) + h
    return _integer(len(s), 7, 0) + s


def encode_field(name: bytes, value: bytes) -> bytes:
    i = _FULL.get((name, value))
    if i is not None:
        return _integer(i, 7, 0x80)             # indexed field
    i = _NAME.get(name)
    if i is not None:                           # literal without indexing, indexed name
        return _integer(i, 4, 0) + _string(value)
    return b"\x00" + _string(name) + _string(value)     # literal without indexing, new name


class StatelessEncoder:
    """The client's SETTINGS_HEADER_TABLE_SIZE does not matter: nothing is ever inserted, so
    one encoder (and its cache) serves every connection."""
    __slots__ = ()
    _cache: dict = {}

    def encode(self, headers) -> bytes:
        cache = self._cache
        out = []
        for field in headers:
            b = cache.get(field)
            if b is None:
                name, value = field[0], field[1]
                if isinstance(name, str):
                    name = name.encode("utf-8")
                if isinstance(value, str):
                    value = value.encode("utf-8")
                b = encode_field(name, value)
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                cache[field] = b
            out.append(b)
        return b"".join(out)
