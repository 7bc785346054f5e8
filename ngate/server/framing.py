"""Framing of the HTTP/1.x downstream connection (server/connection.py): what the next bytes are.

One state at a time, in _feed:
  head     -> bytes up to the first empty line (empty lines before a request line are skipped);
              a bare CR is refused (400) as nginx does, a CR ending a segment waits for the next
              one. Parsed by server/request_head.py (http1/request.py's nginx rules).
  length   -> `_left` bytes of a Content-Length body
  chunked  -> http1/request.py's ChunkedDecoder (nginx's chunked parser; trailers dropped)
  discard  -> nothing more is read as HTTP (after an HTTP/0.9 request or a refused head)
  held     -> after a request carrying Upgrade (server/connection.py)
Body bytes go to the request's body consumer or are buffered (bounded: reading pauses). An error
in a body ends its request (400) and the connection; a refused pipelined head or body is answered
in its turn, after the requests before it; pipelined requests wait in `queue` (reading paused).

Framing is a mixin of HttpConnection (no state of its own: the slots are HttpConnection's).
"""
from __future__ import annotations

import re
from collections import deque
from typing import TYPE_CHECKING

from ngate.http import downstream
from ngate.http1.request import (BodyError, HeadError, head_end, parse_request_line,
                                 user_agent_before_bare_cr, user_agent_of)
from ngate.server import flow
from ngate.server.request_head import _DISCARD

if TYPE_CHECKING:
    from ngate.server.request_head import Request

_BODY_BUFFER_LIMIT = 65536
_CRLF = b"\r\n"
# a request line still arriving: a method, then anything but control bytes (a CR may end it)
_PARTIAL_LINE = re.compile(rb"[A-Z_-]*(?: [^\x00-\x1f\x7f]*)?\r?\Z")


