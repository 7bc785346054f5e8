"""The downstream HTTP/1.x connection: an asyncio Protocol around httptools (llhttp).

States of a connection:
  reading head  -> headers parsed: a RequestContext is made and handed to the engine
  in request    -> the engine answers (directly or through an upstream); body bytes that arrive
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
from collections import deque

import httptools

from ngate.observability import error_log
from ngate.proxy import engine
from ngate.proxy.context import RequestContext

_BARE_CR = re.compile(rb"\r(?!\n)")
_VALID_NAME = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
_VALID_NAME_US = _VALID_NAME + b"_"
_BODY_BUFFER_LIMIT = 65536


_SINGLE_HEADERS = {b"host": "Host", b"content-length": "Content-Length",
                   b"transfer-encoding": "Transfer-Encoding"}
_NAME_CACHE_MAX = 4096
# header name as sent -> its lower-case key, or b"" when nginx ignores it; one table per
# (underscores_in_headers, ignore_invalid_headers) setting
_NAME_TABLES: dict[tuple, dict] = {}


def name_table(underscores: bool, ignore_invalid: bool) -> dict:
    """The header-name cache shared by every connection with these settings."""
    return _NAME_TABLES.setdefault((underscores, ignore_invalid), {})


def header_key(name: bytes, underscores: bool, ignore_invalid: bool) -> bytes:
    """The lower-case key for a request header name, or b"" if nginx would ignore the header."""
    if name.translate(None, _VALID_NAME_US if underscores else _VALID_NAME):
        if ignore_invalid or b"_" in name and not name.translate(None, _VALID_NAME_US):
            return b""
    return name.lower()


class HeadError(Exception):
    """A request head is refused before routing (status and log message)."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Request:
    """A parsed request waiting for, or in, the engine; body events are routed through it."""
    __slots__ = ("ctx", "body", "body_size", "complete", "consumer", "upgrade", "discard")

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self.body = None          # list of buffered chunks until a consumer attaches
        self.body_size = 0
        self.complete = False     # the whole message (body included) was received
        self.consumer = None      # object with body_data(bytes) and body_end()
        self.upgrade = False
        self.discard = False      # the response is done; drop remaining body bytes


