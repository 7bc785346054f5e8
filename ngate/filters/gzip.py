"""gzip, gunzip and the test they share (nginx's ngx_http_gzip_filter_module,
ngx_http_gunzip_filter_module and ngx_http_gzip_ok of the core module).

gzip compresses a response when: gzip is on, the status is 200, 403 or 404, there is no
Content-Encoding, the length (when known) is at least gzip_min_length, the type is in gzip_types
(text/html always; `*` any), and the request passes `gzip_ok`: a main request (not a
subrequest) whose Accept-Encoding accepts gzip (nginx's own parser: "gzip" as a token, any
`;q=` other than 0), not MSIE 4-6 with `gzip_disable msie6`, HTTP version >= gzip_http_version,
and, for a request with a Via header, gzip_proxied allows it (off, any, auth, expired,
no-cache, no-store, private, no_last_modified, no_etag, in nginx's order), and no gzip_disable
regex matches the User-Agent. Once the type and status qualify, `Vary: Accept-Encoding` is sent
with gzip_vary on, whether or not the client gets gzip.

The compressor is zlib's (the same library Debian's nginx links), set up as nginx does:
level gzip_comp_level, gzip framing, window and memLevel shrunk for a short known length
(ngx_http_gzip_filter_memory), so the bytes equal nginx's for the same flush points. Output is
produced as zlib makes it (bounded memory); `flush()` is Z_SYNC_FLUSH, used per upstream read
when the response is not buffered (proxy_buffering off, X-Accel-Buffering: no), as nginx flushes
then. $gzip_ratio is total in / total out, with nginx's rounding.
"""
from __future__ import annotations

import time
import zlib
from email.utils import mktime_tz, parsedate_tz

from ngate.filters import HeadersOut, content_type_in, filter_types
from ngate.http.user_agent import MSIE6, browser

GZIP_STATUSES = frozenset({200, 403, 404})
# gzip_proxied flags, nginx's names
PROXIED_FLAGS = ("off", "expired", "no-cache", "no-store", "private", "no_last_modified",
                 "no_etag", "auth", "any")


class GzipCore:
    """The core module's gzip_* settings, shared by gzip, gunzip and gzip_static."""
    __slots__ = ("vary", "proxied", "disable", "msie6", "http_version")

    def __init__(self, vary: bool, proxied: frozenset, disable: tuple, msie6: bool,
                 http_version: int) -> None:
        self.vary = vary
        self.proxied = proxied
        self.disable = disable
        self.msie6 = msie6
        self.http_version = http_version        # minor version: 0 or 1


# ---------------------------------------------------------------- ngx_http_gzip_ok

def accepts_gzip(ae: bytes) -> bool:
    """ngx_http_gzip_accept_encoding, preceded by nginx's fast path for "gzip,"."""
    if len(ae) < 4:
        return False
    if ae[:5] == b"gzip,":
        return True
    low = ae.lower()
    start = 0
    while True:
        p = low.find(b"gzip", start)
        if p < 0:
            return False
        if p == 0 or low[p - 1] in b", ":
            break
        start = p + 4
    p += 4
    n = len(low)
    while p < n:
        c = low[p]
        p += 1
        if c == 44:         # ,
            return True
        if c == 59:         # ;
            break
        if c != 32:
            return False
    else:
        return True
    while p < n:
        c = low[p]
        p += 1
        if c == 113:        # q
            break
        if c != 32:
            return False
    else:
        return True
    if p + 2 > n or low[p] != 61:       # =
        return False
    return _quantity(low, p + 1) != 0


def _quantity(s: bytes, p: int) -> int:
    """ngx_http_gzip_quantity (its arithmetic kept: only zero or not matters)."""
    n = len(s)
    c = s[p]
    p += 1
    if c not in b"01":
        return 0
    q = (c - 48) * 100
    if p == n:
        return q
    c = s[p]
    p += 1
    if c in b", ":
        return q
    if c != 46:
        return 0
    digits = 0
    while p < n:
        c = s[p]
        p += 1
        if c in b", ":
            break
        if 48 <= c <= 57:
            q += c - 48
            digits += 1
            continue
        return 0
    if q > 100 or digits > 3:
        return 0
    return q


