"""Directive argument values: sizes, times, flags and numbers, parsed as nginx parses them.

Each parser returns the value or raises ValueError; the caller words the ConfigError the way
the directive's nginx handler does (`"x" directive invalid value`, `invalid value "v" ...`).
"""
from __future__ import annotations

import re

_SIZE_RE = re.compile(r"^(\d+)([kKmMgG]?)$")
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}

# nginx's ngx_parse_time units, largest first (a value must list them in this order)
_TIME_UNITS = (("y", 365 * 86400.0), ("M", 30 * 86400.0), ("w", 7 * 86400.0),
               ("d", 86400.0), ("h", 3600.0), ("ms", 0.001), ("m", 60.0), ("s", 1.0))
_TIME_PART_RE = re.compile(r"(\d+)(ms|[yMwdhms]?)\s*")
_TIME_ORDER = ("y", "M", "w", "d", "h", "m", "s", "ms")


def parse_size(text: str) -> int:
    """`512`, `1k`, `10m`, `1g` -> bytes."""
    m = _SIZE_RE.match(text)
    if m is None:
        raise ValueError(text)
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]


def parse_time(text: str, allow_ms: bool = True) -> float:
    """`30s`, `1h 30m`, `500ms`, `75` (seconds) -> seconds.

    `allow_ms` is False for nginx's second-resolution values (fail_timeout, ...).
    """
    pos, total, last = 0, 0.0, -1
    text = text.strip()
    if not text:
        raise ValueError(text)
    while pos < len(text):
        m = _TIME_PART_RE.match(text, pos)
        if m is None:
            raise ValueError(text)
        unit = m.group(2) or "s"
        if unit == "ms" and not allow_ms:
            raise ValueError(text)
        rank = _TIME_ORDER.index(unit)
        if rank <= last or (not m.group(2) and m.end() != len(text)):
            raise ValueError(text)
        last = rank
        total += int(m.group(1)) * dict(_TIME_UNITS)[unit]
        pos = m.end()
    return total


def parse_flag(text: str) -> bool:
    low = text.lower()
    if low == "on":
        return True
    if low == "off":
        return False
    raise ValueError(text)


def parse_number(text: str) -> int:
    if not text.isdigit():
        raise ValueError(text)
    return int(text)
