"""ngx_http_charset_filter_module: `charset name;` adds `; charset=name` to a response's
Content-Type when its type is one of `charset_types` and it names no charset yet; with
`source_charset`, `override_charset on` or `charset $var` (a location's RecodeConf) the body is
also recoded through a `charset_map` table (filters/charset.py runs the body part).

The header decision (nginx's ngx_http_charset_header_filter), for a main request:

    destination   none without Content-Type or with `charset off`; a response naming its own
                  charset keeps it unless override_charset on; else its type must be listed
    source        the response's own charset, else source_charset, else off (announce only)
    same charset  announce it (the response's charset parameter replaced)
    different     no charset_map between them (either direction) or Content-Encoding set:
                  [error] and the response as it is; else announce and recode

Redirects (301, 302) get no charset parameter, as in nginx.
"""
from __future__ import annotations

from dataclasses import dataclass

from ngate.filters import WholeType, content_type_in, split_type  # noqa: F401 (static/index.py)

# nginx's default charset_types
DEFAULT_TYPES = frozenset({b"text/html", b"text/xml", b"text/plain", b"text/vnd.wap.wml",
                           b"application/javascript", b"application/rss+xml"})
ANY = None          # `charset_types *`


class Decided(bytes):
    """A Content-Type the charset module already settled, with `raw` (the type before) and
    `table` (the recoding Table or None): a later content_type() call passes it through and
    the body filter (filters/charset.py) recodes with its table."""


def decided(value: bytes, raw: bytes, table) -> Decided:
    d = Decided(value)
    d.raw = raw
    d.table = table
    return d


def content_type(conf, status: int, ctype: bytes | None, ctx=None) -> bytes | None:
    """The Content-Type to send (ctype itself unless `charset` applies)."""
    rc = conf.charset.recode
    if rc is not None:
        if ctype is None or ctype.__class__ is Decided:
            return ctype
        new, table = decide(rc, status, ctype, ctx, False)
        return decided(new, ctype, table)
    name = conf.charset.charset
    if not name or not ctype or status in (301, 302):
        return ctype
    if b";" in ctype and ctype.__class__ is not WholeType and split_type(ctype)[1] is not None:
        return ctype                    # the response names its charset (override_charset off)
    if not content_type_in(conf.charset.types, ctype):
        return ctype
    return ctype + b"; charset=" + name


# ---------------------------------------------------------------- recoding (compiled config)

@dataclass(frozen=True, slots=True)
class Table:
    """One direction of a charset_map: `kind` "byte" (bytes.translate table), "to_utf8" (a
    tuple of 256 UTF-8 sequences) or "from_utf8" (code point -> byte, 0: not mapped)."""
    kind: str
    table: object
    ascii_same: bool = True        # bytes < 0x80 map to themselves (a fast path)


@dataclass(frozen=True, slots=True)
class RecodeConf:
    """A location's charset module when it may recode (LocConf.charset.recode)."""
    charset: object              # bytes, or a Template (`charset $var`)
    source: object               # bytes, a Template, or None (source_charset off)
    override: bool
    tables: object               # {(src lower, dst lower): Table}
    known: frozenset             # charset names the config knows (lower case)
    types: object                # charset_types (ANY: `*`)

    @property
    def variable(self) -> bool:
        return self.charset.__class__ is not bytes or (
            self.source is not None and self.source.__class__ is not bytes)


def _name(value, ctx) -> bytes:
    if value.__class__ is bytes:
        return value
    if ctx is None:
        return b""
    return value.render(ctx).encode("latin-1", "replace")


def decide(rc: RecodeConf, status: int, ctype: bytes, ctx, encoded: bool):
    """(Content-Type, Table or None, source, destination) for a main request's response."""
    # a local type (WholeType) names no charset for nginx, whatever it says
    base, own = (ctype, None) if ctype.__class__ is WholeType else split_type(ctype)
    if own:
        if not rc.override:
            return ctype, None
    elif not content_type_in(rc.types, base):
        return ctype, None
    dst = _name(rc.charset, ctx)
    if not dst:
        return ctype, None
    if own:
        src = own
    elif rc.source is None:
        return (ctype if status in (301, 302) else ctype + b"; charset=" + dst), None
    else:
        src = _name(rc.source, ctx)
    announced = base if status in (301, 302) else base + b"; charset=" + dst
    ls, ld = src.lower(), dst.lower()
    if ls not in rc.known or ld not in rc.known:
        if ls == ld and ls:
            return (ctype if own else announced), None
        return _no_map(ctx, src, dst, ctype)
    if ls == ld:
        return announced, None
    if encoded:
        return ctype, None
    table = rc.tables.get((ls, ld))
    if table is None:
        return _no_map(ctx, src, dst, ctype)
    return announced, table


def _no_map(ctx, src: bytes, dst: bytes, ctype: bytes):
    if ctx is not None:
        from ngate.observability import error_log
        error_log.error('no "charset_map" between the charsets "%s" and "%s"'
                        % (src.decode("latin-1"), dst.decode("latin-1"))
                        + error_log.request_suffix(ctx.main or ctx), ctx.conn.number)
    return ctype, None
