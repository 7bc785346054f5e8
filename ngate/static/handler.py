"""The default content handler: nginx's index, autoindex and static modules, in that order, with
the not_modified, range and expires filters applied to what the static module sends.

  try_files_phase  (try_files.py; runs before any content handler, as nginx's try_files phase)
  static_handler   URI ending in "/": index.py (random_index, index files: an internal
                   redirect, else autoindex, else 403); otherwise the file: 404/403
                   (open_errors.py), 301 for a directory, 405 for POST, then response.py:
                   conditional requests (304/412), ranges (206/416) and the body
  plain_file       the same for a location without the settings that change a file's 200
                   (chosen by `content_handler` when the config is compiled): a GET or HEAD
                   without conditional, Range or Expect headers goes straight to the file and
                   its cached head (filemeta.py); any other request goes to static_handler
  plain_cached     plain_file under `open_file_cache`: the descriptor and its stat result from
                   the location's table (open_cache.py; static_handler consults it too, for a
                   location without disable_symlinks)
"""
from __future__ import annotations

import os
import stat
from types import MappingProxyType
from time import monotonic as _monotonic, time as _time

from ngate.filters import not_modified
from ngate.filters.validators import NAMES as _VALIDATORS
from ngate.http import msie, phases, respond
from ngate.http.respond import TEXT_HTML, content_type
from ngate.http1 import charset
from ngate.http1 import response as resp
from ngate.observability import error_log
from ngate.routing.uri import escape_uri
from ngate.static import filemeta, gzip_static, statkey, symlinks
from ngate.static.expires import expires_headers
from ngate.static.index import directory
from ngate.static.open_errors import open_failed
from ngate.static.paths import document_root, map_under
from ngate.static.response import range_segments as _ranged  # noqa: F401  (cache/serve.py)
from ngate.static.response import _send_200, send_file
from ngate.static.filemeta import _FILES
from ngate.static.sender import SMALL, FileSender, truncated, write_whole
from ngate.static.try_files import try_files_phase  # noqa: F401  (http/modules.py)
from ngate.server.turn_writes import CLOCK as _CLOCK

_DATE = resp.DATE
_fstat = statkey.fstat
_STBUF = statkey.BUF
_STARG = statkey.ARG
_stkey = statkey.key
_PLAIN = filemeta._PLAIN    # (not imported by name: a call of a name bound by an import
                            # compiles to an attribute load, a bound method per request)
# plain_file's Date: resp.DATE's line for the second [_date_from, _date_to), compared as
# floats (int(time()) and an int comparison cost twice as much)
_date_from = _date_to = 0.0
_date_line = b""
_METHODS = frozenset({"GET", "HEAD", "POST"})
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


# ---------------------------------------------------------------- the content handler

def content_handler(conf):
    """The static modules' handler of a location: plain_file when nothing in the location
    changes a file's 200 beyond its cached head (`expires` and add_header without variables
    are part of that head: their lines change with the Date's second at most; an add_header
    of ETag or Last-Modified replaces a validator: static_handler), else static_handler."""
    if (conf.alias is None and (conf.root is None or conf.root.static)
            and conf.static.gzip_static is None and conf.disable_symlinks is None
            and conf.filters is None and conf.userid is None
            and all(h.value.static and h.lname not in _VALIDATORS
                    for h in conf.headers.add_header)):
        if conf.static.open_file_cache is None:
            return plain_file       # (with expires or add_header: the head's lines, _tail)
        if conf.headers.expires is None and not conf.headers.add_header:
            return plain_cached
    return static_handler


# request headers that take the file's response off plain_file's path (not_modified, range,
# Expect: 100-continue). A request's headers as a read-only mapping (HTTP/1.x: one per distinct
# head, shared by the requests of that head: server/request_head.py) found without them are
# kept by the file's entry (FileMeta.plain_hdr): the same head again is not searched again.
_GENERAL = frozenset({b"if-unmodified-since", b"if-match", b"if-modified-since",
                      b"if-none-match", b"range", b"expect"})
# of those, the ones that take it to static_handler (If-Modified-Since and If-None-Match alone
# are not_modified.check's 304 or the plain 200: plain_file decides, for a main request)
_FULL = frozenset({b"if-unmodified-since", b"if-match", b"range", b"expect"})


