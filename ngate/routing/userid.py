"""nginx's userid module (ngx_http_userid_filter_module.c, nginx 1.22): the `uid` cookie, and
$uid_got, $uid_set, $uid_reset.

The identifier is four 32-bit words kept as nginx keeps them, 16 bytes in memory order (ngate, as
nginx on x86, is little-endian): the cookie is the base64 of those bytes, $uid_got/$uid_set print
each word as `%08X` of its little-endian value.
  `userid v1`  words in host order: service (0 unless userid_service), time, start value,
               sequence (1, then += 0x100 per identifier);
  `userid on`  words in network order: the service (else the IPv4 address the connection came to,
               the last 4 bytes of an IPv6 one, 0 for a unix socket), time, start value,
               sequence (0x03030302, += 0x100).
The start value is the worker's ((usec / 20) << 16) | pid, taken once per process.

The cookie of a request is read once (the first 22 characters decoded; shorter or invalid ones are
logged and ignored). A cookie is sent (the header filter, main requests only, `on` and `v1`) when
the request has none, when $uid_reset is non-empty and not "0" (a new identifier; "log" also logs
the old one at notice), or when `userid_mark` is set and the cookie's 23rd character is not the
mark (the same identifier, re-marked).
"""
from __future__ import annotations

import base64
import binascii
import os
import re
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from ngate.errors import ConfigError

OFF, LOG, V1, ON = 0, 1, 2, 3
_STATES = {"off": OFF, "log": LOG, "v1": V1, "on": ON}
MAX_EXPIRES = 2145916555            # 31 Dec 2037 23:55:55 GMT
_EXPIRES_MAX = b"; expires=Thu, 31-Dec-37 23:55:55 GMT"
_FLAGS = ("secure", "httponly", "samesite=strict", "samesite=lax", "samesite=none")
_B64 = re.compile(rb"[A-Za-z0-9+/]*")
_STATE_KEY = " userid"              # per-request state in ctx.vars (no variable has this name)
_WEEK = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class UserId:
    """The merged userid settings of a location (LocConf.userid; None when `userid off`)."""
    enable: int
    service: int | None             # None: unset
    name: str
    domain: bytes                   # b"; domain=..." or b""
    path: bytes                     # b"; path=..."
    p3p: bytes
    expires: int                    # seconds; 0: a session cookie
    mark: str                       # "" : off
    flags: bytes                    # b"; secure; httponly ..." in nginx's order
    reset: Any = field(default=None, compare=False, repr=False)    # this config's $uid_reset


# ---------------------------------------------------------------- directives

def _set(lv, st, key: str, value) -> None:
    if key in lv.vals:
        raise ConfigError(f'"{st.directive}" directive is duplicate', st.where)
    lv.vals[key] = value


def userid(c, lv, st) -> None:
    state = _STATES.get(st.args[0])
    if state is None:
        raise ConfigError(f'invalid value "{st.args[0]}"', st.where)
    _set(lv, st, "userid", state)


def userid_service(c, lv, st) -> None:
    from ngate.config.handlers import number
    _set(lv, st, "userid_service", number(c, st))


def userid_name(c, lv, st) -> None:
    _set(lv, st, "userid_name", st.args[0])


def userid_domain(c, lv, st) -> None:
    arg = st.args[0]
    _set(lv, st, "userid_domain", b"" if arg == "none" else b"; domain=" + _bytes(arg))


def userid_path(c, lv, st) -> None:
    _set(lv, st, "userid_path", b"; path=" + _bytes(st.args[0]))


def userid_p3p(c, lv, st) -> None:
    arg = st.args[0]
    _set(lv, st, "userid_p3p", b"" if arg == "none" else _bytes(arg))


def userid_expires(c, lv, st) -> None:
    from ngate.config.values import parse_time
    arg = st.args[0]
    if arg == "max":
        value = MAX_EXPIRES
    elif arg == "off":
        value = 0
    else:
        try:
            value = int(parse_time(arg, allow_ms=False))
        except ValueError:
            raise ConfigError(f'"{st.directive}" directive invalid value', st.where) from None
    _set(lv, st, "userid_expires", value)


def userid_mark(c, lv, st) -> None:
    arg = st.args[0]
    if arg == "off":
        mark = ""
    elif len(arg) == 1 and (arg.isascii() and arg.isalnum() or arg == "="):
        mark = arg
    else:
        raise ConfigError(f'"{st.directive}" directive value must be "off" or a single letter, '
                          'digit or "="', st.where)
    _set(lv, st, "userid_mark", mark)


