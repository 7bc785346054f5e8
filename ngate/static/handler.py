"""The default content handler: nginx's index, autoindex and static modules, in that order, with
the not_modified, range and expires filters applied to what the static module sends.

  try_files_phase  (runs before any content handler, as nginx's try_files phase)
  static_handler   URI ending in "/": index files (internal redirect), else autoindex, else 403;
                   otherwise the file: 404/403, 301 for a directory, 405 for POST, then
                   conditional requests (304/412), ranges (206/416) and the body
"""
from __future__ import annotations

import errno
import os
import random
import stat

from ngate.filters import VARY, HeadersOut, header_filter, postpone
from ngate.filters import not_modified, range as range_filter, trailers, validators
from ngate.http1 import charset
from ngate.http1 import response as resp
from ngate.http1.discard import discard
from ngate.observability import error_log
from ngate.http import phases, respond
from ngate.http.respond import content_type
from ngate.routing.uri import escape_uri
from ngate.static import autoindex, filemeta, gzip_static, ranges, symlinks
from ngate.static.expires import expires_headers
from ngate.static.paths import alias_strip, document_root, map_under, map_uri, safe
from ngate.static.sender import SMALL, FileSender, connection_line, send_small, write_whole

_METHODS = frozenset({"GET", "HEAD", "POST"})
_NOT_FOUND = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG})
_FORBIDDEN = frozenset({errno.EACCES, errno.ELOOP, errno.EMLINK})
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
TEXT_HTML = b"text/html"


# ---------------------------------------------------------------- try_files

def try_files_phase(ctx, conf=None) -> bool:
    """nginx's try_files phase. False: a file matched (ctx.uri is now that file), go on to the
    content handler; True: the fallback took over the request."""
    tf = ctx.conf.try_files
    if tf is None or tf.block != _block(ctx):
        return False
    for tpl in tf.items[:-1]:
        value = tpl.render(ctx)
        test_dir = len(tpl.text) > 1 and tpl.text.endswith("/")
        if test_dir:                    # nginx drops the slash, tests for a directory
            value = value[:-1]
        path = _try_path(ctx, value)
        if path is not None and _exists(ctx, path, test_dir):
            _set_try_uri(ctx, value, test_dir)
            return False
    last = tf.items[-1].render(ctx)
    if tf.code is not None:
        phases.finalize(ctx, tf.code)
    elif last.startswith("@"):
        phases.named_location(ctx, last)
    else:
        phases.internal_redirect(ctx, last)
    return True


def _block(ctx):
    return ctx.loc.where if ctx.loc is not None else ctx.server.where


def _try_path(ctx, value: str) -> str | None:
    strip = alias_strip(ctx)
    base = document_root(ctx)
    if strip is not None and strip >= 0 and value.startswith(ctx.uri[:strip]):
        value = value[strip:]
    path = base + value
    return path if safe(path) else None


def _set_try_uri(ctx, value: str, test_dir: bool) -> None:
    """The URI after a try_files match, as ngx_http_try_files_handler sets r->uri."""
    strip = alias_strip(ctx)
    if strip is None:
        ctx.uri = value
    elif strip == -1:
        if not test_dir:
            ctx.uri = value
            ctx.add_uri_to_alias = True
    else:
        rest = value[strip:] if value.startswith(ctx.uri[:strip]) else value
        ctx.uri = ctx.uri[:strip] + rest


def _exists(ctx, path: str, want_dir: bool) -> bool:
    try:
        st = symlinks.stat_path(ctx, path)
    except symlinks.SymlinkError as exc:
        if exc.errno not in _NOT_FOUND:      # ngx_http_try_files_handler logs it at crit
            error_log.log("crit", f'{exc.failed} "{path}" failed ({exc.errno}: {exc.strerror})'
                          + error_log.request_suffix(ctx), ctx.conn.number)
        return False
    except (OSError, ValueError):
        return False
    return stat.S_ISDIR(st.st_mode) == want_dir


# ---------------------------------------------------------------- the content handler