def is_msie6(ua: bytes) -> bool:
    """ngx_http_process_user_agent's msie6 flag: MSIE 4.x, 5.x, 6.x without SV1; not Opera."""
    return bool(browser(ua) & MSIE6)


def _http_time(value: bytes):
    t = parsedate_tz(value.decode("latin-1"))
    return None if t is None else mktime_tz(t)


def _cache_control_has(out: HeadersOut, token: bytes) -> bool:
    for n, v in out.headers:
        if n.lower() == b"cache-control":
            for part in v.lower().split(b","):
                if part.split(b"=", 1)[0].split(b";", 1)[0].strip() == token:
                    return True
    return False


def gzip_ok(ctx, core: GzipCore, out: HeadersOut | None) -> bool:
    """ngx_http_gzip_ok: may this request get a gzip-encoded response?"""
    if ctx.main is not None:
        return False
    hdr = ctx.hdr
    ae = hdr.get(b"accept-encoding")
    if ae is None or not accepts_gzip(ae):
        return False
    if core.msie6:
        ua = hdr.get(b"user-agent")
        if ua is not None and is_msie6(ua):
            return False
    if ctx.http_minor < core.http_version:
        return False
    if b"via" in hdr and not _proxied_ok(ctx, core.proxied, out):
        return False
    if core.disable:
        ua = hdr.get(b"user-agent")
        if ua is not None:
            text = ua.decode("latin-1")
            for rx in core.disable:
                if rx.search(text):
                    return False
    return True


def _proxied_ok(ctx, p: frozenset, out: HeadersOut | None) -> bool:
    """gzip_proxied for a request with Via, in nginx's order of tests."""
    if "off" in p or not p:
        return False
    if "any" in p:
        return True
    if "auth" in p and b"authorization" in ctx.hdr:
        return True
    if out is None:
        return True
    e = out.get(b"expires")
    if e is not None:
        if "expired" not in p:
            return False
        expires = _http_time(e)
        if expires is None:
            return False
        d = out.get(b"date")
        date = time.time() if d is None else _http_time(d)
        if date is None:
            return False
        return expires < date
    if out.find(b"cache-control") >= 0:
        return (("no-cache" in p and _cache_control_has(out, b"no-cache"))
                or ("no-store" in p and _cache_control_has(out, b"no-store"))
                or ("private" in p and _cache_control_has(out, b"private")))
    if "no_last_modified" in p and (out.last_modified is not None
                                    or out.find(b"last-modified") >= 0):
        return False
    if "no_etag" in p and out.find(b"etag") >= 0:
        return False
    return True


# ---------------------------------------------------------------- gzip

class Deflate:
    """The gzip body filter: one zlib stream in gzip framing."""
    __slots__ = ("z", "zin", "zout")

    def __init__(self, level: int, wbits: int, memlevel: int) -> None:
        self.z = zlib.compressobj(level, zlib.DEFLATED, wbits + 16, memlevel)
        self.zin = 0
        self.zout = 0

    def data(self, data: bytes) -> bytes:
        self.zin += len(data)
        out = self.z.compress(data)
        self.zout += len(out)
        return out

    def flush(self) -> bytes:
        out = self.z.flush(zlib.Z_SYNC_FLUSH)
        self.zout += len(out)
        return out

    def finish(self) -> bytes:
        z = self.z
        if z is None:
            return b""
        self.z = None
        out = z.flush(zlib.Z_FINISH)
        self.zout += len(out)
        return out

    def ratio(self) -> str | None:
        """$gzip_ratio (nginx: "%ui.%02ui", rounded half up at the third decimal)."""
        zin, zout = self.zin, self.zout
        if self.z is not None or not zout:
            return None
        zint = zin // zout
        zfrac = zin * 100 // zout % 100
        if zin * 1000 // zout % 10 > 4:
            zfrac += 1
            if zfrac > 99:
                zint += 1
                zfrac = 0
        return "%d.%02d" % (zint, zfrac)


