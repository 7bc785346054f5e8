"""A per-worker cache of what a file's response head says about it, keyed by its stat result.

Every request still opens and fstats the file (nginx without open_file_cache does the same), so a
change is seen at once: an entry is used only while the fstat of the opened descriptor gives the
same (mtime in ns, inode, size: FileMeta.stkey, statkey.py) and the request maps the same URI to
the same path under the same root and location configuration. Nothing in an entry depends on more
of the stat result (its fields come from mtime and size; the inode says the path still names the
regular file the entry was made for): a chmod or chown changes ctime alone, and the open itself is
what enforces permissions, on every request. What the entry saves is per-request work that depends
only on those: Last-Modified and ETag formatting, the content type lookup, the fixed part of a 200
head. No symlink verdict is kept: `disable_symlinks` is enforced by the open itself (symlinks.py
walks the path on every request), so nothing here can go stale.

Entries are replaced on any mismatch; a full table (MAX_ENTRIES) drops its oldest entry for a new
one (insertion order: a hit costs no bookkeeping, and a working set larger than the table does not
empty it at once).

Two tables: _FILES by path (static_handler, plain_cached, gzip_static's `.gz`) and _PLAIN by URI
(static/handler.py plain_file: its locations map a URI to one path, root + URI, so an entry whose
conf is the request's names the path already checked and encoded: no concatenation, no hash of a
new string, no checks, no encoding per request; the URI string comes from the route cache, its hash
is kept). A plain entry also keeps its last keep-alive head with the Date it was made with
(`ka_date`, `ka_head`): the same head until the Date changes.
"""
from __future__ import annotations

import time

from ngate.http1 import response as resp
from ngate.static import statkey

MAX_ENTRIES = 1024
ACCEPT_RANGES = b"Accept-Ranges: bytes\r\n"

_BUF = statkey.BUF
_FILES: dict = {}       # path -> FileMeta
_PLAIN: dict = {}       # URI -> FileMeta (plain_file's locations)


class FileMeta:
    __slots__ = ("mtime_ns", "ino", "conf", "uri", "root", "mtime", "size", "last_modified",
                 "lm_value", "etag", "content_type", "prefix", "fields", "etag_line", "accept",
                 "tail", "lm_line", "path", "ka_date", "ka_head", "plain_hdr", "ka_full", "stkey",
                 "raw")

    def __init__(self, conf, uri: str, root: str, st, content_type: bytes) -> None:
        self.mtime_ns = st.st_mtime_ns
        self.ino = st.st_ino
        self.conf = conf
        self.uri = uri
        self.root = root
        # st_mtim.tv_sec (int(st_mtime) would round a time before the epoch towards it); -1 is
        # nginx's "no time" (headers_out.last_modified_time): no Last-Modified, If-Modified-Since
        # always modified, If-Unmodified-Since always failed, `expires modified` from now; the
        # ETag still says -1 (ngx_http_set_etag)
        sec = st.st_mtime_ns // 1_000_000_000
        self.mtime = mtime = None if sec == -1 else sec       # None: no Last-Modified
        self.size = size = st.st_size
        self.last_modified = None if mtime is None else http_date(mtime)
        self.lm_value = None if mtime is None else self.last_modified.encode()
        self.etag = '"%x-%x"' % (sec, size) if conf.etag else None
        self.content_type = content_type
        # a 200 head: prefix + Date + fields + Connection + etag_line + [more] + Accept-Ranges
        self.prefix = (resp.status_line(200, 1) + (resp.SERVER_HEADER_TOKENS if conf.server_tokens
                                                   else resp.SERVER_HEADER_BARE))
        self.lm_line = b"" if mtime is None else b"Last-Modified: %b\r\n" % self.lm_value
        self.fields = b"Content-Type: %b\r\nContent-Length: %d\r\n%b" % (
            content_type, size, self.lm_line)
        self.etag_line = b"ETag: %b\r\n" % self.etag.encode() if self.etag else b""
        self.accept = ACCEPT_RANGES if conf.max_ranges != 0 else b""    # max_ranges 0: none
        self.tail = self.etag_line + self.accept + b"\r\n"
        self.path = None        # plain_file's entries: the encoded path
        self.ka_date = None     # plain_file's keep-alive head and the Date line it holds
        self.ka_head = b""
        self.plain_hdr = None   # plain_file's last request headers without If-*, Range, Expect
        # the conf may end keep-alive whatever the connection (keepalive_timeout 0, or
        # keepalive_disable safari for a GET): plain_file runs respond.check_keepalive whole
        self.ka_full = conf.keepalive_timeout == 0 or "safari" in conf.keepalive_disable
        self.stkey = statkey.key_of(st)     # plain_file's test of a descriptor (statkey.py)
        self.raw = None         # plain_file's: the last statkey.BUF.raw with this stkey

    def head_200(self, connection: bytes, headers, vary: bool = False) -> bytes:
        """The 200 head in build_head's order; `headers` go between ETag and Accept-Ranges;
        `vary`: gzip_vary's `Vary: Accept-Encoding` after Connection (nginx's place).
        (static/handler.py plain_file writes out the case without headers or vary.)"""
        if not headers and not vary:
            return b"".join((self.prefix, resp.DATE.get(), self.fields, connection, self.tail))
        parts = [self.prefix, resp.DATE.get(), self.fields, connection,
                 b"Vary: Accept-Encoding\r\n" if vary else b"", self.etag_line]
        for name, value in headers:
            parts.append(name + b": " + value + b"\r\n")
        parts.append(self.accept)
        parts.append(b"\r\n")
        return b"".join(parts)


    def head_304(self, connection: bytes) -> bytes:
        """The 304 head without other headers: build_head's order (status line, Server, Date,
        Last-Modified, Connection, ETag), from the entry's parts (static/response.py)."""
        return b"".join((_LINE_304, self.prefix[_SERVER_AT:], resp.DATE.get(), self.lm_line,
                         connection, self.etag_line, b"\r\n"))


