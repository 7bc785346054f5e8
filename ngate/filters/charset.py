"""The charset filter's body part (ngx_http_charset_filter_module): recode a response through a
charset_map table (config/charset_map.py); the header decision is http1/charset.py's.

    byte      bytes.translate; Content-Length stays
    to_utf8   each byte to its UTF-8 sequence; Content-Length dropped
    from_utf8 UTF-8 decoded as ngx_utf8_decode does: a mapped code point to its byte, an
              unmapped one (or one above U+FFFF) to `&#N;`, an invalid sequence to `?` (the
              byte that shows it invalid is consumed with it); a sequence cut by the end of a
              read is held until the next one, and dropped at the end of the body, as nginx

Only main requests are recoded (nginx recodes a subrequest into its main request's charset;
ngate leaves subrequests as they are).
"""
from __future__ import annotations

import re

from ngate.filters import Chain, HeadersOut
from ngate.http1 import charset

_NON_ASCII = re.compile(rb"[\x80-\xff]+")
_INVALID = -1
_INCOMPLETE = -2


class CharsetFilter:
    __slots__ = ("rc",)

    def __init__(self, rc) -> None:
        self.rc = rc

    def header(self, ctx, out: HeadersOut):
        ctype = out.content_type
        if not ctype or ctx.main is not None:
            return None
        encoded = bool(out.get(b"content-encoding"))
        if ctype.__class__ is charset.Decided:     # static files: decided with the FileMeta
            if ctype.table is None:
                return None
            if encoded:
                out.content_type = charset.decided(ctype.raw, ctype.raw, None)
                return None
            table = ctype.table
        else:
            new, table = charset.decide(self.rc, out.status, ctype, ctx, encoded)
            out.content_type = charset.decided(new, ctype, table)
            if table is None:
                return None
        return _recoder(table, out)


def _recoder(table, out: HeadersOut):
    if table.kind == "byte":
        return ByteRecoder(table.table)
    out.content_length = None
    if table.kind == "to_utf8":
        return ToUtf8(table.table, table.ascii_same)
    return FromUtf8(table.table)


def accel_name(ex):
    """An upstream response's X-Accel-Charset (its exchange's hidden X-Accel-* lines), unless
    *_ignore_headers names it: the first one, as nginx keeps it."""
    if not ex.accel or b"x-accel-charset" in ex.plan.ignore_headers:
        return None
    return next((v for n, v in ex.accel if n == b"x-accel-charset"), None)


def prepend(recode, body):
    """X-Accel-Charset's recoding in front of the location's body filter `body` (or None):
    nginx's charset filter comes before ssi, postpone and gzip."""
    if body is None:
        return recode
    from ngate.filters.postpone import PostponeChain
    if body.__class__ is PostponeChain:
        body.pre.insert(0, recode)
        return body
    return Chain([recode, body])


def accel(ctx, rc, out: HeadersOut, name: bytes):
    """An upstream's X-Accel-Charset (nginx's override_charset) on a main request's response:
    the destination charset whatever the location's `charset` says, the source the response's
    own charset or source_charset (off: announce only). Settles out.content_type (the
    location's charset filter then leaves it) and returns the body filter, or None."""
    ctype = out.content_type
    if not ctype or ctx.main is not None or not name:
        return None
    if rc is None or name.lower() not in rc.known:
        from ngate.observability import error_log
        error_log.error('unknown charset "%s" to override' % name.decode("latin-1")
                        + error_log.request_suffix(ctx), ctx.conn.number)
        return None
    import dataclasses
    rc = dataclasses.replace(rc, charset=name)
    new, table = charset.decide(rc, out.status, ctype, ctx, bool(out.get(b"content-encoding")))
    out.content_type = charset.decided(new, ctype, None)
    return None if table is None else _recoder(table, out)


class ByteRecoder:
    __slots__ = ("table",)

    def __init__(self, table: bytes) -> None:
        self.table = table

    def data(self, data) -> bytes:
        return bytes(data).translate(self.table)

    def flush(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        return b""


class ToUtf8(ByteRecoder):
    __slots__ = ("ascii_same",)

    def __init__(self, table: tuple, ascii_same: bool) -> None:
        self.table = table
        self.ascii_same = ascii_same

    def data(self, data) -> bytes:
        data = bytes(data)
        if self.ascii_same and data.isascii():
            return data
        t = self.table
        return b"".join([t[b] for b in data])


def _decode(buf: bytes, i: int):
    """ngx_utf8_decode at buf[i] (not ASCII): (code point | _INVALID | _INCOMPLETE, next i)."""
    u = buf[i]
    if u >= 0xf0:
        u, valid, n = u & 7, 0xffff, 3
    elif u >= 0xe0:
        u, valid, n = u & 0xf, 0x7ff, 2
    elif u >= 0xc2:
        u, valid, n = u & 0x1f, 0x7f, 1
    else:
        return _INVALID, i + 1
    if len(buf) - i - 1 < n:
        return _INCOMPLETE, i
    i += 1
    while n:
        b = buf[i]
        i += 1
        if b < 0x80:
            return _INVALID, i
        u = (u << 6) | (b & 0x3f)
        n -= 1
    return (u if u > valid else _INVALID), i


class FromUtf8:
    __slots__ = ("table", "held")

    def __init__(self, table: dict) -> None:
        self.table = table
        self.held = b""

    def data(self, data) -> bytes:
        if not data:
            return b""
        held = self.held
        if held:
            buf = held + bytes(data)
            self.held = b""
            n, pos = _decode(buf, 0)
            if n == _INCOMPLETE:
                self.held = buf
                return b""
            if n == _INVALID or n > 0x10ffff:
                first = b"?"
                pos = max(pos, len(held))       # nginx skips every held byte with it
            else:
                first = self._char(n)
            return first + self._recode(buf, pos)
        buf = bytes(data)
        if buf.isascii():
            return buf
        return self._recode(buf, 0)

    def _char(self, n: int) -> bytes:
        c = self.table.get(n) if n < 0x10000 else None
        return bytes((c,)) if c else b"&#%d;" % n

    def _recode(self, buf: bytes, pos: int) -> bytes:
        out = []
        for m in _NON_ASCII.finditer(buf, pos):
            start = m.start()
            if start < pos:          # consumed by the sequence before (an invalid one)
                start = pos
                if start >= m.end():
                    continue
            out.append(buf[pos:start])
            i = start
            end = m.end()
            while i < end:
                n, j = _decode(buf, i)
                if n == _INCOMPLETE:
                    self.held = buf[i:]
                    return b"".join(out)
                if n == _INVALID or n > 0x10ffff:
                    out.append(b"?")
                else:
                    out.append(self._char(n))
                i = j
            pos = i
        out.append(buf[pos:])
        return b"".join(out)

    def flush(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        self.held = b""
        return b""