def plain_file(ctx) -> None:
    """static_handler's 200 for a GET or HEAD of a regular file, with what static_handler and
    response.py would do for it written out (content_handler says when the location allows).
    The file's entry comes from filemeta's URI table: root + URI is one path for this conf,
    checked and encoded when the entry was made (_plain_meta)."""
    method = ctx.method
    if (method != "GET" and method != "HEAD" or ctx.body_chunked
            or ctx.status_override is not None):
        return static_handler(ctx)
    conf = ctx.conf
    uri = ctx.uri
    hdr = ctx.hdr
    cond = False        # If-Modified-Since / If-None-Match alone: decided here (a 304)
    meta = _PLAIN.get(uri)
    if meta is not None and meta.conf is conf:
        if meta.plain_hdr is not hdr:
            if not _GENERAL.isdisjoint(hdr):
                if (not _FULL.isdisjoint(hdr) or ctx.main is not None
                        or conf.headers.expires is not None         # (a 304 with the
                        or conf.headers.add_header):                # headers filter's lines)
                    return static_handler(ctx)
                cond = True
            elif hdr.__class__ is MappingProxyType:
                meta.plain_hdr = hdr
        path = meta.path
    else:
        if uri.endswith("/"):       # (no entry is made for one): static_handler's index,
            return directory(ctx)   # its only step for a GET or HEAD of such a URI
        if not _GENERAL.isdisjoint(hdr):
            if (not _FULL.isdisjoint(hdr) or ctx.main is not None
                    or conf.headers.expires is not None or conf.headers.add_header):
                return static_handler(ctx)
            cond = True
        meta = None
        path = (conf.root.text if conf.root is not None else "") + uri
        if "\x00" in path or "/../" in path or path.endswith("/.."):      # paths.safe
            return phases.finalize(ctx, 404)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        return open_failed(ctx, (conf.root.text if conf.root is not None else "") + uri, exc)
    try:
        # the entry holds while the descriptor's (inode, size, mtime) are its own: libc's fstat
        # into a buffer (statkey.py; nonzero: the fstat failed), compared whole with the last
        # one the entry held (the same bytes: the same key), else by those four fields
        if _fstat(fd, _STARG):
            meta = _plain_meta(ctx, os.fstat(fd), conf, uri)
            if meta is None:
                os.close(fd)
                return None
        else:
            raw = _STBUF.raw
            if meta is None or raw != meta.raw:
                if meta is None or _stkey(_STBUF) != meta.stkey:
                    meta = _plain_meta(ctx, os.fstat(fd), conf, uri)
                    if meta is None:
                        os.close(fd)
                        return None
                if _stkey(_STBUF) == meta.stkey:    # (not when the file changed meanwhile)
                    meta.raw = raw
    except BaseException:
        os.close(fd)
        raise
    ctx.expect_tested = True        # discard(): no Expect header, no chunked body
    if cond and not_modified.check(hdr, conf.if_modified_since, meta.mtime,
                                   meta.etag) is not None:
        os.close(fd)                # send_file's 304 (a 412 needs If-Match/If-Unmodified-Since)
        respond.check_keepalive(ctx)
        ctx.status = 304
        return write_whole(ctx, meta.head_304(conf.keepalive_line if ctx.keep_alive
                                              else resp.CONN_CLOSE), b"", 0)
    ctx.status = 200
    # meta.head_200(connection_line(ctx), None) with resp.DATE.get() written out; the
    # keep-alive head is the entry's until the Date changes. The time is the loop turn's
    # (server/turn_writes.py TurnClock: nginx's cached time), read once a turn
    now = _CLOCK.wall
    if now is None:
        now = _time()
        turn = _CLOCK.turn
        if turn is not None and turn.scheduled:     # (its turn_end clears it)
            _CLOCK.wall = now
    date = _date_line if _date_from <= now < _date_to else _date()
    if ctx.keep_alive:
        conn = ctx.conn     # respond.check_keepalive's tests that vary from request to request;
        if (meta.ka_full or conn.closing or conn.runtime.draining     # the whole check when
                or conn.requests >= conf.keepalive_requests           # one holds or the conf
                or ctx.start - conn.started > conf.keepalive_time):   # may end it (ka_full)
            respond.check_keepalive(ctx)
    if not ctx.keep_alive:
        h = conf.headers
        head = b"".join((meta.prefix, date, meta.fields, resp.CONN_CLOSE,
                         meta.tail if h.expires is None and not h.add_header
                         else _tail(ctx, conf, meta)))
    elif meta.ka_date is date:
        head = meta.ka_head
    else:
        h = conf.headers
        meta.ka_head = head = b"".join((meta.prefix, date, meta.fields, conf.keepalive_line,
                                        meta.tail if h.expires is None and not h.add_header
                                        else _tail(ctx, conf, meta)))
        meta.ka_date = date
    size = meta.size
    if method == "HEAD" or size == 0:
        os.close(fd)
        return write_whole(ctx, head, b"", 0)
    if size > SMALL:
        return FileSender(ctx, fd, head, [(0, size)], size).start()
    # send_small(ctx, fd, head, 0, size), written out: the file and its head in one write (a
    # read of the new descriptor is send_small's pread at 0)
    ctx.head_sent = True
    try:
        data = os.read(fd, size)
    finally:
        os.close(fd)
    out = head + data
    conn = ctx.conn
    conn.write(out)
    sent = len(data)
    if sent < size:
        ctx.bytes_sent = len(out) - sent
        return truncated(ctx, sent)
    ctx.body_bytes_sent = sent
    ctx.bytes_sent = len(out)
    conn.finish_request(ctx)


