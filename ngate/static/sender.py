"""Streaming a file to the client without reading it whole, with write backpressure.

A body of at most SMALL bytes in one piece goes out with its head in one write (`send_small`, no
writer object). Otherwise a FileSender is the connection's `writer` while the body goes out:
segments are pre-built bytes (multipart heads) or (start, end) file ranges read in CHUNK pieces.
It writes until the transport pauses it (downstream_paused), and resumes on downstream_resumed.
uvloop does not implement loop.sendfile() on its transports, so the chunks go through
transport.write. They are read into one reused buffer, as nginx reuses its output_buffers: a
fresh 256 KiB object per read cost page faults and cold caches (half the CPU of a 1 MiB file).
uvloop keeps a view of what the socket did not take, so the buffer is reused only when the
transport's write buffer is empty after the write; otherwise the transport keeps it and the next
read gets a new one.

States: sending -> paused <-> sending -> done (descriptor closed, request finished or gone).
"""
from __future__ import annotations

import os

from ngate.filters import postpone, trailers
from ngate.http import log
from ngate.http1 import response as resp

CHUNK = 256 * 1024
SMALL = 64 * 1024
_SPARE: list = []       # a read buffer no transport holds (see FileSender.pump)


def send_small(ctx, fd: int, head: bytes, start: int, length: int) -> None:
    """Bytes [start, start + length) of the file (length <= SMALL) after `head`, in one write;
    the descriptor is closed here. (static/handler.py plain_file writes out its whole-file case.)"""
    ctx.head_sent = True
    ctx.bytes_sent = len(head)
    try:
        data = os.pread(fd, length, start)
    finally:
        os.close(fd)
    conn = ctx.conn
    conn.write(head + data)
    sent = len(data)
    if sent < length:
        return truncated(ctx, sent)
    ctx.body_bytes_sent = sent
    ctx.bytes_sent += sent
    conn.finish_request(ctx)


def truncated(ctx, sent: int) -> None:
    """The file shrank while it was being sent: the response cannot be completed."""
    from ngate.observability import error_log
    conn = ctx.conn
    error_log.alert("file was truncated while it was being sent"
                    + error_log.request_suffix(ctx), conn.number)
    ctx.body_bytes_sent = sent
    ctx.keep_alive = False
    conn.abort()
    log.log_request(ctx)


class FileSender:
    __slots__ = ("ctx", "conn", "fd", "head", "segments", "index", "pos", "paused", "done",
                 "sent",
                 "filter",      # filters/: a body filter (gzip), or None
                 "chunked",     # the filtered body goes out chunked
                 "wrote")       # filtered bytes written, with their chunk framing

    def __init__(self, ctx, fd: int, head: bytes, segments: list, length: int) -> None:
        self.ctx = ctx
        self.conn = ctx.conn
        self.fd = fd
        self.head = head
        self.segments = segments
        self.index = 0
        self.pos = segments[0][0] if segments and isinstance(segments[0], tuple) else 0
        self.paused = False
        self.done = False
        self.sent = 0
        self.filter = None
        self.chunked = False
        self.wrote = 0

    def start(self) -> None:
        ctx = self.ctx
        ctx.head_sent = True
        ctx.bytes_sent = len(self.head)
        self.conn.writer = self
        self.conn.write(self.head)
        self.pump()

    def pump(self) -> None:
        conn = self.conn
        segments = self.segments
        try:
            while not self.paused and not self.done:
                if conn.closing:
                    return self.client_gone()
                if self.index >= len(segments):
                    return self._finish()
                seg = segments[self.index]
                if seg.__class__ is bytes:     # a multipart part's head (chunked: add_trailer)
                    if self.filter is not None:
                        self._write_filtered(seg)
                    else:
                        conn.write(seg)
                    self.sent += len(seg)
                    self._next_segment()
                    continue
                end = seg[1]
                buf = _SPARE.pop() if _SPARE else bytearray(CHUNK)
                view = memoryview(buf)
                n = os.preadv(self.fd, [view[:min(CHUNK, end - self.pos)]], self.pos)
                if not n:
                    _SPARE.append(buf)
                    return self._truncated()
                self.pos += n
                self.sent += n
                if self.pos >= end:
                    self._next_segment()
                if self.filter is not None:
                    self._write_filtered(self.filter.data(view[:n]))
                    _SPARE.append(buf)
                    continue
                conn.write(view[:n] if n < CHUNK else view)
                if conn.transport.get_write_buffer_size() == 0:
                    _SPARE.append(buf)      # the transport kept no reference: reuse it
        except OSError:
            self._truncated()

    def _write_filtered(self, data: bytes) -> None:
        if data:
            if self.chunked:
                data = b"%x\r\n%b\r\n" % (len(data), data)
            self.wrote += len(data)
            self.conn.write(data)

    def _next_segment(self) -> None:
        self.index += 1
        if self.index < len(self.segments):
            nxt = self.segments[self.index]
            if nxt.__class__ is tuple:
                self.pos = nxt[0]

    # ------------------------------------------------------------ the connection's writer API

    def downstream_paused(self) -> None:
        self.paused = True

    def downstream_resumed(self) -> None:
        if self.paused:
            self.paused = False
            self.pump()

    def client_gone(self) -> None:
        if self.done:
            return
        self._close()
        log.log_request(self.ctx)

    # ------------------------------------------------------------ endings

    def _close(self) -> None:
        self.done = True
        os.close(self.fd)
        if self.conn.writer is self:
            self.conn.writer = None

    def _finish(self) -> None:
        f = self.filter
        if f is not None:
            self._write_filtered(f.finish())
            if postpone.defer_end(f, self.ctx, self._end_filtered):
                os.close(self.fd)
                self.done = True
                return
            if self.chunked:
                last = trailers.last_chunk(self.ctx)
                self.conn.write(last)
                self.wrote += len(last)
            self.sent = self.wrote
        self._close()
        ctx = self.ctx
        ctx.body_bytes_sent = self.sent
        ctx.bytes_sent += self.sent
        self.conn.finish_request(ctx)

    def _end_filtered(self) -> None:
        """The end of a file response whose subrequests outlived the file."""
        if self.chunked:
            last = trailers.last_chunk(self.ctx)
            self.conn.write(last)
            self.wrote += len(last)
        ctx = self.ctx
        ctx.body_bytes_sent = self.wrote
        ctx.bytes_sent += self.wrote
        self.conn.finish_request(ctx)

    def _truncated(self) -> None:
        self._close()
        truncated(self.ctx, self.sent)


def connection_line(ctx) -> bytes:
    """The Connection header line of a response the static modules make."""
    return ctx.conf.keepalive_line if ctx.keep_alive else resp.CONN_CLOSE


def write_whole(ctx, head: bytes, body: bytes, body_len: int) -> None:
    """A whole response (head, and the body of a small one) written at once; the request ends."""
    ctx.head_sent = True
    conn = ctx.conn
    if not conn.closing:
        conn.write(head + body if body else head)
    ctx.body_bytes_sent = body_len
    ctx.bytes_sent = len(head) + len(body)
    conn.finish_request(ctx)