def userid_flags(c, lv, st) -> None:
    """ngx_conf_set_bitmask_slot: the flags of one directive, `off` adds none."""
    if "userid_flags" in lv.vals:
        raise ConfigError(f'"{st.directive}" directive is duplicate', st.where)
    flags = set()
    for arg in st.args:
        if arg != "off" and arg not in _FLAGS:
            raise ConfigError(f'invalid value "{arg}"', st.where)
        flags.add(arg)
    lv.vals["userid_flags"] = b"".join(b"; " + f.encode() for f in _FLAGS if f in flags)


DIRECTIVES = (("userid", userid), ("userid_service", userid_service),
              ("userid_name", userid_name), ("userid_domain", userid_domain),
              ("userid_path", userid_path), ("userid_expires", userid_expires),
              ("userid_flags", userid_flags), ("userid_p3p", userid_p3p),
              ("userid_mark", userid_mark))


def register(directive, contexts) -> None:
    for name, handler in DIRECTIVES:
        directive(name, contexts, (1, 3) if name == "userid_flags" else 1, handler)


def build(vals: dict, reset=None) -> UserId | None:
    """The merged settings (nginx's merge_conf defaults), None for `userid off` (the default);
    `reset`: the config's $uid_reset getter (routing/variables.py lookup)."""
    enable = vals.get("userid", OFF)
    if enable == OFF:
        return None
    return UserId(enable, vals.get("userid_service"), vals.get("userid_name", "uid"),
                  vals.get("userid_domain", b""), vals.get("userid_path", b"; path=/"),
                  vals.get("userid_p3p", b""), vals.get("userid_expires", 0),
                  vals.get("userid_mark", ""), vals.get("userid_flags", b""), reset)


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# ---------------------------------------------------------------- identifiers

_start_value = None
_sequencer_v1 = 1
_sequencer_v2 = 0x03030302


