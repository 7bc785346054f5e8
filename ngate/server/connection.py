"""The downstream HTTP/1.x connection: an asyncio Protocol around nginx's request parser.

Framing (what the next bytes are), one state at a time, in _feed:
  head     -> bytes up to the first empty line (empty lines before a request line are skipped);
              a bare CR is refused (400) as nginx does, a CR ending a segment waits for the next
              one. Parsed by http1/request.py (nginx's request line and header rules).
  length   -> `_left` bytes of a Content-Length body
  chunked  -> http1/request.py's ChunkedDecoder (nginx's chunked parser; trailers dropped)
  discard  -> nothing more is read as HTTP (after an HTTP/0.9 request or a refused head)
  held     -> after a request carrying Upgrade (below)
An error in a body ends its request (400) and the connection; a refused pipelined head or body
is answered in its turn, after the requests before it.

States of a connection:
  reading head  -> headers parsed: a RequestContext is made and handed to http/phases.py
  in request    -> the HTTP core answers (directly or through an upstream); body bytes that arrive
                   are passed to the request's body consumer or buffered (bounded: reading pauses)
  keep-alive    -> waiting for the next request (keepalive_timeout), pipelined requests queued
  upgrading     -> a request carrying Upgrade is in flight: further bytes are held unparsed until
                   the upstream answers (101: the tunnel takes both transports; else HTTP resumes)
  closed

Write backpressure: pause_writing/resume_writing from the transport are passed to whoever is
producing the response (an upstream exchange pauses its upstream socket).

Timeouts share one coarse deadline (server/clock.py), by state: client_header_timeout while a
head is incomplete, client_body_timeout while a body is incomplete and being read (re-armed by
every read; not while reading is paused by upstream backpressure), send_timeout while writing is
paused (re-armed while the write buffer shrinks), keepalive_timeout between requests. A body
timeout ends the request as nginx does: status 408, nothing sent, connection closed; a send
timeout is logged ("client timed out ... while sending to client") and the connection aborted.
"""
from __future__ import annotations

import re
import time
from collections import deque

from ngate.http1.request import (MAX_OFF_T, BodyError, ChunkedDecoder, HeadError, head_end,
                                 parse_request_line, split_header)
from ngate.observability import error_log
from ngate.server import ratelimit
from ngate.http import downstream, log, phases
from ngate.server.clock import OneTimer
from ngate.http.context import RequestContext

_VALID_NAME = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
_VALID_NAME_US = _VALID_NAME + b"_"
_BODY_BUFFER_LIMIT = 65536
_MAX_HEADERS = 1000         # nginx: more header lines get 400 "client sent too many header lines"
_DISCARD = -1               # _left: nothing more is read as HTTP (after HTTP/0.9 or a refusal)
_CRLF = b"\r\n"
# a request line still arriving: a method, then anything but control bytes (a CR may end it)
_PARTIAL_LINE = re.compile(rb"[A-Z_-]*(?: [^\x00-\x1f\x7f]*)?\r?\Z")


_SINGLE_HEADERS = {b"host": "Host", b"content-length": "Content-Length",
                   b"transfer-encoding": "Transfer-Encoding"}
_NAME_CACHE_MAX = 4096
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}
_LINE_CACHE_LEN = 64        # short header lines recur (Accept, Host ...): their parse is kept
# header name as sent -> its lower-case key, or b"" when nginx ignores it; one table per
# (underscores_in_headers, ignore_invalid_headers) setting
_NAME_TABLES: dict[tuple, dict] = {}
_LINE_TABLES: dict[tuple, dict] = {}
_HEAD_TABLES: dict[tuple, dict] = {}
_HEAD_CACHE_LEN = 1024      # longer heads are parsed every time (cookies vary, memory)
_HEAD_CACHE_MAX = 1024      # heads kept per table (emptied when full)


def name_table(underscores: bool, ignore_invalid: bool) -> dict:
    """The header-name cache shared by every connection with these settings."""
    return _NAME_TABLES.setdefault((underscores, ignore_invalid), {})