def static_handler(ctx) -> None:
    if ctx.method not in _METHODS:
        return phases.finalize(ctx, 405)
    uri = ctx.uri
    if uri.endswith("/"):
        return _directory(ctx)
    root = document_root(ctx)
    path = map_under(ctx, root, uri)
    if path is None:
        return phases.finalize(ctx, 404)
    vary = False
    gs = ctx.conf.gzip_static
    if gs is not None and ctx.method != "POST":
        vary = gzip_static.serve(ctx, path, gs)
        if vary is True:
            return None
    try:
        fd = os.open(path, _OPEN_FLAGS) if ctx.conf.disable_symlinks is None else \
            symlinks.open_path(ctx, path, _OPEN_FLAGS)
    except OSError as exc:
        return _open_failed(ctx, path, exc)
    try:
        st = os.fstat(fd)
        meta = filemeta.lookup(path, st, ctx.conf, uri, root)
        if meta is None:
            meta = _new_meta(ctx, st, path, root)
            if meta is None:
                os.close(fd)
                return None
        if ctx.method == "POST":
            os.close(fd)
            return phases.finalize(ctx, 405)
    except BaseException:
        os.close(fd)
        raise
    send_file(ctx, fd, meta, vary == "vary")


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
    if conf.charset_recode is None or not conf.charset_recode.variable:
        filemeta.store(path, meta)
    return meta


def _open_failed(ctx, path: str, exc: OSError) -> None:
    """ngx_http_static_handler's answer to a failed open: 404, 403 (also for a refused symlink:
    ELOOP, EMLINK) or 500 logged at crit."""
    code = exc.errno
    failed = getattr(exc, "failed", "open()")
    text = f'{failed} "{path}" failed ({code}: {os.strerror(code)})' + error_log.request_suffix(ctx)
    if code in _NOT_FOUND:
        if ctx.conf.log_not_found:
            error_log.error(text, ctx.conn.number)
        return phases.finalize(ctx, 404)
    if code in _FORBIDDEN:
        error_log.error(text, ctx.conn.number)
        return phases.finalize(ctx, 403)
    error_log.log("crit", text, ctx.conn.number)
    return phases.finalize(ctx, 500)


def _slash_redirect(ctx) -> None:
    """A directory requested without its slash: 301 to the URI with "/" (and the args)."""
    target = escape_uri(ctx.uri) + "/" + ("?" + ctx.args if ctx.args else "")
    extra = expires_headers(ctx.conf, 301)
    body = resp.status_page(301, ctx.conf.server_tokens)
    ctx.status_override = None          # a redirect is nginx's special response: its own status
    ctx.location_out = None
    respond.send_response(ctx, 301, body, TEXT_HTML,
                         location=respond.absolute_location(ctx, target).encode("latin-1",
                                                                                "replace"),
                         extra=extra)


def _directory(ctx) -> None:
    dir_path = map_uri(ctx, ctx.uri)
    if dir_path is None:
        return phases.finalize(ctx, 404)
    if ctx.conf.random_index and ctx.method in ("GET", "HEAD", "POST"):
        if _random_index(ctx, dir_path):
            return None
    names = ctx.conf.index
    last = len(names) - 1
    first = None                # the first index file tried: nginx names it when the dir is missing
    for i, name in enumerate(names):
        if name.__class__ is not str:        # a name with variables: nginx redirects at once
            name = name.render(ctx)          # when it comes out absolute
            if name.startswith("/"):
                return phases.internal_redirect(ctx, name, keep_args=True)
        if name.startswith("/"):
            if i == last:
                return phases.internal_redirect(ctx, name, keep_args=True)
            path, target = map_uri(ctx, name), name
        else:
            path, target = dir_path + name, ctx.uri + name
        first = first or path
        found = _index_exists(ctx, path)
        if found is None:
            return None
        if found:
            return phases.internal_redirect(ctx, target, keep_args=True)
    if not os.path.isdir(dir_path):
        if ctx.conf.log_not_found:
            error_log.error(f'"{first or dir_path}" is not found (2: No such file or directory)'
                            + error_log.request_suffix(ctx), ctx.conn.number)
        return phases.finalize(ctx, 404)
    if ctx.conf.autoindex and ctx.method in ("GET", "HEAD"):
        return _autoindex(ctx, dir_path)
    error_log.error(f'directory index of "{dir_path}" is forbidden' + error_log.request_suffix(ctx),
                    ctx.conn.number)
    phases.finalize(ctx, 403)