def _tail(ctx, conf, meta) -> bytes:
    """The 200 head's end under expires or add_header (without variables: content_handler):
    _send_200's and head_200's order (ETag, the headers filter's Expires and Cache-Control,
    add_header's lines, Accept-Ranges); expires' time is the second of plain_file's Date line
    (the head is kept while that line holds; nginx's expires and Date read one cached time)."""
    lines = [meta.etag_line]
    for name, value in expires_headers(conf, 200, meta.mtime, int(_date_from)):
        lines.append(name + b": " + value + b"\r\n")
    for name, value in respond.add_headers(ctx, conf, 200):
        lines.append(name + b": " + value + b"\r\n")
    lines.append(meta.accept)
    lines.append(b"\r\n")
    return b"".join(lines)


def _date() -> bytes:
    """resp.DATE.get(), and the second it holds as plain_file's [_date_from, _date_to)."""
    global _date_from, _date_to, _date_line
    _date_line = _DATE.get()
    _date_from = float(_DATE.second)
    _date_to = _date_from + 1.0
    return _date_line


def _plain_meta(ctx, st, conf, uri: str):
    """plain_file's entry for `uri` when the URI table had none for this conf or the file
    changed: the path's entry (static_handler's table: another location or server with the
    same URI may hold the URI's place, as virtual hosts do), else _new_meta's; with the
    encoded path, kept in the URI table. None when the response (301, 404) is sent."""
    root = conf.root.text if conf.root is not None else ""
    path = root + uri
    meta = filemeta.lookup(path, statkey.key_of(st), conf, uri, root)
    if meta is None:
        meta = _new_meta(ctx, st, path, root)
        if meta is None:
            return None
    if meta.path is None:
        meta.path = os.fsencode(path)
    if conf.charset.recode is None or not conf.charset.recode.variable:
        filemeta.store_plain(uri, meta)
    return meta


def static_handler(ctx) -> None:
    if ctx.method not in _METHODS:
        return phases.finalize(ctx, 405)
    uri = ctx.uri
    if uri.endswith("/"):
        return directory(ctx)
    root = document_root(ctx)
    path = map_under(ctx, root, uri)
    if path is None:
        return phases.finalize(ctx, 404)
    vary = False
    gs = ctx.conf.static.gzip_static
    if gs is not None and ctx.method != "POST":
        vary = gzip_static.serve(ctx, path, gs)
        if vary is True:
            return None
    conf = ctx.conf
    st = None
    try:
        if conf.disable_symlinks is not None:       # checked per open: never from the cache
            fd = symlinks.open_path(ctx, path, _OPEN_FLAGS)
        elif conf.static.open_file_cache is not None:
            fd, st = _open_cached(conf.static, path)    # fd None: a directory
        else:
            fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        return open_failed(ctx, path, exc)
    try:
        if st is not None:                  # open_file_cache's
            meta = filemeta.lookup(path, statkey.key_of(st), conf, uri, root)
        elif _fstat(fd, _STARG):            # (statkey.py; nonzero: failed, the buffer as it was)
            st = os.fstat(fd)
            meta = filemeta.lookup(path, statkey.key_of(st), conf, uri, root)
        else:
            meta = filemeta.lookup_fstat(path, conf, uri, root)
        if meta is None:
            meta = _new_meta(ctx, os.fstat(fd) if st is None else st, path, root)
            if meta is None:
                if fd is not None:
                    os.close(fd)
                return None
        if ctx.method == "POST":
            os.close(fd)
            return phases.finalize(ctx, 405)
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    send_file(ctx, fd, meta, vary == "vary")


def _open_cached(s, path: str):
    """(fd, st) from the location's open_file_cache: fd is the caller's to close (a dup of a
    descriptor the table keeps), None for a directory."""
    fd, st, kept = s.open_file_cache.open(path, s.open_file_cache_valid,
                                          s.open_file_cache_min_uses, s.open_file_cache_errors)
    return (os.dup(fd) if kept else fd), st