def line_table(underscores: bool, ignore_invalid: bool) -> dict:
    """Short header lines as sent -> ((name, value), lower-case key or b""): the parse of a
    line depends on these settings alone, and the same lines recur from request to request
    (the (name, value) pair goes into the request's header list as it is)."""
    return _LINE_TABLES.setdefault((underscores, ignore_invalid), {})


def head_table(listen) -> dict:
    """Whole request heads as sent -> their parse (HttpConnection._head), shared by the
    connections whose parse settings are the same (the header rules and the size limits)."""
    return _HEAD_TABLES.setdefault((listen.underscores, listen.ignore_invalid, listen.limit_line,
                                    listen.limit_total), {})


def header_key(name: bytes, underscores: bool, ignore_invalid: bool) -> bytes:
    """The lower-case key for a request header name, or b"" if nginx would ignore the header."""
    if name.translate(None, _VALID_NAME_US if underscores else _VALID_NAME):
        if ignore_invalid or b"_" in name and not name.translate(None, _VALID_NAME_US):
            return b""
    return name.lower()


class Http09Transport:
    """The transport of an HTTP/0.9 request: the response goes out without its head (nginx
    writes no status line or headers to HTTP/0.9 clients)."""

    def __init__(self, transport) -> None:
        self._transport = transport
        self._head = b""        # the head so far; None once it has been dropped

    def write(self, data) -> None:
        if self._head is not None:
            data = self._head + bytes(data)
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._head = data
                return
            self._head = None
            data = data[end + 4:]
        if data:
            self._transport.write(data)

    def writelines(self, chunks) -> None:
        for c in chunks:
            self.write(c)

    def __getattr__(self, name):
        return getattr(self._transport, name)


class Request:
    """A parsed request waiting for, or in, the HTTP core; body events are routed through it."""
    __slots__ = ("ctx", "body", "body_size", "complete", "consumer", "upgrade", "discard")

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self.body = None          # list of buffered chunks until a consumer attaches
        self.body_size = 0
        self.complete = False     # the whole message (body included) was received
        self.consumer = None      # object with body_data(bytes) and body_end()
        self.upgrade = False
        self.discard = False      # the response is done; drop remaining body bytes