def _random_index(ctx, dir_path: str) -> bool:
    """ngx_http_random_index_module (before the index module): an internal redirect to a random
    regular file of the directory (links followed, dot files skipped); False when it has none."""
    try:
        with os.scandir(dir_path) as it:
            names = [e.name for e in it if not e.name.startswith(".") and _is_file(e.path)]
    except OSError as exc:
        _open_failed(ctx, dir_path.rstrip("/") or "/", exc)
        return True
    if not names:
        return False
    name = random.choice(names).encode("utf-8", "surrogateescape").decode("latin-1")
    phases.internal_redirect(ctx, ctx.uri + name, keep_args=True)
    return True


def _is_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _index_exists(ctx, path: str | None) -> bool | None:
    """Whether an index file exists; None when the request has been answered. Under
    disable_symlinks, as ngx_http_index_handler: a refused symlink is a silent 403,
    ENOTDIR/ENAMETOOLONG 404 and EACCES 403 (ngx_http_index_error), others 500 at crit."""
    if path is None:
        return False
    if ctx.conf.disable_symlinks is None:
        return os.path.exists(path)
    try:
        symlinks.stat_path(ctx, path)
        return True
    except OSError as exc:
        code = exc.errno
        if code == errno.ENOENT:
            return False
        if code in (errno.ELOOP, errno.EMLINK):
            phases.finalize(ctx, 403)
            return None
        reason = f" ({code}: {os.strerror(code)})" + error_log.request_suffix(ctx)
        if code == errno.EACCES:
            error_log.error(f'"{path}" is forbidden' + reason, ctx.conn.number)
            phases.finalize(ctx, 403)
        elif code in (errno.ENOTDIR, errno.ENAMETOOLONG):
            if ctx.conf.log_not_found:
                error_log.error(f'"{path}" is not found' + reason, ctx.conn.number)
            phases.finalize(ctx, 404)
        else:
            error_log.log("crit", f'{getattr(exc, "failed", "open()")} "{path}" failed' + reason,
                          ctx.conn.number)
            phases.finalize(ctx, 500)
        return None


def _autoindex(ctx, dir_path: str) -> None:
    conf = ctx.conf
    fmt = conf.autoindex_format
    callback = None
    if fmt == "jsonp":
        callback = autoindex.jsonp_callback(ctx.args)
        if callback is None:
            error_log.info("client sent invalid callback name" + error_log.request_suffix(ctx),
                           ctx.conn.number)
            return phases.finalize(ctx, 400)
        if not callback:
            fmt = "json"
    try:
        if fmt == "html":
            utf8 = bool(conf.charset) and (charset.split_type(charset.content_type(
                conf, 200, b"text/html", ctx) or b"")[1] or b"").lower() == b"utf-8"
            body = autoindex.listing(ctx.uri, dir_path, utf8)
        elif fmt == "xml":
            body = autoindex.listing_xml(dir_path)
        else:
            body = autoindex.listing_json(dir_path, callback)
    except OSError as exc:
        return _open_failed(ctx, dir_path, exc)
    headers = expires_headers(conf, 200)
    if conf.add_header or conf.userid is not None:
        headers.extend(respond.add_headers(ctx, conf, 200))
    _send_listing(ctx, body, autoindex.CONTENT_TYPES[fmt], headers)


def _send_listing(ctx, body: bytes, ctype: bytes, headers: list) -> None:
    """An autoindex listing (no length, no Last-Modified: ngx_http_autoindex_handler), through
    the location's response filters as nginx's output filter sends it: gzip, sub_filter,
    addition, charset recoding, SSI, add_trailer."""
    conf = ctx.conf
    head_only = ctx.method == "HEAD"
    if conf.filters is not None:
        out = HeadersOut(200, ctype, None, None, headers)
        f = header_filter(ctx, conf.filters, out)
        ctype = out.content_type
        if f is not None and not head_only:
            if f.__class__ is postpone.PostponeChain:      # SSI/addition subrequests
                got: list = []
                f.attach(got.append)
                f.data(body)
                f.finish()
                if f.deferred:
                    return respond.send_postponed(ctx, conf, 200, [f] + got, ctype, None,
                                                  None, headers)
                body = b"".join(got)
            else:
                body = f.data(body) + f.finish()
    chunked = not head_only and ctx.http_minor == 1 and conf.chunked_transfer_encoding
    if not head_only and not chunked:
        ctx.keep_alive = False
    respond.check_keepalive(ctx)
    ctx.status = 200
    head = resp.build_head(200, 1, server_tokens=conf.server_tokens,
                           content_type=charset.content_type(conf, 200, ctype, ctx),
                           chunked=chunked, connection=connection_line(ctx), headers=headers)
    if head_only:
        body = b""
    elif chunked:
        body = (resp.chunk(body) if body else b"") + trailers.last_chunk(ctx)
    write_whole(ctx, head, body, len(body))      # chunk framing counts, as in nginx


