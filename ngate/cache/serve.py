"""A response from a cache entry, through nginx's header filters as a cached response goes:
proxy_hide_header / proxy_redirect / proxy_cookie_* on the stored upstream headers, then
not_modified (If-Modified-Since / If-None-Match: 304; If-Unmodified-Since / If-Match: 412),
range (a 200 entry: 206, multipart/byteranges, 416; If-Range), add_header, charset, HEAD.
"""
from __future__ import annotations

import os

from ngate.cache import policy
from ngate.filters import HeadersOut, header_filter, postpone, trailers
from ngate.filters import charset as charset_filter
from ngate.filters import not_modified, range as range_filter
from ngate.http1 import charset
from ngate.http1 import response as resp
from ngate.http import msie, phases, respond
from ngate.static import ranges
from ngate.static.handler import _ranged
from ngate.static.sender import FileSender, send_small

SMALL = 65536
_CONSUMED = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length",
                       b"content-type", b"last-modified", b"location"})
_CONSUMED_LISTED = _CONSUMED - {b"last-modified"}


def _not_modified(ctx, lastmod: bytes | None, etag: str | None) -> int | None:
    """ngx_http_not_modified_filter on a cached 200: 412, 304 or None."""
    return not_modified.check(ctx.hdr, ctx.conf.if_modified_since,
                              not_modified.http_time(lastmod) if lastmod is not None else None,
                              etag)