def plain_cached(ctx) -> None:
    """plain_file under open_file_cache (content_handler): the descriptor and stat result come
    from the location's table (open_cache.py) instead of open and fstat. A small file behind a
    descriptor the table keeps is read in place (no dup, no close); anything else goes through
    response.py's _send_200 with a descriptor of its own."""
    method = ctx.method
    uri = ctx.uri
    if (method != "GET" and method != "HEAD" or uri.endswith("/") or ctx.body_chunked
            or ctx.status_override is not None or not _GENERAL.isdisjoint(ctx.hdr)):
        return static_handler(ctx)
    conf = ctx.conf
    root = conf.root.text if conf.root is not None else ""
    path = root + uri
    if "\x00" in path or "/../" in path or path.endswith("/.."):      # paths.safe
        return phases.finalize(ctx, 404)
    s = conf.static
    ofc = s.open_file_cache
    files = ofc.files
    file = files.get(path)
    now = int(_monotonic())
    if (file is not None and file.fd is not None and now - file.created < s.open_file_cache_valid
            and file.uses >= s.open_file_cache_min_uses - 1):
        # OpenFileCache.open's hit on a kept descriptor (open_cache.py), written out
        file.uses += 1
        files.move_to_end(path)
        file.accessed = now
        if now >= ofc.check_at:
            ofc.expire(now, force=False)
        fd = file.fd
        st = file.st
        kept = True
    else:
        try:
            fd, st, kept = ofc.open(path, s.open_file_cache_valid, s.open_file_cache_min_uses,
                                    s.open_file_cache_errors)
        except OSError as exc:
            return open_failed(ctx, path, exc)
    meta = _FILES.get(path)         # filemeta.lookup, written out
    if (meta is None or meta.mtime_ns != st.st_mtime_ns or meta.ino != st.st_ino
            or meta.size != st.st_size or meta.conf is not conf or meta.uri != uri
            or meta.root != root):
        meta = _new_meta(ctx, st, path, root)
        if meta is None:
            if fd is not None and not kept:
                os.close(fd)
            return None
    ctx.expect_tested = True        # discard(): no Expect header, no chunked body
    size = meta.size
    if not kept or method == "HEAD" or size == 0 or size > SMALL:
        return _send_200(ctx, os.dup(fd) if kept else fd, meta)
    # plain_file's small-file tail, without the close: the descriptor stays in the table
    respond.check_keepalive(ctx)
    ctx.status = 200
    now = int(_time())
    date = _DATE.header if now == _DATE.second else _DATE.get()
    ctx.head_sent = True
    data = os.pread(fd, size, 0)
    out = b"".join((meta.prefix, date, meta.fields,
                    conf.keepalive_line if ctx.keep_alive else resp.CONN_CLOSE, meta.tail, data))
    conn = ctx.conn
    conn.write(out)
    sent = len(data)
    if sent < size:
        ctx.bytes_sent = len(out) - sent
        return truncated(ctx, sent)
    ctx.body_bytes_sent = sent
    ctx.bytes_sent = len(out)
    conn.finish_request(ctx)


def _new_meta(ctx, st, path: str, root: str):
    """A new FileMeta for a regular file, or None when the response (301, 404) has been sent."""
    if stat.S_ISDIR(st.st_mode):
        _slash_redirect(ctx)
        return None
    if not stat.S_ISREG(st.st_mode):
        error_log.error(f'"{path}" is not a regular file' + error_log.request_suffix(ctx),
                        ctx.conn.number)
        phases.finalize(ctx, 404)
        return None
    conf = ctx.conf
    meta = filemeta.FileMeta(conf, ctx.uri, root, st,
                             charset.content_type(conf, 200, content_type(conf, ctx.uri), ctx))
    if conf.charset.recode is None or not conf.charset.recode.variable:
        filemeta.store(path, meta)
    return meta


def _slash_redirect(ctx) -> None:
    """A directory requested without its slash: 301 to the URI with "/" (and the args)."""
    target = escape_uri(ctx.uri) + "/" + ("?" + ctx.args if ctx.args else "")
    extra = expires_headers(ctx.conf, 301)
    if ctx.conf.msie_refresh and msie.is_msie(ctx):
        return msie.send_refresh(ctx, target, extra)
    body = resp.status_page(301, ctx.conf.server_tokens)
    ctx.status_override = None          # a redirect is nginx's special response: its own status
    ctx.location_out = None
    respond.send_response(ctx, 301, body, TEXT_HTML,
                         location=respond.absolute_location(ctx, target).encode("latin-1",
                                                                                "replace"),
                         extra=extra)


# ---------------------------------------------------------------- sending a file