# ---------------------------------------------------------------- sending a file

def send_file(ctx, fd: int, meta, vary: bool = False) -> None:
    """200/206/304/412/416 for an opened regular file; the descriptor is closed when done."""
    if not discard(ctx):        # the static module discards the body (Expect: 100-continue)
        os.close(fd)
        return None
    conf = ctx.conf
    size = meta.size
    mtime = meta.mtime
    etag = meta.etag
    override = ctx.status_override          # an error_page target: no ranges, no validators
    ctx.status_override = None
    hdr = ctx.hdr
    if override is None:
        status = _not_modified(hdr, conf, mtime, etag)
        if status is not None:
            os.close(fd)
            return _send_not_modified(ctx, status, meta, vary)
        if conf.filters is not None:
            vary = _send_filtered(ctx, fd, meta, vary)
            if vary is None:
                return None
        if conf.add_header:
            found = validators.overrides(ctx, conf, 200)
            if found is not None:
                return _send_replaced(ctx, fd, meta, vary, found)
        range_header = hdr.get(b"range")
        if range_header is None or conf.max_ranges == 0 \
                or not ranges.if_range_ok(ctx, etag, meta.last_modified):
            return _send_200(ctx, fd, meta, vary)
        return _send_ranged(ctx, fd, meta, range_header, vary)
    if override == 200:
        if conf.filters is not None:
            vary = _send_filtered(ctx, fd, meta, vary, ranged=False)
            return None if vary is None else _send_200(ctx, fd, meta, vary)
        return _send_200(ctx, fd, meta, vary)
    status = override
    headers = [(b"ETag", etag.encode())] if etag else []
    if ctx.www_authenticate is not None:     # an error page for the access phase's 401
        headers.insert(0, (b"WWW-Authenticate", ctx.www_authenticate.encode("latin-1", "replace")))
    headers.extend(expires_headers(conf, status, mtime))
    if conf.add_header or conf.userid is not None:
        headers.extend(respond.add_headers(ctx, conf, status))
    _send_head_and_file(ctx, fd, status, meta.content_type, size, [(0, size)],
                        meta.last_modified.encode() if status in (200, 206) else None, headers)


def _trailers_ranges(ctx, meta, out, whole: list):
    """nginx's range header filter on a file whose length only add_trailer dropped (its chunked
    filter runs after the range filter): the segments to send (out becomes the 206's head), or
    None when a 416 went out instead."""
    conf = ctx.conf
    value = ctx.hdr.get(b"range")
    if value is None or conf.max_ranges == 0:
        return whole
    if_range = ctx.hdr.get(b"if-range")
    if if_range is not None and not range_filter.if_range_ok(
            if_range.strip(), out.get(b"etag"), out.last_modified):
        return whole
    size = meta.size
    parsed = ranges.parse(value.decode("latin-1"), size, conf.max_ranges)
    if parsed is ranges.NOT_SATISFIABLE:
        _not_satisfiable(ctx, size)
        return None
    if parsed is None:
        return whole
    segments, _, ctype = _ranged(parsed, size, out.content_type, out.headers)
    if len(segments) == 1:
        s, e = segments[0]
        out.headers.append((b"Content-Range", b"bytes %d-%d/%d" % (s, e - 1, size)))
    out.status = 206
    out.content_type = ctype
    return segments