class HttpConnection:
    __slots__ = (
        "runtime", "listen", "transport", "parser", "number", "requests",
        "remote_addr", "remote_port", "server_addr", "server_port", "scheme",
        # parsing state
        "_url", "_headers", "_hdr", "_head_bytes", "_in_head", "_underscores", "_ignore_invalid",
        "_limit_line", "_limit_total", "_names",
        # request state
        "current", "queue", "writer", "closing", "write_paused", "held", "timer", "tls",
        "deadline", "write_mark", "lost", "rejected", "linger",
        "proxy_protocol",   # server/proxy_protocol.py ProxyHeader, or None
    )
    handed_over = False     # a fresh accept (server/tls.py's connections are handed over)

    def __init__(self, runtime, listen) -> None:
        self.runtime = runtime
        self.listen = listen            # server/runtime.py ListenState
        self.transport = None
        self.parser = None
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
        self._in_head = False

    # ------------------------------------------------------------ asyncio Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport
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
        self._new_parser()
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
        if (self._in_head or self.current is None) and data.count(b"\r") != data.count(b"\r\n"):
            # nginx refuses a bare CR in the head; llhttp's LF leniency would accept it
            if self._bare_cr_in_head(data):
                self._reject(HeadError(400, "client sent invalid request"))
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args else len(data)
            rest = data[offset:]
            self.held = bytearray(rest)
            if self.current is not None:
                self.current.upgrade = True
        except HeadError as exc:
            self._reject(exc)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, HeadError):
                self._reject(cause)
            else:
                raise
        except httptools.HttpParserError as exc:
            self._parse_error(exc)

    def _bare_cr_in_head(self, data: bytes) -> bool:
        end = data.find(b"\n\r\n")
        end2 = data.find(b"\n\n")
        ends = [e for e in (end, end2) if e >= 0]
        head = data[:min(ends) + 1] if ends else data    # up to the LF: "\r\n" is not bare
        return _BARE_CR.search(head) is not None

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        self.lost = exc
        if not self.closing and self.current is None and self.requests and not self._in_head:
            error_log.info("client %s closed keepalive connection" % self.remote_addr, self.number)
        self.closing = True
        self._cancel_timer()
        self.runtime.connection_closed(self)
        if self._in_head and self.runtime.stats is not None:
            self.runtime.stats.head_ended()
        cur = self.current
        if cur is not None and not cur.discard:
            engine.client_closed(cur.ctx)
        if cur is not None and cur.ctx.stat_writing and self.runtime.stats is not None:
            self.runtime.stats.request_done(cur.ctx)     # ended without a log line
        self.current = None
        self.queue = None
        # the parser holds this connection's bound methods: break that cycle, or the connection
        # (and over TLS its transport, SSL object and buffers) waits for the rarely-run cyclic GC
        self.parser = None

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
                self._arm(self.runtime.keepalive_timeout_for(self), self._keepalive_timeout)
        w = self.writer
        if w is not None:
            w.downstream_resumed()

    # ------------------------------------------------------------ httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._hdr = {}
        self._head_bytes = 0
        self._in_head = True
        if self.runtime.stats is not None:
            self.runtime.stats.head_started()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._limit_line:
            raise HeadError(414, "client sent too long URI")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 4
        self._head_bytes += size
        if size > self._limit_line or self._head_bytes > self._limit_total:
            raise HeadError(494, "client sent too long header line")
        names = self._names
        lname = names.get(name)
        if lname is None:
            lname = header_key(name, self._underscores, self._ignore_invalid)
            if len(names) < _NAME_CACHE_MAX:
                names[name] = lname
        if not lname:
            return          # nginx ignores invalid header names (and "_" ones by default)
        self._headers.append((name, value))
        hdr = self._hdr
        if lname in hdr:
            if lname in _SINGLE_HEADERS:
                raise HeadError(400, 'client sent duplicate header line: "%s"' % _SINGLE_HEADERS[lname])
        else:
            hdr[lname] = value

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_timer()
        stats = self.runtime.stats
        if stats is not None:
            stats.head_ended()
        p = self.parser
        version = p.get_http_version()
        method = p.get_method().decode("latin-1")
        if version not in ("1.1", "1.0"):
            raise HeadError(505 if version.startswith(("2", "3")) else 400, "client sent invalid request")
        url = self._url.decode("latin-1")
        ctx = RequestContext(self, method, url, version, self._headers, self._hdr)
        ctx.request_length = len(self._url) + self._head_bytes + len(method) + 14   # + CRLF CRLF
        self.requests += 1
        hdr = self._hdr
        te = hdr.get(b"transfer-encoding")
        if te is not None:
            if version == "1.0":
                raise HeadError(400, 'client sent HTTP/1.0 request with "Transfer-Encoding" header')
            if te.lower() != b"chunked":
                raise HeadError(501, 'client sent unknown "Transfer-Encoding": "%s"' % te.decode("latin-1"))
            if b"content-length" in hdr:
                raise HeadError(400, 'client sent "Content-Length" and "Transfer-Encoding" headers at the same time')
            ctx.body_chunked = True
        cl = hdr.get(b"content-length")
        if cl is not None:
            if not cl.isdigit():
                raise HeadError(400, 'client sent invalid "Content-Length" header')
            ctx.content_length_in = int(cl)
        ctx.keep_alive = p.should_keep_alive()
        req = Request(ctx)
        if self.current is None:
            self.current = req
            if stats is not None:
                stats.request_started(ctx)
            self.start_request(ctx, req)
        else:
            ctx.pipelined = True
            if self.queue is None:
                self.queue = deque()
            self.queue.append(req)
            self.transport.pause_reading()

    def on_body(self, body: bytes) -> None:
        req = self.queue[-1] if self.queue else self.current
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

    def on_message_complete(self) -> None:
        req = self.queue[-1] if self.queue else self.current
        if req is None:
            return
        req.complete = True
        if req.discard:
            if req is self.current:
                self._next_request()
            return
        if req.consumer is not None:
            req.consumer.body_end()

    def start_request(self, ctx: RequestContext, req: Request) -> None:
        """A parsed request goes to the engine (server/tls.py's subclasses check TLS first)."""
        engine.start_request(ctx, req)

    # ------------------------------------------------------------ used by the engine

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
        try:
            self.transport.write(data)
        except RuntimeError:
            pass    # uvloop: the transport is closed; connection_lost is on its way

    def finish_request(self, ctx: RequestContext) -> None:
        """The response to the current request is completely written."""
        req = self.current
        self.writer = None
        ctx.req = None          # break the ctx <-> Request cycle: reference counting frees both
        engine.log_request(ctx)
        if self.closing:
            return
        if not ctx.keep_alive:
            return self._close_after_response(ctx, req)
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
            or self.rejected is not None or self.held
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
            self._new_parser()
            self.transport.resume_reading()
            if held:
                self._feed(bytes(held))
                return
        if not self.write_paused:     # else send_timeout runs until the response is out
            self._arm(self.runtime.keepalive_timeout_for(self), self._keepalive_timeout)

    def take_held(self) -> bytes:
        """Bytes the client sent after its Upgrade request (the tunnel forwards them first)."""
        held = self.held
        self.held = None
        return bytes(held) if held else b""

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

    def _new_parser(self) -> None:
        p = httptools.HttpRequestParser(self)
        p.set_dangerous_leniencies(lenient_optional_cr_before_lf=True,
                                   lenient_optional_lf_after_cr=True)
        self.parser = p
        self._in_head = False

    def _reject(self, err: HeadError) -> None:
        """Answer a bad head with nginx's status page and close; a pipelined one waits its turn
        (the requests before it are answered first, as nginx reads it only then)."""
        if self.current is not None:
            self.rejected = (err, getattr(self, "_url", b""))
            self.transport.pause_reading()
            return
        self._cancel_timer()
        engine.reject_head(self, err.status, err.message, self._url if hasattr(self, "_url") else b"")

    def _parse_error(self, exc: Exception) -> None:
        msg = str(exc)
        status = 505 if "Invalid HTTP version" in msg else 400
        if "Transfer-Encoding" in msg and "invalid" in msg.lower():
            status = 501 if self.current is None else 400
        if self.current is not None and not self._in_head and not self.current.complete:
            # an error inside a body (bad chunk size): the request being served is broken
            engine.body_error(self.current.ctx, msg)
            self.closing = True
            self.transport.close()
            return
        self._reject(HeadError(status, "client sent invalid request: " + msg))

    def _arm(self, timeout: float, callback) -> None:
        """One coarse deadline at a time (server/clock.py): header or keep-alive timeout."""
        if timeout > 0:
            self.timer = callback
            self.deadline = self.runtime.loop.time() + timeout
            self.runtime.deadlines.watch(self)
        elif self.timer is not None:
            self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer = None
            self.runtime.deadlines.unwatch(self)

    def expired(self) -> None:
        callback = self.timer
        self.timer = None
        if callback is not None:
            callback()

    def _header_timeout(self) -> None:
        if self._in_head:
            engine.log_timeout(self, "client timed out while reading client request headers")
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
            engine.client_timeout(cur.ctx, "")
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
            engine.client_timeout(cur.ctx, message)
        else:
            engine.log_timeout(self, message)
        self.abort()

    def _keepalive_timeout(self) -> None:
        if self.current is None and not self._in_head:
            self.closing = True
            self.transport.close()