class HttpConnection(OneTimer):
    __slots__ = (
        "runtime", "listen", "transport", "number", "requests",
        "remote_addr", "remote_port", "server_addr", "server_port", "scheme",
        # parsing state
        "_url", "_buf", "_line_done", "_more", "_rest", "_left", "_chunked", "_body_req",
        "_in_head", "_heads",
        "_underscores", "_ignore_invalid", "_limit_line", "_limit_total", "_names", "_lines",
        # request state
        "current", "queue", "writer", "closing", "write_paused", "held", "timer", "tls",
        "deadline", "write_mark", "lost", "rejected", "linger",
        "proxy_protocol",   # server/proxy_protocol.py ProxyHeader, or None
        "started", "ka_timeout",
        "rate_check",       # limit_rate in the config or set by a request: writes go through
        "limiter",          # server/ratelimit.py RateLimiter of the current response (or False)
    )
    handed_over = False     # a fresh accept (server/tls.py's connections are handed over)
    trace = None            # the HTTP core's recorder: only ngate explain's stand-in has one

    def __init__(self, runtime, listen) -> None:
        self.runtime = runtime
        self.listen = listen            # server/runtime.py ListenState
        self.transport = None
        self._url = b""
        self._buf = None                # bytearray: a request head that has not arrived whole
        self._line_done = False         # its request line was checked
        self._left = 0                  # Content-Length body bytes still to read (or _DISCARD)
        self._chunked = None            # http1/request.py ChunkedDecoder of a chunked body
        self._body_req = None           # the Request whose body is being read
        self._more = False              # bytes after the piece being handled wait in this read
        self._rest = None               # those bytes while a head is dispatched (discard_buffered)
        self.number = 0
        self.requests = 0
        self.scheme = listen.scheme
        self.current: Request | None = None
        self.queue: deque | None = None
        self.writer = None              # the response producer (for pause/resume_writing)
        self.closing = False
        self.write_paused = False
        self.held: bytearray | None = None   # bytes after an Upgrade request, unparsed
        self.timer = None
        self.tls = None
        self.write_mark = 0             # write buffer size when send_timeout was last armed
        self.lost = None                # the exception connection_lost reported (None: EOF)
        self.rejected = None            # (HeadError, url) of a bad pipelined head, answered in turn
        self.linger = None              # lingering close: (end time, lingering_timeout)
        self.proxy_protocol = None
        self._underscores = listen.underscores
        self._ignore_invalid = listen.ignore_invalid
        self._limit_line = listen.limit_line
        self._limit_total = listen.limit_total
        self._names = listen.names
        self._lines = line_table(self._underscores, self._ignore_invalid)
        self._heads = head_table(listen)
        self._in_head = False           # a head has begun and is not complete
        self.ka_timeout = runtime.keepalive_timeout_for(self)   # the last request's location's
        self.rate_check = runtime.config.limit_rate_used
        self.limiter = None

    # ------------------------------------------------------------ asyncio Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.started = time.monotonic()     # keepalive_time, $connection_time
        if not self.runtime.connection_opened(self):
            self.closing = True
            return
        self.number = self.runtime.next_connection_number()
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.remote_addr, self.remote_port = peer[0], str(peer[1])
            local = self.listen.local
            if local is None:       # a wildcard address: which one the client reached
                sock = transport.get_extra_info("sockname")
                local = sock[0], str(sock[1])
            self.server_addr, self.server_port = local
        else:   # unix socket
            self.remote_addr, self.remote_port = "unix:", ""
            self.server_addr, self.server_port = "unix:", ""
        if self.listen.ssl_context is not None:
            # Host alone picks the request's server, as nginx 1.22 (the SNI server does not
            # become the default: checked against nginx)
            self.tls = transport.get_extra_info("ssl_object")
        self._arm(self.listen.default_server.client_header_timeout, self._header_timeout)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            if self.linger is not None:
                self._linger_more()
            return
        if self.held is not None:
            self.held += data
            if len(self.held) > _BODY_BUFFER_LIMIT:
                self.transport.pause_reading()
            return
        starting = self._in_head is False and self.current is None
        self._feed(data)
        if starting and self._in_head:
            # a head that did not arrive whole: client_header_timeout runs from its first bytes
            # (a head that did needs no timer: the common case costs nothing)
            self._arm(self.listen.default_server.client_header_timeout, self._header_timeout)
        cur = self.current
        if cur is not None and not cur.complete and not self._in_head and not self.write_paused \
                and not self.closing and self.held is None:
            self._arm((cur.ctx.conf or self.listen.default_server.conf).client_body_timeout,
                      self._body_timeout)

    def _feed(self, data: bytes) -> None:
        """Frame the bytes: request heads, Content-Length bodies, chunked bodies (states in the
        module docstring); each piece goes to the parser that owns it."""
        while data:
            if self.closing:
                break
            if self.held is not None:
                self.held += data
                if len(self.held) > _BODY_BUFFER_LIMIT:
                    self.transport.pause_reading()
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
            if len(buf) > self._limit_line:
                self._url = bytes(buf[:self._limit_line])
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
        if len(buf) - buf.rfind(b"\n") > self._limit_line or len(buf) > self._limit_total + self._limit_line:
            self._reject(HeadError(494, "client sent too long header line"))

    def _bare_cr(self) -> bytes:
        self._buf = None
        self._reject(HeadError(400, "client sent invalid request"))
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

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        self.lost = exc
        if not self.closing and self.current is None and self.requests and not self._in_head:
            error_log.info("client %s closed keepalive connection" % self.remote_addr, self.number)
        self.closing = True
        self.timer = None
        self.runtime.deadlines.unwatch(self)    # also when _head left it watched without a timer
        if self.limiter:
            self.limiter.cancel()
            self.limiter = None
        self.runtime.connection_closed(self)
        self._end_head()
        cur = self.current
        if cur is not None and not cur.discard:
            downstream.client_closed(cur.ctx)
        if cur is not None and cur.ctx.stat_writing and self.runtime.stats is not None:
            self.runtime.stats.request_done(cur.ctx)     # ended without a log line
        self.current = None
        self.queue = None
        self._body_req = None

    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_mark = self.transport.get_write_buffer_size()
        self._arm(self._send_timeout_value(), self._send_timeout)
        w = self.writer
        if w is not None:
            w.downstream_paused()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.timer == self._send_timeout:
            self._cancel_timer()
            if self.current is None and not self._in_head and not self.closing:
                self._arm(self.ka_timeout, self._keepalive_timeout)
        w = self.writer
        if w is not None:
            w.downstream_resumed()

    # ------------------------------------------------------------ request heads and bodies

    def _head(self, head: bytes) -> None:
        """A complete request head: parse it as nginx does, make its Request, dispatch it.

        Clients send the same heads again and again (the same request line and headers, on
        one connection and on many): heads accepted are kept with their parse in a bounded
        table shared by the connections with the same parse settings (head_table), and an
        identical head reuses it (the parse depends on the bytes and those settings alone);
        its header list and dict are copied for the new request."""
        if self._in_head:
            self._end_head()
        if self.timer is not None:
            self.timer = None       # stays watched until the next tick drops it (re-armed
            self.deadline = 0.0     # after the response, usually before that tick)
        heads = self._heads
        parsed = heads.get(head)
        if parsed is not None:
            (method, uri, version, headers, hdr, target, length, chunked, keep_alive,
             upgrade) = parsed
            self._url = target
        else:
            parsed = self._parse_head(head)
            if parsed is None:
                return
            (method, uri, version, headers, hdr, target, length, chunked, keep_alive,
             upgrade) = parsed
            if len(head) <= _HEAD_CACHE_LEN:
                if len(heads) >= _HEAD_CACHE_MAX:
                    heads.clear()
                heads[head] = parsed
        headers = list(headers)
        hdr = dict(hdr)
        ctx = RequestContext(self, method, uri, version, headers, hdr)
        ctx.request_length = len(head)
        ctx.keep_alive = keep_alive
        self.requests += 1
        req = Request(ctx)
        self._body_req = req
        if upgrade:
            # a protocol switch: what follows is held unparsed until the upstream answers
            req.upgrade = req.complete = True
            self.held = bytearray()
        elif chunked:
            ctx.body_chunked = True
            self._chunked = ChunkedDecoder()
        elif length is not None:
            ctx.content_length_in = length
            if length:
                self._left = length
            else:
                req.complete = True
        else:
            req.complete = True
        if self.current is None:
            self.current = req
            if self.runtime.stats is not None:
                self.runtime.stats.request_started(ctx)
            self.start_request(ctx, req)
        else:
            self._dispatch(req)

    def _parse_head(self, head: bytes):
        """The parse of a head: (method, request URI (str), version, headers, hdr, target
        (bytes), Content-Length, chunked, keep-alive, upgrade), or None when it was refused (or
        was an HTTP/0.9 request, dispatched here)."""
        lines = head.split(b"\r\n")
        crlf = len(lines) - 1
        if head.count(b"\r") != crlf:             # a bare CR (nginx: 400)
            self._url = b""
            return self._reject(HeadError(400, "client sent invalid request"))
        if head.count(b"\n") != crlf:            # some lines end in LF alone
            lines = head.replace(b"\r\n", b"\n").split(b"\n")
        del lines[-2:]
        line = lines[0]
        try:
            method, target, version = parse_request_line(line)
        except HeadError as exc:
            self._url = line.strip()
            return self._reject(exc)
        self._url = target
        if version == "0.9":
            return self._http09(method, target)
        if len(target) > self._limit_line:
            return self._reject(HeadError(414, "client sent too long URI"))
        try:
            if b"\0" in head:
                raise HeadError(400, "client sent invalid header line")
            if len(head) > self._limit_line:
                self._header_sizes(lines)
            headers, hdr = self._headers_of(lines)
        except HeadError as exc:
            return self._reject(exc)
        te = hdr.get(b"transfer-encoding")
        cl = hdr.get(b"content-length")
        length = None
        try:
            if te is not None:
                if version == "1.0":
                    raise HeadError(400, 'client sent HTTP/1.0 request with "Transfer-Encoding" header')
                if te.lower() != b"chunked":
                    raise HeadError(501, 'client sent unknown "Transfer-Encoding": "%s"' % te.decode("latin-1"))
                if cl is not None:
                    raise HeadError(400, 'client sent "Content-Length" and "Transfer-Encoding" headers at the same time')
            elif cl is not None:
                if not cl.isdigit() or len(cl) > 18 and int(cl) > MAX_OFF_T:
                    raise HeadError(400, 'client sent invalid "Content-Length" header')
                length = int(cl)
        except HeadError as exc:
            # counted as a request, as before the parse was split out (nginx: $connection_requests)
            self.requests += 1
            return self._reject(exc)
        conn = hdr.get(b"connection")
        if conn is None:
            keep_alive = version != "1.0"
        else:       # nginx: "close" anywhere wins, else "keep-alive" anywhere (HTTP/1.0)
            conn = conn.lower()
            keep_alive = b"close" not in conn and (version != "1.0" or b"keep-alive" in conn)
        upgrade = b"upgrade" in hdr and conn is not None and b"upgrade" in conn
        return (_METHODS.get(method) or method.decode("latin-1"), target.decode("latin-1"),
                version, headers, hdr, target, length, te is not None, keep_alive, upgrade)

    def _header_sizes(self, lines: list) -> None:
        """large_client_header_buffers: no header line longer than one buffer, all of them
        within all the buffers (checked only for heads that could exceed them)."""
        limit_line = self._limit_line
        total = 0
        for line in lines[1:]:
            size = len(line) + 2
            total += size
            if size > limit_line or total > self._limit_total:
                raise HeadError(494, "client sent too long header line")

    def _headers_of(self, lines: list) -> tuple[list, dict]:
        """The header lines of a head, after its request line (nginx's names and values)."""
        it = iter(lines)
        next(it)
        headers = []
        hdr = {}
        names = self._names
        seen = self._lines
        for line in it:
            known = seen.get(line)
            if known is not None:
                pair, lname = known
            else:
                name, sep, value = line.partition(b":")
                lname = names.get(name) if sep else None
                if lname is None:
                    name, value = split_header(line)
                    lname = header_key(name, self._underscores, self._ignore_invalid)
                    if len(names) < _NAME_CACHE_MAX:
                        names[name] = lname
                else:
                    value = value.strip(b" ")
                pair = (name, value)
                if len(line) <= _LINE_CACHE_LEN and len(seen) < _NAME_CACHE_MAX:
                    seen[line] = (pair, lname)
            if not lname:
                continue        # nginx ignores invalid header names (and "_" ones by default)
            headers.append(pair)
            if lname in hdr:
                if lname in _SINGLE_HEADERS:
                    raise HeadError(400, 'client sent duplicate header line: "%s"' % _SINGLE_HEADERS[lname])
            else:
                hdr[lname] = pair[1]
        if len(headers) > _MAX_HEADERS:
            raise HeadError(494, "client sent too many header lines")
        return headers, hdr

    def _http09(self, method: bytes, target: bytes) -> None:
        """An HTTP/0.9 request (a request line without a version): GET only, no headers; the
        response is its body alone (nginx writes no status line or headers), then close."""
        self._left = _DISCARD
        self.transport = Http09Transport(self.transport)
        if method != b"GET":
            return self._reject(HeadError(400, "client sent invalid method in HTTP/0.9 request"))
        ctx = RequestContext(self, "GET", target.decode("latin-1"), "0.9", [], {})
        ctx.keep_alive = False
        ctx.request_length = len(target) + 6
        self.requests += 1
        req = Request(ctx)
        req.complete = True
        self._dispatch(req)

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
            self.transport.pause_reading()

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
            self.transport.pause_reading()

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

    def start_request(self, ctx: RequestContext, req: Request) -> None:
        """A parsed request goes to the HTTP core (server/tls.py's subclasses check TLS first)."""
        phases.start_request(ctx, req)

    # ------------------------------------------------------------ used by the HTTP core (ngate/http/)

    def attach_body(self, req: Request, consumer) -> None:
        """Route this request's body to `consumer` (buffered chunks first)."""
        req.consumer = consumer
        chunks = req.body
        req.body = None
        if chunks:
            for c in chunks:
                consumer.body_data(c)
        if req.complete:
            consumer.body_end()
        elif not self.closing:
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.rate_check:
            return self._rate_write(data)
        try:
            self.transport.write(data)
        except RuntimeError:
            pass    # uvloop: the transport is closed; connection_lost is on its way

    def transport_write(self, data) -> None:
        try:
            self.transport.write(data)
        except RuntimeError:
            pass

    def _rate_write(self, data) -> None:
        """limit_rate: the response's first write decides its rate (server/ratelimit.py)."""
        lim = self.limiter
        if lim is None:
            cur = self.current
            ctx = cur.ctx if cur is not None else None
            rate = 0
            if ctx is not None:
                rate = ctx.limit_rate
                if rate is None:
                    rate = ratelimit.rate_value(ctx.conf.limit_rate, ctx) \
                        if ctx.conf is not None else 0
                    ctx.limit_rate = rate
            lim = self.limiter = ratelimit.RateLimiter(self, ctx, rate) if rate else False
        if lim is False:
            return self.transport_write(data)
        lim.write(data)

    def finish_request(self, ctx: RequestContext) -> None:
        """The response to the current request is completely written."""
        if self.rate_check:
            lim = self.limiter
            if lim and lim.held:
                lim.finish = ctx        # finished once the held bytes went out
                return
            self.limiter = None
        req = self.current
        self.writer = None
        ctx.req = None          # break the ctx <-> Request cycle: reference counting frees both
        log.log_request(ctx)
        if self.closing:
            return
        if not ctx.keep_alive:
            return self._close_after_response(ctx, req)
        if ctx.conf is not None:    # the finished request's location's keepalive_timeout
            self.ka_timeout = ctx.conf.keepalive_timeout
        if req is not None and not req.complete:
            # the body is still arriving: discard it, then go on
            req.discard = True
            req.body = None
            self.transport.resume_reading()
            return
        self._next_request()

    def _close_after_response(self, ctx: RequestContext, req) -> None:
        """The last response is written: close. When the client may still be sending (a body
        not read to its end, a refused head, pipelined requests), nginx's lingering close: our
        side is shut after the response (the client sees its end at once), and what still
        arrives is read and dropped until the client closes, lingering_timeout passes without
        data or lingering_time in all; closing with unread bytes would make the kernel answer
        them with a reset that can destroy the response before the client has read it. Over
        TLS, the close_notify exchange of the TLS transport does this job."""
        self.closing = True
        conf = ctx.conf or self.listen.default_server.conf
        mode = conf.lingering_close
        t = self.transport
        unread = req is None or not req.complete or self._in_head or self.queue \
            or self.rejected is not None or self.held or self._more
        if mode == "off" or mode == "on" and not unread or self.tls is not None \
                or not t.can_write_eof():
            t.close()
            return self._watch_flush()
        t.write_eof()
        self.current = None
        self.queue = None
        self.held = None
        self.linger = (self.runtime.loop.time() + conf.lingering_time, conf.lingering_timeout)
        self._arm(conf.lingering_timeout, self._linger_timeout)
        t.resume_reading()

    def _linger_more(self) -> None:
        """Data while lingering: dropped; lingering_timeout starts again (within lingering_time)."""
        end, timeout = self.linger
        left = end - self.runtime.loop.time()
        if left <= 0:
            return self._linger_timeout()
        self._arm(min(timeout, left), self._linger_timeout)

    def _linger_timeout(self) -> None:
        self.linger = None
        self.transport.close()
        self._watch_flush()

    def _watch_flush(self) -> None:
        """A closed transport still flushing the end of a response: send_timeout watches it (a
        client that stopped reading would otherwise hold the connection for ever)."""
        size = self.transport.get_write_buffer_size()
        if size:
            self.write_mark = size
            self._arm(self._send_timeout_value(), self._send_timeout)

    def _next_request(self) -> None:
        self.current = None
        if self.closing:
            return
        q = self.queue
        if q:
            req = q.popleft()
            self.current = req
            if not q:
                self.transport.resume_reading()
            if self.runtime.stats is not None:
                self.runtime.stats.request_started(req.ctx)
            self.start_request(req.ctx, req)
            return
        if self.rejected is not None:
            err, self._url = self.rejected
            self.rejected = None
            return self._reject(err)
        held = self.held
        if held is not None:
            # an Upgrade request was answered without a tunnel: HTTP resumes on what followed
            self.held = None
            self._reset_framing()
            self.transport.resume_reading()
            if held:
                self._feed(bytes(held))
                return
        if not self.write_paused:     # else send_timeout runs until the response is out
            self._arm(self.ka_timeout, self._keepalive_timeout)

    def take_held(self) -> bytes:
        """Bytes the client sent after its Upgrade request (the tunnel forwards them first)."""
        held = self.held
        self.held = None
        return bytes(held) if held else b""

    def become_tunnel(self) -> tuple[bytes, object]:
        """The connection becomes a tunnel (proxy/tunnel.py): (the bytes the client sent after
        its Upgrade request, the transport). Its HTTP state is dropped here: an idle tunnel
        keeps the two transports only; the runtime counts it as a tunnel from now on."""
        held = self.take_held()
        self.runtime.connection_closed(self)
        self.current = None
        self.queue = None
        self.timer = None
        self.runtime.deadlines.unwatch(self)
        self._body_req = None
        self._url = b""
        return held, self.transport

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def close_if_idle(self) -> bool:
        """Graceful stop: close a keep-alive connection waiting for its next request. A fresh
        connection that has not sent its first request yet is served (nginx closes only
        connections in the keep-alive state): its request may already be on the wire."""
        if self.linger is not None or self.current is None and not self._in_head \
                and self.requests and self.held is None:
            self.closing = True
            self.transport.close()
            return True
        return False

    # ------------------------------------------------------------ internals

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
            self.transport.pause_reading()
            return
        self._cancel_timer()
        downstream.reject_head(self, err.status, err.message, self._url)

    def _arm(self, timeout: float, callback) -> None:
        """One coarse deadline at a time (server/clock.py): header or keep-alive timeout."""
        if timeout > 0:
            self.timer = callback
            self.deadline = self.runtime.loop.time() + timeout
            self.runtime.deadlines.watch(self)
        elif self.timer is not None:
            self._cancel_timer()

    def _header_timeout(self) -> None:
        if self._in_head:
            log.log_timeout(self, "client timed out while reading client request headers")
        self.closing = True
        self.transport.close()

    def _body_timeout(self) -> None:
        """client_body_timeout: no body bytes for that long while reading them."""
        cur = self.current
        if cur is None or cur.complete or self.closing:
            return
        if not self.transport.is_reading():
            # paused by upstream backpressure (the proxy's send timeout applies): check later
            self._arm(self._conf().client_body_timeout, self._body_timeout)
            return
        if not cur.discard:
            downstream.client_timeout(cur.ctx, "")
        self.closing = True
        self.transport.close()

    def _conf(self):
        """The current request's location configuration (the default server's between requests)."""
        cur = self.current
        if cur is not None and cur.ctx.conf is not None:
            return cur.ctx.conf
        return self.listen.default_server.conf

    def _send_timeout_value(self) -> float:
        return self._conf().send_timeout

    def _send_timeout(self) -> None:
        """send_timeout: writing stayed paused (or, once closed, unflushed) that long without the
        buffer shrinking."""
        size = self.transport.get_write_buffer_size()
        if not size or not self.write_paused and not self.closing:
            return
        if size < self.write_mark:      # the client read something: progress
            self.write_mark = size
            self._arm(self._send_timeout_value(), self._send_timeout)
            return
        message = "client timed out (110: Connection timed out) while sending to client"
        cur = self.current
        if cur is not None and not cur.ctx.logged:
            downstream.client_timeout(cur.ctx, message)
        else:
            log.log_timeout(self, message)
        self.abort()

    def _keepalive_timeout(self) -> None:
        if self.current is None and not self._in_head:
            self.closing = True
            self.transport.close()