def _start() -> int:
    """The worker's start value: set on first use, which is after the fork."""
    global _start_value
    if _start_value is None:
        usec = int(time.time() * 1_000_000) % 1_000_000
        _start_value = ((usec // 20) << 16 | os.getpid()) & 0xFFFFFFFF
    return _start_value


def new_uid(ctx, uc: UserId) -> bytes:
    """16 bytes of a new identifier (ngx_http_userid_create_uid)."""
    global _sequencer_v1, _sequencer_v2
    now = int(time.time()) & 0xFFFFFFFF
    if uc.enable == V1:
        service = 0 if uc.service is None else uc.service & 0xFFFFFFFF
        raw = struct.pack("<4I", service, now, _start(), _sequencer_v1)
        _sequencer_v1 = (_sequencer_v1 + 0x100) & 0xFFFFFFFF
        return raw
    if uc.service is None:
        first = _local_addr_bytes(ctx.conn.server_addr)
    else:
        first = struct.pack(">I", uc.service & 0xFFFFFFFF)
    raw = first + struct.pack(">3I", now, _start(), _sequencer_v2)
    _sequencer_v2 = (_sequencer_v2 + 0x100) & 0xFFFFFFFF
    if _sequencer_v2 < 0x03030302:
        _sequencer_v2 = 0x03030302
    return raw


def _local_addr_bytes(addr: str) -> bytes:
    """The address the connection came to: IPv4's 4 bytes, an IPv6 one's last 4, else zero."""
    try:
        if ":" in addr:
            return socket.inet_pton(socket.AF_INET6, addr.strip("[]"))[12:]
        return socket.inet_aton(addr)
    except (OSError, ValueError):
        return b"\0\0\0\0"          # unix:


# ---------------------------------------------------------------- per-request state

class _State:
    __slots__ = ("got", "cookie", "set", "reset")

    def __init__(self) -> None:
        self.got = b""              # the decoded cookie (16 bytes) when its 4th word is not 0
        self.cookie = b""           # the cookie's value as sent
        self.set = b""              # the identifier to set, once decided
        self.reset = False


def _state(ctx, uc: UserId) -> _State:
    """ngx_http_userid_get_uid: the request's cookie, read once."""
    vs = ctx.vars
    if vs is None:
        ctx.vars = vs = {}
    st = vs.get(_STATE_KEY)
    if st is not None:
        return st
    st = vs[_STATE_KEY] = _State()
    found = _find_cookie(ctx.headers, uc.name.encode("latin-1", "replace").lower())
    if found is None:
        return st
    value, line = found
    st.cookie = value
    if len(value) < 22:
        _log_bad(ctx, "client sent too short userid cookie", line)
        return st
    got = _decode(value[:22])
    if got is None:
        _log_bad(ctx, "client sent invalid userid cookie", line)
        return st
    got = got.ljust(16, b"\0")
    if got[12:16] != b"\0\0\0\0":
        st.got = got
    return st


def _find_cookie(headers, name: bytes):
    """ngx_http_parse_multi_header_lines over the Cookie lines: (value, the whole line)."""
    n = len(name)
    for hname, line in headers:
        if hname.lower() != b"cookie" or n > len(line):
            continue
        start, end = 0, len(line)
        while start < end:
            if line[start:start + n].lower() == name:
                p = start + n
                while p < end and line[p] == 0x20:
                    p += 1
                if p < end and line[p] == 0x3D:         # "="
                    p += 1
                    while p < end and line[p] == 0x20:
                        p += 1
                    last = line.find(b";", p)
                    return line[p:end if last < 0 else last], line
                start = p
            while start < end:                          # skip to after the next ";" or ","
                ch = line[start]
                start += 1
                if ch == 0x3B or ch == 0x2C:
                    break
            while start < end and line[start] == 0x20:
                start += 1
    return None


def _decode(text: bytes) -> bytes | None:
    """ngx_decode_base64: up to the first "=", characters of the standard alphabet only."""
    data = text.split(b"=", 1)[0]
    if not _B64.fullmatch(data) or len(data) % 4 == 1:
        return None
    try:
        return base64.b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None


def _log_bad(ctx, message: str, line: bytes) -> None:
    from ngate.observability import error_log
    error_log.error(f'{message} "{line.decode("latin-1")}"' + error_log.request_suffix(ctx),
                    ctx.conn.number)


def _create(ctx, uc: UserId, st: _State) -> None:
    """ngx_http_userid_create_uid: decide the identifier to set (st.set), once."""
    if st.set:
        return
    if st.got:
        reset = (uc.reset or uid_reset)(ctx)
        if not reset or reset == "0":
            if not uc.mark or (len(st.cookie) > 23 and st.cookie[22:24] == uc.mark.encode() + b"="):
                return
            st.set = st.got                 # the same identifier, marked anew
            return
        st.reset = True
        if reset == "log":
            from ngate.observability import error_log
            error_log.notice(f'userid cookie "{uc.name}={hex_words(st.got)}" was reset'
                             + error_log.request_suffix(ctx), ctx.conn.number)
    st.set = new_uid(ctx, uc)


def hex_words(raw: bytes) -> str:
    return "%08X%08X%08X%08X" % struct.unpack("<4I", raw)


# ---------------------------------------------------------------- variables

def uid_got(ctx):
    main = ctx.main or ctx
    uc = main.conf.userid if main.conf is not None else None
    if uc is None:
        return None
    st = _state(main, uc)
    return f"{uc.name}={hex_words(st.got)}" if st.got else None


def uid_set(ctx):
    main = ctx.main or ctx
    uc = main.conf.userid if main.conf is not None else None
    if uc is None or uc.enable < V1:
        return None
    st = _state(main, uc)
    _create(main, uc, st)
    return f"{uc.name}={hex_words(st.set)}" if st.set else None


def uid_reset(ctx):
    """$uid_reset as `set` gives it (unset: empty, nginx's own value); a config's `map` of it is
    bound by the variables' lookup (routing/variables.py)."""
    vs = ctx.vars
    v = None if vs is None else vs.get("uid_reset")
    return "" if v is None else v


VARIABLES = {"uid_got": uid_got, "uid_set": uid_set, "uid_reset": uid_reset}


# ---------------------------------------------------------------- header filter

def headers(ctx, uc: UserId) -> list:
    """Set-Cookie (and P3P) for a main request's response, or nothing."""
    if uc.enable < V1 or ctx.main is not None:
        return []
    st = _state(ctx, uc)
    _create(ctx, uc, st)
    if not st.set:
        return []
    mark = uc.mark.encode()
    if not st.got or st.reset:
        value = base64.b64encode(st.set)
        if mark:
            value = value[:-2] + mark + b"="
    else:
        value = st.cookie[:22] + mark + b"="
    parts = [uc.name.encode("latin-1", "replace"), b"=", value]
    if uc.expires == MAX_EXPIRES:
        parts.append(_EXPIRES_MAX)
    elif uc.expires:
        parts.append(b"; expires=" + cookie_time(int(time.time()) + uc.expires))
    parts += (uc.domain, uc.path, uc.flags)
    out = [(b"Set-Cookie", b"".join(parts))]
    if uc.p3p:
        out.append((b"P3P", uc.p3p))
    return out


def cookie_time(t: int) -> bytes:
    """ngx_http_cookie_time: `Thu, 31-Dec-37 23:55:55 GMT` (a 4-digit year after 2037)."""
    tm = time.gmtime(t)
    year = tm.tm_year if tm.tm_year > 2037 else "%02d" % (tm.tm_year % 100)
    return (f"{_WEEK[tm.tm_wday]}, {tm.tm_mday:02d}-{_MONTHS[tm.tm_mon - 1]}-{year} "
            f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} GMT").encode()