def _send_filtered(ctx, fd: int, meta, vary: bool, ranged: bool = True):
    """The response filters (gzip) over a 200 for the whole file. None when they took the
    response and sent it; else whether `Vary: Accept-Encoding` goes into the head."""
    conf = ctx.conf
    headers = [(b"ETag", meta.etag.encode())] if meta.etag else []
    headers.extend(expires_headers(conf, 200, meta.mtime))
    if conf.add_header:
        headers.extend(respond.add_headers(ctx, conf, 200))
    lastmod = meta.last_modified.encode()
    out = HeadersOut(200, meta.content_type, meta.size, lastmod, headers)
    out.vary = vary
    body = header_filter(ctx, conf.filters, out)
    if body is None:
        return out.vary
    segments = [(0, meta.size)] if meta.size else []
    status = 200
    if body is trailers.PASS and ranged:     # add_trailer's chunking comes after the range filter
        segments = _trailers_ranges(ctx, meta, out, segments)
        if segments is None:
            os.close(fd)
            return None
        status = out.status
    respond.check_keepalive(ctx)
    ctx.status = status
    head_only = ctx.method == "HEAD"
    chunked = not head_only and out.content_length is None and ctx.http_minor == 1
    if not head_only and not chunked and out.content_length is None:
        ctx.keep_alive = False
    if status == 200 and (out.content_length is not None or out.trailers) \
            and conf.max_ranges != 0:
        # charset's byte recoding; add_trailer's chunking comes after nginx's range filter
        out.headers.append((b"Accept-Ranges", b"bytes"))
    head = resp.build_head(status, 1, server_tokens=conf.server_tokens,
                           content_type=out.content_type, content_length=out.content_length,
                           last_modified=out.last_modified, chunked=chunked,
                           connection=connection_line(ctx),
                           headers=out.headers)
    if head_only:
        os.close(fd)
        write_whole(ctx, head, b"", 0)
        return None
    sender = FileSender(ctx, fd, head, segments, meta.size)
    sender.filter = body
    postpone.attach(body, sender._write_filtered)
    sender.chunked = chunked
    sender.start()
    return None


def _send_200(ctx, fd: int, meta, vary: bool = False) -> None:
    """The whole file: the common case, with the head's fixed part from the cache."""
    conf = ctx.conf
    headers = expires_headers(conf, 200, meta.mtime) if conf.expires is not None else []
    if conf.add_header or conf.userid is not None:
        headers.extend(respond.add_headers(ctx, conf, 200))
    respond.check_keepalive(ctx)
    ctx.status = 200
    head = meta.head_200(connection_line(ctx), headers, vary)
    size = meta.size
    if ctx.method == "HEAD" or size == 0:
        os.close(fd)
        return write_whole(ctx, head, b"", 0)
    if size <= SMALL:
        return send_small(ctx, fd, head, 0, size)
    FileSender(ctx, fd, head, [(0, size)], size).start()


def _send_ranged(ctx, fd: int, meta, range_header: bytes, vary: bool = False) -> None:
    size = meta.size
    parsed = ranges.parse(range_header.decode("latin-1"), size, ctx.conf.max_ranges)
    if parsed is ranges.NOT_SATISFIABLE:
        os.close(fd)
        return _not_satisfiable(ctx, size)
    if parsed is None:
        return _send_200(ctx, fd, meta, vary)
    conf = ctx.conf
    headers = [(b"ETag", meta.etag.encode())] if meta.etag else []
    if vary:
        headers.insert(0, VARY)
    segments, length, ctype = _ranged(parsed, size, meta.content_type, headers)
    headers.extend(expires_headers(conf, 206, meta.mtime))
    if conf.add_header or conf.userid is not None:
        headers.extend(respond.add_headers(ctx, conf, 206))
    if len(segments) == 1:
        s, e = segments[0]
        headers.append((b"Content-Range", b"bytes %d-%d/%d" % (s, e - 1, size)))
    _send_head_and_file(ctx, fd, 206, ctype, length, segments, meta.last_modified.encode(),
                        headers)