class GzipFilter:
    """The gzip header filter; its body filter is a Deflate."""
    __slots__ = ("core", "types", "min_length", "level", "wbits", "memlevel")

    def __init__(self, core: GzipCore, types: frozenset, min_length: int, level: int,
                 wbits: int = 15, memlevel: int = 8) -> None:
        self.core = core
        self.types = filter_types(types)
        self.min_length = min_length
        self.level = level
        self.wbits = wbits
        self.memlevel = memlevel

    def header(self, ctx, out: HeadersOut):
        if out.status not in GZIP_STATUSES:
            return None
        if out.get(b"content-encoding"):
            return None
        clen = out.content_length
        if clen is not None and clen < self.min_length:
            return None
        if not content_type_in(self.types, out.content_type):
            return None
        core = self.core
        if core.vary:
            out.vary = True
        if not gzip_ok(ctx, core, out):
            return None
        wbits, memlevel = self.wbits, self.memlevel
        if clen is not None and clen > 0:       # ngx_http_gzip_filter_memory
            while clen < (1 << (wbits - 1)) - 262:
                wbits -= 1
                memlevel -= 1
            if memlevel < 1:
                memlevel = 1
        out.headers.append((b"Content-Encoding", b"gzip"))
        out.content_length = None
        out.remove(b"accept-ranges")
        out.weak_etag()
        f = Deflate(self.level, max(wbits, 9), memlevel)
        ctx.gzip = f
        return f


# ---------------------------------------------------------------- gunzip

class Inflate:
    """The gunzip body filter. A broken stream ends the output (nginx: inflate() failed).

    Output is bounded: one call inflates at most `limit` bytes (gunzip_buffers: number * size,
    nginx's output buffers); compressed bytes not inflated yet wait in `tail`, and `pending`
    tells the content handler to call `more()` as the client takes the output (an upstream's
    gzip bomb costs `limit` bytes at a time, not its ratio times a read)."""
    __slots__ = ("z", "failed", "limit", "tail", "full")

    def __init__(self, limit: int = 32 * 4096) -> None:
        self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.failed = False
        self.limit = limit
        self.tail = b""             # compressed input not inflated yet
        self.full = False           # the last step filled its room: zlib may hold more

    @property
    def pending(self) -> bool:
        return not self.failed and (bool(self.tail) or self.full)

    def data(self, data: bytes) -> bytes:
        if self.failed or not data:
            return b""
        self.tail = self.tail + data if self.tail else data
        return self._inflate()

    def more(self) -> bytes:
        return b"" if self.failed else self._inflate()

    def _inflate(self) -> bytes:
        out = []
        room = self.limit
        buf = self.tail
        z = self.z
        try:
            while room > 0 and (buf or self.full):
                chunk = z.decompress(buf, room)
                self.full = len(chunk) == room
                room -= len(chunk)
                out.append(chunk)
                if z.eof:
                    buf = z.unused_data         # another gzip member follows
                    self.full = False
                    if buf:
                        z = self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    continue
                progress = chunk or len(z.unconsumed_tail) != len(buf)
                buf = z.unconsumed_tail
                if not progress:
                    break
        except zlib.error:
            self.failed = True
            self.tail = b""
            return b"".join(out)
        self.tail = buf
        return b"".join(out)

    def flush(self) -> bytes:
        return b""          # nothing is held but `tail`, which more() inflates step by step

    def finish(self) -> bytes:
        """The rest: a content handler that drains `pending` first gets b"" here; one that does
        not (a static file, a cache entry) gets everything, as before."""
        out = []
        while self.pending:
            out.append(self._inflate())
        return b"".join(out)


class GunzipFilter:
    __slots__ = ("core", "limit")

    def __init__(self, core: GzipCore, limit: int = 32 * 4096) -> None:
        self.core = core
        self.limit = limit          # gunzip_buffers: number * size

    def header(self, ctx, out: HeadersOut):
        ce = out.get(b"content-encoding")
        if ce is None or ce.lower() != b"gzip":
            return None
        if self.core.vary:
            out.vary = True
        if gzip_ok(ctx, self.core, out):
            return None
        out.remove(b"content-encoding")
        out.content_length = None
        out.remove(b"accept-ranges")
        out.weak_etag()
        return Inflate(self.limit)