_SERVER_AT = len(resp.status_line(200, 1))     # prefix: the 200 line, then Server
_LINE_304 = resp.status_line(304, 1)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(t: int) -> str:
    """ngx_http_time: `Thu, 02 Jan 2020 03:04:05 GMT`; a time before the epoch is the epoch
    (ngx_gmtime). A third of email.utils.formatdate's cost (a FileMeta is made on every
    change of a file)."""
    g = time.gmtime(t if t > 0 else 0)
    return "%s, %02d %s %4d %02d:%02d:%02d GMT" % (
        _DAYS[g.tm_wday], g.tm_mday, _MONTHS[g.tm_mon], g.tm_year, g.tm_hour, g.tm_min, g.tm_sec)


def lookup(path: str, key: tuple, conf, uri: str, root: str) -> FileMeta | None:
    """The entry for `path` mapped from `uri` under `root` whose file had this fstat `key`
    (statkey.py: inode, size, mtime), or None. (static/handler.py plain_file and
    plain_cached have this test written out.)"""
    meta = _FILES.get(path)
    if (meta is None or meta.stkey != key or meta.conf is not conf or meta.uri != uri
            or meta.root != root):
        return None
    return meta


def lookup_fstat(path: str, conf, uri: str, root: str) -> FileMeta | None:
    """lookup() for the descriptor whose fstat is in statkey.BUF (its fstat returned 0): the
    buffer compared whole with the last one the entry held (equal raws: equal keys) before the
    key is unpacked; a raw is kept only when the key matched (plain_file's test, handler.py)."""
    meta = _FILES.get(path)
    if meta is None or meta.conf is not conf or meta.uri != uri or meta.root != root:
        return None
    raw = _BUF.raw
    if raw != meta.raw:
        if statkey.key(_BUF) != meta.stkey:
            return None
        meta.raw = raw
    return meta


def store(path: str, meta: FileMeta) -> None:
    if len(_FILES) >= MAX_ENTRIES and path not in _FILES:
        del _FILES[next(iter(_FILES))]
    _FILES[path] = meta


def store_plain(uri: str, meta: FileMeta) -> None:
    """plain_file's entry for `uri` (meta.path set: the path it maps to, encoded)."""
    if len(_PLAIN) >= MAX_ENTRIES and uri not in _PLAIN:
        del _PLAIN[next(iter(_PLAIN))]
    _PLAIN[uri] = meta