class Framing:
    """Request heads, Content-Length bodies and chunked bodies, framed and routed."""
    __slots__ = ()

    def _feed(self, data: bytes) -> None:
        """Frame the bytes: request heads, Content-Length bodies, chunked bodies (states in the
        module docstring); each piece goes to the parser that owns it."""
        while data:
            if self.closing:
                break
            if self.held is not None:
                self.held += data
                if len(self.held) > _BODY_BUFFER_LIMIT:
                    flow.pause(self)
                break
            left = self._left
            if left > 0:
                data = self._feed_length(data, left)
            elif left < 0:
                break           # _DISCARD: nothing after this point is read as HTTP
            elif self._chunked is not None:
                data = self._feed_chunked(data)
            else:
                data = self._feed_head(data)
        self._more = False

    def _feed_head(self, data: bytes) -> bytes:
        """Bytes of a request head; returns what follows a completed head."""
        buf = self._buf
        if buf is None:
            parsed = self.listen.heads.get(data)
            if parsed is not None and self.runtime.stats is None:
                # a head seen before, alone in this read: the table's keys are whole heads
                # (each ends at its first empty line), so nothing follows it and no search
                # for its end is needed (stub_status's Reading count: the path below)
                self._head(data, parsed)
                return b""
            if data[0] in _CRLF:            # nginx skips empty lines before a request line
                data = data.lstrip(b"\r\n")
                if not data:
                    return b""
            end = data.find(b"\n\r\n")          # head_end(data), inlined for the usual case
            lf = data.find(b"\n\n", 0, end if end >= 0 else len(data))
            end = lf + 2 if lf >= 0 else end + 3 if end >= 0 else -1
            if end > 0:                     # the usual case: a whole head in one read
                if self.runtime.stats is not None:
                    self._begin_head()          # Reading for stub_status until _head ends it
                if end < len(data):
                    self._more = True
                    self._rest = data[end:]
                    self._head(data[:end])
                    rest, self._rest = self._rest, None
                    return rest
                self._head(data)
                return b""
            buf = self._buf = bytearray()
            self._begin_head()
            self._line_done = False
        old = len(buf)
        buf += data
        end = head_end(buf, old - 2 if old > 2 else 0)
        seg = buf[old - 1 if old else 0:end if end > 0 else len(buf)]
        if end < 0 and seg[-1:] == b"\r":
            seg = seg[:-1]      # its LF may come in the next segment: not bare yet
        if seg.count(b"\r") != seg.count(b"\r\n"):
            return self._bare_cr()
        if end < 0:
            self._partial_head(buf)
            return b""
        self._buf = None
        self._rest = rest = bytes(buf[end:])
        self._more = bool(rest)
        self._head(bytes(buf[:end]))
        rest, self._rest = self._rest, None
        return rest

    def _partial_head(self, buf: bytearray) -> None:
        """A head still arriving: its request line is judged as soon as it is complete (an
        HTTP/0.9 request has nothing more), its size against large_client_header_buffers."""
        nl = buf.find(b"\n")
        if nl < 0:
            if _PARTIAL_LINE.match(buf) is None:     # nginx refuses at the first bad byte
                self._url = b""
                return self._reject(HeadError(400, "client sent invalid request"))
            limit_line = self.listen.limit_line
            if len(buf) > limit_line:
                self._url = bytes(buf[:limit_line])
                self._reject(HeadError(414, "client sent too long URI"))
            return
        if not self._line_done:
            self._line_done = True
            line = bytes(buf[:nl - 1 if nl and buf[nl - 1] == 13 else nl])
            try:
                method, target, version = parse_request_line(line)
            except HeadError as exc:
                self._url = line.strip()
                return self._reject(exc)
            if version == "0.9":        # complete: nginx reads no headers after it
                self._buf = None
                self._end_head()
                self._cancel_timer()
                self._url = target
                return self._http09(method, target)
        listen = self.listen
        if len(buf) - buf.rfind(b"\n") > listen.limit_line \
                or len(buf) > listen.limit_total + listen.limit_line:
            err = HeadError(494, "client sent too long header line")
            # the complete lines were parsed (msie_padding reads their User-Agent)
            err.user_agent = user_agent_of(bytes(buf[nl + 1:buf.rfind(b"\n")]).replace(
                b"\r\n", b"\n").split(b"\n"))
            self._reject(err)

    def _bare_cr(self) -> bytes:
        err = HeadError(400, "client sent invalid request")
        err.user_agent = user_agent_before_bare_cr(self._buf)
        self._buf = None
        self._reject(err)
        return b""

    def _feed_length(self, data: bytes, left: int) -> bytes:
        """Bytes of a body with a Content-Length."""
        n = len(data)
        if n < left:
            self._left = left - n
            self._body(data)
            return b""
        self._left = 0
        if n == left:
            self._body(data)
            self._message_complete()
            return b""
        self._body(data[:left])
        self._more = True
        self._message_complete()
        return data[left:]

    def _feed_chunked(self, data: bytes) -> bytes:
        """Bytes of a chunked body (trailers are consumed by the decoder and dropped)."""
        try:
            end = self._chunked.feed(data, self._body)
        except BodyError as exc:
            self._chunked = None
            self._body_error(str(exc))
            return b""
        if end < 0:
            return b""
        self._chunked = None
        self._more = end < len(data)
        self._message_complete()
        return data[end:]

    def discard_buffered(self) -> None:
        """ngx_http_discard_request_body reads what came with the head at once: a chunked
        body's bytes of this read are framed now (invalid: _body_error's 400), not after the
        response (http1/discard.py)."""
        rest = self._rest
        if rest and self._chunked is not None:
            self._rest = self._feed_chunked(rest)

    def _dispatch(self, req: Request) -> None:
        if self.current is None:
            self.current = req
            if self.runtime.stats is not None:
                self.runtime.stats.request_started(req.ctx)
            self.start_request(req.ctx, req)
        else:
            req.ctx.pipelined = True
            if self.queue is None:
                self.queue = deque()
            self.queue.append(req)
            self.transport.pause_reading()     # raw: once per pipelined request

    def _body(self, body: bytes) -> None:
        req = self._body_req
        if req is None or req.discard:
            return
        req.body_size += len(body)
        req.ctx.request_length += len(body)
        if req.consumer is not None:
            req.consumer.body_data(body)
            return
        if req.body is None:
            req.body = [body]
        else:
            req.body.append(body)
        if req.body_size > _BODY_BUFFER_LIMIT and req.ctx.body_chunked is False:
            flow.pause(self)

    def _message_complete(self) -> None:
        req = self._body_req
        self._body_req = None
        if req is None:
            return
        req.complete = True
        if req.discard:
            if req is self.current:
                self._next_request()
            return
        if req.consumer is not None:
            req.consumer.body_end()

    def _body_error(self, message: str) -> None:
        """A body nginx refuses: its request ends with 400 and the connection closes (a queued
        request gets its 400 in turn); nothing more is read."""
        req = self._body_req
        self._body_req = None
        self._left = _DISCARD
        if req is None or req.discard:
            self.closing = True
            self.transport.close()
            return
        if req is not self.current:         # pipelined: never started; answered in its turn
            self.queue.remove(req)
            self.rejected = (HeadError(400, "client sent invalid chunked body"),
                             req.ctx.request_uri.encode("latin-1"))
            return
        downstream.body_error(req.ctx, message)
        self.closing = True
        self.transport.close()

    def _begin_head(self) -> None:
        self._in_head = True
        if self.runtime.stats is not None:
            self.runtime.stats.head_started()

    def _end_head(self) -> None:
        """A head is no longer being read (complete, refused or abandoned): stub_status's
        Reading count follows."""
        if self._in_head:
            self._in_head = False
            if self.runtime.stats is not None:
                self.runtime.stats.head_ended()

    def _reset_framing(self) -> None:
        self._buf = None
        self._left = 0
        self._chunked = None
        self._body_req = None
        self._end_head()

    def _reject(self, err: HeadError) -> None:
        """Answer a bad head with nginx's status page and close; a pipelined one waits its turn
        (the requests before it are answered first, as nginx reads it only then). Nothing
        after a refused head is read as HTTP."""
        self._buf = None
        self._end_head()
        self._left = _DISCARD
        self._chunked = None
        if self.current is not None:
            self.rejected = (err, self._url)
            flow.pause(self)
            return
        self._cancel_timer()
        downstream.reject_head(self, err.status, err.message, self._url, err.user_agent)