def send_entry(ctx, ex, entry, fresh: bool = False) -> None:
    """Send `entry` to the client; ex is the location's UpstreamExchange (its plan and header
    rewriting). The entry's descriptor is owned (closed) from here on. `fresh`: the response
    just stored for this request (a MISS): one range at most, as nginx's single_range for a
    response it is caching, and a failed precondition (412) leaves nothing stored."""
    conf = ctx.conf
    status = entry.status
    headers, allow_ranges, listed_lm = policy.split_cacheable(ctx.cache.conf, entry.headers, 0)
    if conf.proxy.force_ranges:     # the entry's own Accept-Ranges is not copied (nginx)
        allow_ranges = True
        headers = [h for h in headers if h[0].lower() != b"accept-ranges"]
    out, ctype, length, lastmod, location, _chunked, _close = \
        ex.split_headers(headers, _CONSUMED_LISTED if listed_lm else _CONSUMED)
    etag = None
    for name, value in out:
        lname = name.lower()
        if lname == b"etag":
            etag = value.decode("latin-1")
    if listed_lm:
        lastmod_value = next((v for n, v in out if n.lower() == b"last-modified"), None)
    else:
        lastmod_value = lastmod
    size = entry.size
    segments = [(entry.offset, entry.offset + size)]
    body_len = size
    late = []                       # the range filter's headers, after add_header
    added = False
    body_filter = None
    if status == 200:
        code = _not_modified(ctx, lastmod_value, etag)
        if code == 412:
            entry.close()
            if fresh:
                ctx.cache.zone.remove(ctx.cache.h)
            return phases.finalize(ctx, 412)
        if code == 304:
            status, body_len, ctype = 304, None, None
        else:
            # nginx's header filters in order: add_header, gzip (and the other body filters),
            # then range, which a filter that drops Content-Length switches off
            if conf.headers.add_header:
                out.extend(respond.add_headers(ctx, conf, 200))
                added = True
            accel = charset_filter.accel_name(ex)           # X-Accel-Charset
            if conf.filters is not None or accel is not None:
                ho = HeadersOut(200, ctype, size if length is not None else None, lastmod, out)
                # decided first: the location's own charset filter then leaves the type
                recode = None if accel is None else \
                    charset_filter.accel(ctx, conf.charset.accel, ho, accel)
                body_filter = header_filter(ctx, conf.filters, ho) \
                    if conf.filters is not None else None
                if recode is not None:
                    body_filter = charset_filter.prepend(recode, body_filter)
                ctype, lastmod = ho.content_type, ho.last_modified
                if body_filter is not None and ho.content_length is None:
                    allow_ranges = False
                    length = None
        if code is None and allow_ranges and length is not None:
            rng = ctx.hdr.get(b"range")
            parsed = None
            if rng is not None and conf.max_ranges != 0 and ranges.if_range_ok(
                    ctx, etag, lastmod_value.decode("latin-1") if lastmod_value else ""):
                parsed = ranges.parse(rng.decode("latin-1"), size, conf.max_ranges)
                if fresh and parsed is not ranges.NOT_SATISFIABLE and parsed is not None \
                        and len(parsed) > 1:
                    parsed = None
                if parsed is ranges.NOT_SATISFIABLE:
                    entry.close()
                    body = msie.status_page(ctx, conf, 416)     # (msie_padding)
                    return respond.send_response(    # add_header ran with 200 (in out)
                        ctx, 416, body, b"text/html",
                        extra=range_filter.not_satisfiable_headers(out, size))
            if parsed is not None:
                segs, body_len, ctype = _ranged(parsed, size, ctype or b"", [])
                status = 206
                if len(segs) == 1:
                    s, e = segs[0]
                    late.append((b"Content-Range", b"bytes %d-%d/%d" % (s, e - 1, size)))
                segments = _unpairs(segs, entry.offset)
            else:
                late.append((b"Accept-Ranges", b"bytes"))
    if conf.headers.add_header and not added:
        out.extend(respond.add_headers(ctx, conf, status))
    out.extend(late)
    if conf.charset.charset and ctype is not None:
        ctype = charset.content_type(conf, status, ctype, ctx)
    chunked = False
    if length is None and status != 304:
        # stored without Content-Length (a chunked upstream response): sent chunked as nginx
        if ctx.method == "HEAD":
            pass
        elif ctx.http_minor == 1 and conf.chunked_transfer_encoding:
            chunked = True
        else:
            ctx.keep_alive = False
        body_len = None
    elif ctx.method == "HEAD" and status == entry.status:
        try:
            body_len = int(length)      # the stored header (a HEAD stored without its body)
        except ValueError:
            pass
    respond.check_keepalive(ctx)
    ctx.status = status
    ctx.resp_headers = out
    reason = _status_text(entry.meta) if status == entry.status else None
    head = resp.build_head(
        status, 1, server_tokens=conf.server_tokens, content_type=ctype,
        content_length=body_len if status != 304 else None,
        last_modified=lastmod, location=location, chunked=chunked,
        connection=resp.CONN_KEEPALIVE if ctx.keep_alive else resp.CONN_CLOSE, headers=out,
        reason=reason)
    if ctx.method == "HEAD" or status == 304 or (not size and body_filter is None):
        entry.close()
        tail = resp.LAST_CHUNK if chunked and ctx.method != "HEAD" and status != 304 else b""
        ctx.head_sent = True
        ctx.bytes_sent = len(head) + len(tail)
        ctx.body_bytes_sent = len(tail)
        ctx.conn.write(head + tail)
        return ctx.conn.finish_request(ctx)
    fd = entry.fd
    entry.fd = -1
    postponing = body_filter.__class__ is postpone.PostponeChain
    if body_filter is not None and size <= SMALL and not postponing and status != 206:
        # a small entry passes the filters as one buffer with last_buf, as nginx sends a
        # cached file: one chunk out
        try:
            data = os.pread(fd, size, entry.offset) if size else b""
        finally:
            os.close(fd)
        data = body_filter.data(data) + body_filter.finish()
        if chunked and data:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        if chunked:
            data += trailers.last_chunk(ctx)
        ctx.head_sent = True
        ctx.body_bytes_sent = len(data)
        ctx.bytes_sent = len(head) + len(data)
        ctx.conn.write(head + data)
        return ctx.conn.finish_request(ctx)
    if body_filter is not None:
        sender = FileSender(ctx, fd, head, segments if size else [], size)
        sender.filter = body_filter
        sender.chunked = chunked
        if postponing:      # add_after_body, ssi: their output goes out through the sender
            postpone.attach(body_filter, sender._write_filtered)
        return sender.start()
    if chunked:
        segments = [b"%x\r\n" % size] + segments + [b"\r\n" + resp.LAST_CHUNK]
        body_len = size + len(segments[0]) + len(segments[-1])
        return FileSender(ctx, fd, head, segments, body_len).start()
    if body_len is None:
        body_len = size
    if len(segments) == 1 and body_len <= SMALL:
        return send_small(ctx, fd, head, segments[0][0], body_len)
    FileSender(ctx, fd, head, segments, body_len).start()


def _unpairs(segs, offset: int) -> list:
    """_ranged's segments (byte strings between (start, end) pairs) moved past the entry head."""
    return [seg if isinstance(seg, bytes) else (seg[0] + offset, seg[1] + offset)
            for seg in segs]


def _status_text(meta: dict) -> bytes | None:
    """The stored reason for build_head: the line as sent (StatusText), a phrase, or None."""
    as_sent = meta.get("as_sent")
    if as_sent is not None:
        return resp.StatusText(as_sent.encode("latin-1"))
    reason = meta.get("reason")
    return reason.encode("latin-1") if reason else None
