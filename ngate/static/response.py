"""The static module's response for an opened regular file: 200, 206 (one range or
multipart/byteranges), 304/412 (not_modified filter), 416, or an error_page target's status;
with expires, add_header (validators it replaces), the response filters (gzip, add_trailer ...)
and the body sent by static/sender.py. The descriptor is closed when done.
"""
from __future__ import annotations

import os

from ngate.filters import VARY, HeadersOut, header_filter, postpone
from ngate.filters import not_modified, range as range_filter, trailers, validators
from ngate.http import msie, phases, respond
from ngate.http.respond import TEXT_HTML
from ngate.http1 import response as resp
from ngate.http1.discard import discard
from ngate.static import ranges
from ngate.static.expires import expires_headers
from ngate.static.sender import SMALL, FileSender, connection_line, send_small, write_whole


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
        if conf.headers.add_header:
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
    if conf.headers.add_header or conf.userid is not None:
        headers.extend(respond.add_headers(ctx, conf, status))
    _send_head_and_file(ctx, fd, status, meta.content_type, size, [(0, size)],
                        meta.lm_value if status in (200, 206) else None, headers)


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
    segments, _, ctype = range_segments(parsed, size, out.content_type, out.headers)
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
    if conf.headers.add_header:
        headers.extend(respond.add_headers(ctx, conf, 200))
    lastmod = meta.lm_value
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
    headers = expires_headers(conf, 200, meta.mtime) if conf.headers.expires is not None else []
    if conf.headers.add_header or conf.userid is not None:
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
    segments, length, ctype = range_segments(parsed, size, meta.content_type, headers)
    headers.extend(expires_headers(conf, 206, meta.mtime))
    if conf.headers.add_header or conf.userid is not None:
        headers.extend(respond.add_headers(ctx, conf, 206))
    if len(segments) == 1:
        s, e = segments[0]
        headers.append((b"Content-Range", b"bytes %d-%d/%d" % (s, e - 1, size)))
    _send_head_and_file(ctx, fd, 206, ctype, length, segments, meta.lm_value,
                        headers)


def _send_replaced(ctx, fd: int, meta, vary: bool, found) -> None:
    """200 or 206 when add_header replaces Last-Modified or ETag (filters/validators.py): the
    range filter's If-Range sees the replaced validators."""
    conf = ctx.conf
    size = meta.size
    lastmod = validators.value(found, b"last-modified", meta.lm_value)
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
        segments, length, ctype = range_segments(parsed, size, meta.content_type, headers)
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


def range_segments(parsed, size: int, ctype: bytes, headers: list):
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
    if not vary and conf.headers.expires is None and not conf.headers.add_header \
            and conf.userid is None:
        respond.check_keepalive(ctx)        # the head below from the entry's parts
        ctx.status = 304
        return write_whole(ctx, meta.head_304(connection_line(ctx)), b"", 0)
    headers = [(b"ETag", meta.etag.encode())] if meta.etag else []
    if vary:
        headers.insert(0, VARY)
    headers += expires_headers(conf, 304, meta.mtime)
    if conf.headers.add_header or conf.userid is not None:
        headers.extend(respond.add_headers(ctx, conf, 304))
    respond.check_keepalive(ctx)
    ctx.status = 304
    head = resp.build_head(304, 1, server_tokens=conf.server_tokens,
                           last_modified=meta.lm_value, connection=connection_line(ctx),
                           headers=headers)
    write_whole(ctx, head, b"", 0)


def _not_satisfiable(ctx, size: int) -> None:
    conf = ctx.conf
    headers = expires_headers(conf, 200) + [(b"Content-Range", b"bytes */%d" % size)]
    body = msie.status_page(ctx, conf, 416)     # (msie_padding)
    respond.send_response(ctx, 416, body, TEXT_HTML, extra=headers)