def _send_replaced(ctx, fd: int, meta, vary: bool, found) -> None:
    """200 or 206 when add_header replaces Last-Modified or ETag (filters/validators.py): the
    range filter's If-Range sees the replaced validators."""
    conf = ctx.conf
    size = meta.size
    lastmod = validators.value(found, b"last-modified", meta.last_modified.encode())
    etag = validators.value(found, b"etag", meta.etag.encode() if meta.etag else None)
    parsed = None
    range_header = ctx.hdr.get(b"range")
    if range_header is not None and conf.max_ranges != 0:
        if_range = ctx.hdr.get(b"if-range")
        if if_range is None or range_filter.if_range_ok(if_range.strip(), etag, lastmod):
            parsed = ranges.parse(range_header.decode("latin-1"), size, conf.max_ranges)
    if parsed is ranges.NOT_SATISFIABLE:
        os.close(fd)
        return _not_satisfiable(ctx, size)
    headers = [(b"ETag", meta.etag.encode())] if meta.etag else []
    validators.apply(headers, [f for f in found if f[0] == b"etag"])
    if vary:
        headers.insert(0, VARY)
    if parsed is None:
        status, segments, length, ctype = 200, [(0, size)], size, meta.content_type
    else:
        status = 206
        segments, length, ctype = _ranged(parsed, size, meta.content_type, headers)
    headers.extend(expires_headers(conf, status, meta.mtime))
    headers.extend(respond.add_headers(ctx, conf, status, skip=validators.NAMES))
    if status == 206 and len(segments) == 1:
        s, e = segments[0]
        headers.append((b"Content-Range", b"bytes %d-%d/%d" % (s, e - 1, size)))
    elif status == 200 and conf.max_ranges != 0:
        headers.append((b"Accept-Ranges", b"bytes"))
    _send_head_and_file(ctx, fd, status, ctype, length, segments, lastmod, headers)


_OWN_ACCEPT_RANGES = frozenset({b"accept-ranges"})     # a file says "bytes" itself


def _send_head_and_file(ctx, fd: int, status: int, ctype: bytes, length: int, segments: list,
                        last_modified: bytes | None, headers: list) -> None:
    conf = ctx.conf
    respond.check_keepalive(ctx)
    ctx.status = status
    if ctx.accel_headers is not None:     # after an upstream's X-Accel-Redirect
        ctype = respond.carry_accel_headers(ctx, headers, ctype, skip=_OWN_ACCEPT_RANGES)
    head = resp.build_head(status, 1, server_tokens=conf.server_tokens, content_type=ctype,
                           content_length=length, last_modified=last_modified,
                           connection=connection_line(ctx), headers=headers)
    if ctx.method == "HEAD" or length == 0:
        os.close(fd)
        return write_whole(ctx, head, b"", 0)
    if len(segments) == 1 and length <= SMALL:
        return send_small(ctx, fd, head, segments[0][0], length)
    FileSender(ctx, fd, head, segments, length).start()


def _ranged(parsed, size: int, ctype: bytes, headers: list):
    if len(parsed) == 1:
        s, e = parsed[0]
        return [(s, e)], e - s, ctype
    boundary = ranges.next_boundary()
    parts, tail = ranges.multipart_parts(parsed, size, ctype.decode("latin-1"), boundary)
    segments: list = []
    length = len(tail)
    for part_head, s, e in parts:
        segments += [part_head, (s, e)]
        length += len(part_head) + e - s
    segments.append(tail)
    return segments, length, b"multipart/byteranges; boundary=" + boundary.encode()


def _not_modified(hdr: dict, conf, mtime: int, etag: str | None) -> int | None:
    """ngx_http_not_modified_filter on the file: 412 or 304, or None to send it."""
    return not_modified.check(hdr, conf.if_modified_since, mtime, etag)


def _send_not_modified(ctx, status: int, meta, vary: bool = False) -> None:
    if status == 412:
        return phases.finalize(ctx, 412)
    conf = ctx.conf
    headers = [(b"ETag", meta.etag.encode())] if meta.etag else []
    if vary:
        headers.insert(0, VARY)
    headers += expires_headers(conf, 304, meta.mtime)
    if conf.add_header or conf.userid is not None:
        headers.extend(respond.add_headers(ctx, conf, 304))
    respond.check_keepalive(ctx)
    ctx.status = 304
    head = resp.build_head(304, 1, server_tokens=conf.server_tokens,
                           last_modified=meta.last_modified.encode(), connection=connection_line(ctx),
                           headers=headers)
    write_whole(ctx, head, b"", 0)


def _not_satisfiable(ctx, size: int) -> None:
    conf = ctx.conf
    headers = expires_headers(conf, 200) + [(b"Content-Range", b"bytes */%d" % size)]
    body = resp.status_page(416, conf.server_tokens)
    respond.send_response(ctx, 416, body, TEXT_HTML, extra=headers)
