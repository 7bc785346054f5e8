"""gzip_static on | always: serve `file.gz` beside `file` (ngx_http_gzip_static_module).

Runs before the static file for GET and HEAD of a URI not ending in "/". `on` asks the client
(filters/gzip.py gzip_ok) and sets Vary (with gzip_vary on) once a `.gz` exists, whether or not
the client gets it; `always` serves the `.gz` to everyone (pair it with `gunzip on`). A missing
`.gz` (or a directory) falls through to the file itself. The response is a 200 with the `.gz`'s
length, Last-Modified and ETag, the original's Content-Type, `Content-Encoding: gzip`, no ranges;
If-Modified-Since and If-None-Match apply to the `.gz`. The `.gz`'s FileMeta is kept in
filemeta's path table like the file's, found again by the `.gz`'s fstat key (statkey.py).
"""
from __future__ import annotations

import errno
import os
import stat

from ngate.filters import VARY, HeadersOut, header_filter, not_modified, postpone
from ngate.filters.gzip import gzip_ok
from ngate.http1 import charset
from ngate.http1 import response as resp
from ngate.observability import error_log
from ngate.http import phases, respond
from ngate.static import filemeta, statkey, symlinks
from ngate.static.sender import connection_line, write_whole
from ngate.static.expires import expires_headers
from ngate.static.sender import SMALL, FileSender, send_small

_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG})
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_fstat = statkey.fstat
_STARG = statkey.ARG


def serve(ctx, path: str, gs) -> bool | str:
    """True when the `.gz` was served; "vary" when the file itself is to be sent with Vary;
    False otherwise."""
    mode, core = gs
    ok = mode == "always" or gzip_ok(ctx, core, None)
    if not core.vary and not ok:
        return False
    gz = path + ".gz"
    try:
        fd = os.open(gz, _OPEN_FLAGS) if ctx.conf.disable_symlinks is None else \
            symlinks.open_path(ctx, gz, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno not in _ABSENT:
            level = "error" if exc.errno in (errno.EACCES, errno.ELOOP, errno.EMLINK) else "crit"
            error_log.log(level, f'{getattr(exc, "failed", "open()")} "{gz}" failed '
                          f'({exc.errno}: {os.strerror(exc.errno)})'
                          + error_log.request_suffix(ctx), ctx.conn.number)
        return False
    vary = mode == "on" and core.vary
    if not _fstat(fd, _STARG):          # statkey.py (nonzero: failed, the buffer as it was)
        meta = filemeta.lookup_fstat(gz, ctx.conf, ctx.uri, "")
        if meta is not None:            # the `.gz` of the entry: a regular file (filemeta.py)
            if not ok:
                os.close(fd)
                return "vary" if vary else False
            _send(ctx, fd, meta, vary)
            return True
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return False
    if not ok or stat.S_ISDIR(st.st_mode):
        os.close(fd)
        return "vary" if vary else False
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        error_log.log("crit", f'"{gz}" is not a regular file' + error_log.request_suffix(ctx),
                      ctx.conn.number)
        phases.finalize(ctx, 404)
        return True
    _send(ctx, fd, _new_meta(ctx, gz, st), vary)
    return True


def _new_meta(ctx, gz: str, st):
    """The `.gz`'s entry (root "": the path is the file's + ".gz"), kept in filemeta's table
    as handler._new_meta keeps the file's (not with a charset whose recoding is a variable)."""
    conf = ctx.conf
    ctype = charset.content_type(conf, 200, respond.content_type(conf, ctx.uri), ctx)
    meta = filemeta.FileMeta(conf, ctx.uri, "", st, ctype)
    if conf.charset.recode is None or not conf.charset.recode.variable:
        filemeta.store(gz, meta)
    return meta


def _send(ctx, fd: int, meta, vary: bool) -> None:
    conf = ctx.conf
    headers = []
    if meta.etag:
        headers.append((b"ETag", meta.etag.encode()))
    lastmod = meta.lm_value
    status = not_modified.check(ctx.hdr, conf.if_modified_since, meta.mtime, meta.etag)
    if status is not None:
        os.close(fd)
        if status == 412:
            return phases.finalize(ctx, 412)
        headers.extend(expires_headers(conf, 304, meta.mtime))
        if conf.headers.add_header:
            headers.extend(respond.add_headers(ctx, conf, 304))
        if vary:
            headers.insert(0, VARY)
        respond.check_keepalive(ctx)
        ctx.status = 304
        head = resp.build_head(304, 1, server_tokens=conf.server_tokens, last_modified=lastmod,
                               connection=connection_line(ctx), headers=headers)
        return write_whole(ctx, head, b"", 0)
    headers.extend(expires_headers(conf, 200, meta.mtime))
    if conf.headers.add_header:
        headers.extend(respond.add_headers(ctx, conf, 200))
    headers.append((b"Content-Encoding", b"gzip"))
    size = meta.size
    out = HeadersOut(200, meta.content_type, size, lastmod, headers)
    out.vary = vary
    if conf.filters is not None:
        body = header_filter(ctx, conf.filters, out)
    else:
        body = None
        if vary:
            headers.insert(0, VARY)
    respond.check_keepalive(ctx)
    ctx.status = 200
    head_only = ctx.method == "HEAD"
    clen = out.content_length
    chunked = not head_only and clen is None and ctx.http_minor == 1
    if not head_only and clen is None and not chunked:
        ctx.keep_alive = False
    head = resp.build_head(200, 1, server_tokens=conf.server_tokens,
                           content_type=out.content_type, content_length=clen,
                           last_modified=out.last_modified, chunked=chunked,
                           connection=connection_line(ctx), headers=out.headers)
    if head_only or (size == 0 and body is None):
        os.close(fd)
        return write_whole(ctx, head, b"", 0)
    if body is None and size <= SMALL:
        return send_small(ctx, fd, head, 0, size)
    sender = FileSender(ctx, fd, head, [(0, size)] if size else [], size)
    sender.filter = body
    postpone.attach(body, sender._write_filtered)
    sender.chunked = chunked
    sender.start()
