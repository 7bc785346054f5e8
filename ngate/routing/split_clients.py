"""split_clients (ngx_http_split_clients_module): A/B buckets by MurmurHash2 of a value.

    split_clients "${remote_addr}AAA" $variant { 0.5% .one; 2.0% .two; * ""; }

Each percentage (two decimals at most) becomes an upper bound of the 32-bit hash, summed in
order as nginx does (`last += percent * 0xffffffff / 10000`); `*` takes the rest. The first
part whose bound is above the hash gives the value; none: "".
"""
from __future__ import annotations

from ngate.errors import ConfigError

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur_hash2(data: bytes) -> int:
    """ngx_murmur_hash2 (seed 0, little-endian words)."""
    n = len(data)
    h = n & _MASK
    i = 0
    while n >= 4:
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
        i += 4
        n -= 4
    if n == 3:
        h ^= data[i + 2] << 16
    if n >= 2:
        h ^= data[i + 1] << 8
    if n >= 1:
        h ^= data[i]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


class SplitClients:
    __slots__ = ("source", "parts", "volatile")

    def __init__(self, source, parts) -> None:
        self.source = source        # Template
        self.parts = parts          # ((bound or 0 for "*", value), ...)
        self.volatile = False

    def evaluate(self, ctx) -> str:
        h = murmur_hash2(self.source.render(ctx).encode("latin-1", "replace"))
        for bound, value in self.parts:
            if h < bound or bound == 0:
                return value
        return ""


def atofp(text: str, point: int) -> int | None:
    """ngx_atofp: a fixed-point number with at most `point` decimals, scaled; None if invalid."""
    value = 0
    dot = False
    for ch in text:
        if ch == ".":
            if dot:
                return None
            dot = True
            continue
        if not "0" <= ch <= "9" or point == 0:
            return None
        value = value * 10 + ord(ch) - 48
        if dot:
            point -= 1
    return value * 10 ** point


def build(source, entries) -> SplitClients:
    """entries: (percent text, value, where) in order."""
    parts = []
    total = last = 0
    for key, value, where in entries:
        if key == "*":
            percent = 0
        else:
            percent = atofp(key[:-1], 2) if key.endswith("%") else None
            if not percent:
                raise ConfigError(f'invalid percent value "{key}"', where)
        parts.append((percent, value, where))
    out = []
    for percent, value, where in parts:
        total = total + percent if percent else 10000
        if total > 10000:
            raise ConfigError("percent total is greater than 100%", where)
        if percent:
            last += percent * 0xFFFFFFFF // 10000
            out.append((last & _MASK, value))
        else:
            out.append((0, value))
    return SplitClients(source, tuple(out))
