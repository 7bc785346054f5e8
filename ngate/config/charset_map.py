"""The charset module's directives (ngx_http_charset_filter_module's conf part): `charset` and
`source_charset` (a name, `off`, or a variable), `override_charset`, and `charset_map src dst
{ hex hex; ... }` blocks (http level), built as nginx builds them:

    byte -> byte    bytes < 0x80 map to themselves, the others to `?` unless listed; the
                    reverse table from the same lines
    x -> utf-8      each byte to its UTF-8 sequence (`?` unless listed); the reverse, code
                    point -> byte (unlisted: `&#N;` when recoding)

A location whose charset and source_charset are fixed and differ needs a charset_map between
them (either direction), else `[emerg] no "charset_map" between the charsets`.
"""
from __future__ import annotations

from ngate.config.model_modules import CHARSET_TYPES, CharsetConf
from ngate.errors import ConfigError
from ngate.http1.charset import ANY, DEFAULT_TYPES, RecodeConf, Table


class VarName(bytes):
    """A `charset` / `source_charset` value with variables; `tpl` renders it."""


def charset_name(c, st) -> bytes:
    """`charset name|off|$var` (also source_charset): b"" for off."""
    name = st.args[0]
    if name.lower() == "off":
        return b""
    value = name.encode("latin-1")
    if "$" in name:
        value = VarName(value)
        value.tpl = c.template(name, st.where)
    return value


def _hex(text: str, st, entry) -> int:
    try:
        if not text or any(ch not in "0123456789abcdefABCDEF" for ch in text):
            raise ValueError
        v = int(text, 16)
    except ValueError:
        v = 256
    if v > 255:
        raise ConfigError(f'invalid value "{text}"', entry.where)
    return v


def _utf8_decode(seq: bytes):
    """ngx_utf8_decode over a whole sequence: the code point, or None."""
    if not seq:
        return None
    u = seq[0]
    if u >= 0xf0:
        u, valid, n = u & 7, 0xffff, 3
    elif u >= 0xe0:
        u, valid, n = u & 0xf, 0x7ff, 2
    elif u >= 0xc2:
        u, valid, n = u & 0x1f, 0x7f, 1
    else:
        return None if u >= 0x80 else u
    if len(seq) - 1 < n:
        return None
    for b in seq[1:1 + n]:
        if b < 0x80:
            return None
        u = (u << 6) | (b & 0x3f)
    return u if u > valid else None


def charset_map(c, lv, st):
    src, dst = st.args
    if src.lower() == dst.lower():
        raise ConfigError(f'"charset_map" between the same charsets "{src}" and "{dst}"',
                          st.where)
    maps = lv.vals.setdefault("charset_maps", {})
    ls, ld = src.lower().encode("latin-1"), dst.lower().encode("latin-1")
    if (ls, ld) in maps or (ld, ls) in maps:
        raise ConfigError(f'duplicate "charset_map" between "{src}" and "{dst}"', st.where)
    names = lv.vals.setdefault("charset_names", {})       # nginx announces the first spelling
    names.setdefault(ls, src.encode("latin-1"))
    names.setdefault(ld, dst.encode("latin-1"))
    utf8 = ld == b"utf-8"
    if utf8:
        fwd = [bytes((i,)) for i in range(128)] + [b"?"] * 128
        rev = {i: i for i in range(128)}
    else:
        fwd = list(range(128)) + [0x3f] * 128
        rev = list(range(128)) + [0x3f] * 128
    for entry in st.block or ():
        if entry.block is not None or len(entry.args) != 1:
            raise ConfigError("invalid parameters number", entry.where)
        s = _hex(entry.directive, st, entry)
        value = entry.args[0]
        if utf8:
            if len(value) % 2 or not value:     # nginx 1.22 has no length limit
                raise ConfigError(f'invalid value "{value}"', entry.where)
            seq = bytes(_hex(value[i:i + 2], st, entry) for i in range(0, len(value), 2))
            n = _utf8_decode(seq)
            if n is None or n > 0xffff:
                raise ConfigError(f'invalid value "{value}"', entry.where)
            fwd[s] = seq
            rev[n] = s
        else:
            d = _hex(value, st, entry)
            fwd[s] = d
            rev[d] = s
    if utf8:
        maps[(ls, ld)] = Table("to_utf8", tuple(fwd),
                               all(fwd[i] == bytes((i,)) for i in range(128)))
        maps[(ld, ls)] = Table("from_utf8", rev)
    else:
        maps[(ls, ld)] = Table("byte", bytes(fwd))
        maps[(ld, ls)] = Table("byte", bytes(rev))


def _value(v):
    return v.tpl if v.__class__ is VarName else v


def section(vals: dict) -> CharsetConf:
    """LocConf.charset from the charset directives' values."""
    return CharsetConf(charset=vals.get("charset", b""),
                       types=vals.get("charset_types", CHARSET_TYPES),
                       recode=build(vals), accel=build_accel(vals))


def build(vals: dict):
    """LocConf.charset.recode: a RecodeConf when the location may recode, else None."""
    dst = vals.get("charset", b"")
    if not dst:
        return None
    src = vals.get("source_charset", b"")
    override = vals.get("override_charset", False)
    if not src and not override and dst.__class__ is not VarName:
        return None
    maps = vals.get("charset_maps", {})
    known = {k[0] for k in maps}
    for v in (dst, src):
        if v and v.__class__ is not VarName:
            known.add(v.lower())
    if src and src.__class__ is not VarName and dst.__class__ is not VarName \
            and src.lower() != dst.lower() and (src.lower(), dst.lower()) not in maps:
        raise ConfigError(f'no "charset_map" between the charsets "{src.decode("latin-1")}" '
                          f'and "{dst.decode("latin-1")}"')
    if dst.__class__ is not VarName:
        dst = vals.get("charset_names", {}).get(dst.lower(), dst)
    return RecodeConf(_value(dst), _value(src) if src else None, override, maps,
                      frozenset(known), vals.get("charset_types", DEFAULT_TYPES))


def build_accel(vals: dict):
    """LocConf.charset.accel: the charsets and tables an upstream's X-Accel-Charset recodes with
    (nginx's charset filter with r->headers_out.override_charset, in any location), or None
    when the config names no charset at all."""
    maps = vals.get("charset_maps", {})
    known = {k[0] for k in maps}
    for key in ("charset", "source_charset"):
        v = vals.get(key, b"")
        if v and v.__class__ is not VarName:
            known.add(v.lower())
    if not known:
        return None
    src = vals.get("source_charset", b"")
    return RecodeConf(b"", _value(src) if src else None, True, maps, frozenset(known), ANY)
