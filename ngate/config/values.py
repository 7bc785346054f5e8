"""Directive argument values: sizes, offsets, times, flags and numbers, parsed as nginx parses them.

Each parser returns the value or raises ValueError; the caller words the ConfigError the way
the directive's nginx handler does (`"x" directive invalid value`, `invalid value "v" ...`).
The limits are nginx's on a 64-bit build (src/core/ngx_parse.c, ngx_string.c ngx_atoi): a value
that would overflow `ngx_int_t`/`off_t`/`size_t` (2^63 - 1) is invalid, never wrapped, and only
ASCII digits count.
"""
from __future__ import annotations

NGX_MAX_INT_T_VALUE = 2 ** 63 - 1        # also NGX_MAX_SIZE_T_VALUE (as ssize_t) and _OFF_T_
_DIGITS = frozenset("0123456789")
_SIZE_UNITS = {"k": 1024, "K": 1024, "m": 1024 ** 2, "M": 1024 ** 2}
_OFFSET_UNITS = {**_SIZE_UNITS, "g": 1024 ** 3, "G": 1024 ** 3}

# ngx_parse_time's steps and the scale (in seconds) of each unit
_START, _YEAR, _MONTH, _WEEK, _DAY, _HOUR, _MIN, _SEC, _MSEC, _LAST = range(10)
_UNITS = {"y": (_YEAR, 365 * 86400), "M": (_MONTH, 30 * 86400), "w": (_WEEK, 7 * 86400),
          "d": (_DAY, 86400), "h": (_HOUR, 3600), "m": (_MIN, 60), "s": (_SEC, 1)}


def is_number(text: str) -> bool:
    """ASCII digits only (str.isdigit() also takes `²` and `٣`, which nginx refuses)."""
    return bool(text) and _DIGITS.issuperset(text)


def parse_number(text: str) -> int:
    """ngx_atoi: ASCII digits only, at most 2^63 - 1."""
    if not is_number(text):
        raise ValueError(text)
    value = int(text)
    if value > NGX_MAX_INT_T_VALUE:
        raise ValueError(text)
    return value


def _scaled(text: str, units: dict) -> int:
    scale = units.get(text[-1:], 1)
    digits = text[:-1] if scale != 1 else text
    value = parse_number(digits)
    if value > NGX_MAX_INT_T_VALUE // scale:
        raise ValueError(text)
    return value * scale


def parse_size(text: str) -> int:
    """ngx_parse_size (size_t directives): `512`, `1k`, `10m` -> bytes; no `g`."""
    return _scaled(text, _SIZE_UNITS)


def parse_offset(text: str) -> int:
    """ngx_parse_offset (off_t directives: client_max_body_size ...): also `1g`."""
    return _scaled(text, _OFFSET_UNITS)


def parse_time(text: str, allow_ms: bool = True) -> float | int:
    """ngx_parse_time: `30s`, `1h 30m`, `500ms`, `75` (seconds) -> seconds.

    `allow_ms` True is nginx's msec values (timeouts: no `y` or `M`, at most 2^63 - 1 ms; a
    float of seconds); False its second values (expires, fail_timeout: `y` and `M` allowed,
    no `ms`; an exact int of seconds).
    """
    value = _parse_time(text, is_sec=not allow_ms)
    return value / 1000 if allow_ms else value


def _parse_time(text: str, is_sec: bool) -> int:
    """A port of ngx_parse_time: the result in ms (is_sec False) or s (is_sec True)."""
    cap = NGX_MAX_INT_T_VALUE
    valid, value, total = False, 0, 0
    step = _START if is_sec else _MONTH
    p, end = 0, len(text)
    while p < end:
        ch = text[p]
        p += 1
        if ch in _DIGITS:
            value = value * 10 + ord(ch) - 48
            if value > cap:
                raise ValueError(text)
            valid = True
            continue
        if ch == "m" and p < end and text[p] == "s":
            if is_sec or step >= _MSEC:
                raise ValueError(text)
            p += 1
            step, scale = _MSEC, 1
        elif ch in _UNITS:
            new, scale = _UNITS[ch]
            if step >= new:                 # each unit after a larger one, once
                raise ValueError(text)
            step = new
        elif ch == " ":
            if step >= _SEC:
                raise ValueError(text)
            step, scale = _LAST, 1
        else:
            raise ValueError(text)
        max_ = cap // scale
        if step != _MSEC and not is_sec:
            scale *= 1000
            max_ //= 1000
        if value > max_:
            raise ValueError(text)
        value *= scale
        if total > cap - value:
            raise ValueError(text)
        total += value
        value = 0
        while p < end and text[p] == " ":
            p += 1
    if not valid:
        raise ValueError(text)
    if not is_sec:
        if value > cap // 1000:
            raise ValueError(text)
        value *= 1000
    if total > cap - value:
        raise ValueError(text)
    return total + value


def parse_flag(text: str) -> bool:
    low = text.lower()
    if low == "on":
        return True
    if low == "off":
        return False
    raise ValueError(text)
