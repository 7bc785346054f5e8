"""One HTTP/2 stream as the request phases see it: a downstream connection of its own.

The HTTP core (ngate/http/) and its content handlers talk to `ctx.conn`: they write an
HTTP/1.1 response head (or its fields, write_fields) then body bytes, end with finish_request()
(a whole response ngate made: respond_whole, all three in one step),
pause or resume through `conn.writer` (downstream_paused/downstream_resumed), read the body
through attach_body(), and close or abort. Http2Stream carries that out on its stream:

  head     the HTTP/1.1 head is collected until its empty line and held; it leaves as a
           HEADERS frame (head.py) with the first body bytes, or with END_STREAM at the end
  body     queued, sent as DATA frames of at most http2_chunk_size as the stream and connection
           windows allow (output.py); what a handler writes waits for the end of the client
           read, or of the loop turn (the connection's `sending`), so its end rides the same
           frames: a whole small response is HEADERS + one DATA with END_STREAM in one step.
           Above _HIGH queued bytes the writer (an upstream exchange, the static sender) is
           paused, below _LOW resumed: a slow client pauses its own upstream only. A stream
           that cannot send for send_timeout is reset and logged as nginx does.
  request  stream_body.py: DATA frames to the body consumer, flow control of the stream's
  body     receive window, Content-Length checks, client_body_timeout
  end      finish_request logs the request and ends the stream; a client RST_STREAM or a lost
           connection is the client closing: 499 and the upstream aborted (downstream.client_closed)

No __getattr__: a class with one makes every attribute read of its instances take the slow
generic path (CPython does not specialize LOAD_ATTR for it: ~4x slower reads, and the phases
read `ctx.conn` often); the connection's attributes the request path reads are properties
(_FORWARDED), the rest are slots set here.
"""
from __future__ import annotations

from operator import attrgetter

from ngate.http2.frames import ErrorCodes
from ngate.http2.frames_out import StreamClosed

from ngate.http1.request import BodyError, ChunkedDecoder
from ngate.filters import trailers
from ngate.http2.head import h1_to_h2
from ngate.http2.stream_body import StreamBody
from ngate.http2.stream_transport import StreamTransport
from ngate.observability import error_log
from ngate.http import downstream, log

_NO_HEAD = b""      # a stream's head before anything is written (respond_whole: `is`)
_HIGH = 65536       # queued response bytes above which the producer is paused
_LOW = 16384
# the connection's attributes a downstream connection has (server/connection.py's
# HttpConnection, conn_variables.py, the TLS checks): a stream reads them from its connection
_FORWARDED = ("number", "server_addr", "server_port", "tls", "proxy_protocol", "scheme", "proto",
              "started", "deadline", "conf")


class Http2Stream(StreamBody):
    __slots__ = ("h2c", "sid", "writer", "current", "closing", "write_paused", "ctx", "head",
                 "out", "out_size", "ending", "ended", "chunked", "timer", "requests", "hdrs",
                 "remote_addr", "remote_port", "window", "pending", "body_timer", "unlogged",
                 "listen", "runtime", "__weakref__",
                 # the framing's state of the stream (frames_out.py's StreamState: the stream is
                 # its own, one object a stream), set by Framing where it opens the stream
                 "send_window", "recv_window", "in_closed", "out_closed",
                 "__dict__")    # _RARE's values, once a stream sets one (made by that store)
    handed_over = True
    trace = None
    ka_young = float("-inf")    # (HTTP/1.x's keep-alive test, http/respond.py: never read here)
    line_method = None      # $request's method when not ctx.method (websocket.py: CONNECT)

    # _RARE: state a `return`, static or proxied GET stream never sets (a request body, a lost
    # connection, add_trailer, a StreamTransport): class defaults, not stored per stream (as
    # RequestContext's, http/context.py); a stream that sets one gets an instance __dict__
    stream_transport = None     # the `transport` property's StreamTransport, once asked
    queue = None
    lost = None                 # the exception connection_lost reported
    trailers = None             # add_trailer's fields: a HEADERS frame with END_STREAM
    # the request body (stream_body.py)
    reading = True              # acknowledge body bytes as they are read
    unacked = 0                 # body bytes consumed, not yet acknowledged
    whole = False               # the body is read whole: no flow control
    inbox = None                # body bytes of this read for the reader
    body_seen = 0.0             # when body bytes last came

    # no __init__ (CPython calls a Python __init__ from C, dearer than a method call and the
    # object together): `Http2Stream()` (made by the framing as the stream's state: the
    # connection's `framing.state`) then `open_on(h2c, sid)`
    def open_on(self, h2c, sid: int) -> None:
        # (Http2Connection.on_headers has a copy: a stream it opens; keep the two alike)
        self.h2c = h2c
        self.sid = sid
        self.listen = h2c.listen        # the phases read both (a property each: a call each)
        self.runtime = h2c.runtime
        self.writer = None
        self.current = None         # server/connection.py Request
        self.closing = False
        self.write_paused = False
        self.ctx = None
        self.head = _NO_HEAD        # the response head while it arrives; None once sent
        self.out = None             # response bytes not yet sent (flow control): a bytearray
        #                             made by the first write that queues (a whole response
        #                             sent at once needs none)
        self.out_size = 0
        self.ending = False         # finish_request came: END_STREAM once `out` is sent
        self.ended = False
        self.chunked = None         # a ChunkedDecoder if a handler framed the body in chunks
        self.timer = None           # send_timeout while the windows stay shut
        self.hdrs = None            # the response's HEADERS not sent yet
        self.pending = False        # in the connection's `sending` (write)
        self.body_timer = None      # client_body_timeout while a handler reads the body
        self.unlogged = None        # a finished request logged once its bytes are out
        self.remote_addr = h2c.remote_addr  # the connection's, until realip replaces them
        self.remote_port = h2c.remote_port
        self.requests = h2c.requests
        # the request body (stream_body.py)
        self.window = h2c.conf.http2_body_preread_size  # our receive window as the client sees it

    @property
    def transport(self) -> StreamTransport:
        t = self.stream_transport
        if t is None:
            t = self.stream_transport = StreamTransport(self)
        return t

    # ------------------------------------------------------------ used by the engine

    def write(self, data) -> None:
        if self.closing or self.ended:
            return
        head = self.head
        if head is not None:
            head += bytes(data)
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self.head = head
                return
            self.head = None
            status, headers, chunked = h1_to_h2(head[:end])
            if chunked:
                self.chunked = ChunkedDecoder()
            self.hdrs = headers
            data = head[end + 4:]
            if not data:
                # HEADERS at the end of this read or loop turn, unless the response ends
                # before (then with END_STREAM)
                if not self.pending:
                    self.pending = True
                    self.h2c.send_later(self)
                return
        if self.chunked is not None:
            parts = []
            try:
                self.chunked.feed(bytes(data), parts.append)
            except BodyError:
                return self.reset(ErrorCodes.INTERNAL_ERROR)
            data = b"".join(parts)
            if not data:
                return
        if self.out is None:
            self.out = bytearray(data)
        else:
            self.out += data
        self.out_size += len(data)
        if not self.pending:
            # sent at the end of this client read or loop turn: what the handler writes next
            # (its end, finish_request) goes in the same frames, END_STREAM on the last DATA
            self.pending = True
            self.h2c.send_later(self)
        if self.out_size > _HIGH and not self.write_paused:
            self.write_paused = True
            w = self.writer
            if w is not None:
                w.downstream_paused()

    def write_fields(self, hdrs: list, chunked: bool = False, body: bool = False) -> None:
        """The response head as HEADERS fields (head.response_fields), instead of an HTTP/1.1
        head through write(): the same frames, without building and parsing the head's bytes.
        `body`: the caller writes body bytes now (their send carries the HEADERS); else they
        leave at the end of this read or loop turn, with what the handler writes meanwhile."""
        if self.closing or self.ended:
            return
        self.head = None
        if chunked:
            self.chunked = ChunkedDecoder()
        self.hdrs = hdrs
        if not body and not self.pending:
            # HEADERS at the end of this read or loop turn, with the body written meanwhile
            self.pending = True
            self.h2c.send_later(self)

    def respond_whole(self, ctx, hdrs: list, body: bytes) -> None:
        """A whole response the HTTP core made (respond.py's send_response): its HEADERS fields
        and complete body sent and the stream ended in one step, as write_fields + write +
        finish_request would: HEADERS + one DATA with END_STREAM (HEADERS with END_STREAM if
        no body) when the body fits the windows and http2_chunk_size, else queued."""
        # (head: _NO_HEAD, the b"" stored when the stream opened, until a head is written:
        # any other value, or another empty bytes object, takes the three steps)
        if self.closing or self.ended or self.head is not _NO_HEAD or ctx.trailers is not None:
            self.write_fields(hdrs, False, bool(body))
            if body:
                self.write(body)
            return self.finish_request(ctx)
        req = self.current
        self.writer = None
        ctx.req = None
        self.head = None
        self.ending = True
        if not body:
            log.log_request(ctx)
        # else logged once its bytes are out (below, or Output._ended through `unlogged`)
        h2c = self.h2c
        sent = False
        if not h2c.closing:
            # HEADERS with END_STREAM, or HEADERS + one DATA with END_STREAM when the body fits
            # the windows and the chunk size (Output._chunk's): else nothing sent
            fr = h2c.framing
            c = self.ctx
            chunk = (c.conf or h2c.conf).http2_chunk_size if c is not None \
                else h2c.conf.http2_chunk_size
            try:
                sent = fr.send_response(self.sid, hdrs, body,
                                        chunk if chunk < fr.frame_size else fr.frame_size)
            except StreamClosed:
                if body:
                    self.unlogged = ctx
                self.client_closed()
                h2c.streams.pop(self.sid, None)
                h2c.flush_later()
                sent = None
            if sent:
                if self.timer is None and self.body_timer is None and h2c.prio is None \
                        and (req is None or req.complete):
                    # Output._ended's steps for a stream without timers, a request body left
                    # or priorities (a call less on the usual path)
                    self.ended = True
                    if body:
                        if ctx.logged or ctx.rare:  # (rare: limits, stub_status, realip)
                            log.log_request(ctx)
                        else:
                            # log.log_request's usual case (the line alone), written out as
                            # server/lifecycle.py's finish_request does: two frames less
                            ctx.logged = True
                            conf = ctx.conf
                            writers = self.runtime.log_writers[conf.log.slot] \
                                if conf is not None else None
                            if writers is None:
                                self.runtime.access_log(ctx)    # (opens a conf's logs)
                            else:
                                for w in writers:       # runtime.access_log's loop (none
                                    w.write(ctx)        # with `access_log off`)
                    self.current = None
                    self.ctx = None
                    # (the framing took the stream out of the table: send_response)
                    if (not h2c.batch or h2c.going_away) and not h2c.streams:
                        h2c._after_stream()
                else:
                    if body:
                        self.unlogged = ctx
                    h2c._ended(self)
                if not h2c.batch and not h2c.flush_soon:
                    h2c.flush_later()
        if sent is False:
            self.hdrs = hdrs            # the windows are short: sent as they open
            if body:
                self.unlogged = ctx
                if self.out is None:
                    self.out = bytearray(body)
                else:
                    self.out += body
                self.out_size += len(body)
            h2c.send_stream(self)
        if req is not None and not req.complete:
            req.discard = True
            req.body = None

    def send_pending(self) -> None:
        """The connection's `sending` turn (Output.send_queued): what was written goes out."""
        self.pending = False
        if not self.ended:
            self.window_opened()    # sends, and lets a paused producer go on if it drained

    def finish_request(self, ctx) -> None:
        """The response is complete: log it, end the stream once its bytes are out."""
        req = self.current
        self.writer = None
        ctx.req = None
        if ctx.trailers is not None:        # evaluated at the end, before the log phase
            self.trailers = trailers.h2_fields(ctx)
        if self.out_size and not self.closing:
            # nginx finalizes the request once its output is sent: logged (and its limit_conn
            # slot freed) when the last byte leaves (Http2Connection._ended)
            self.unlogged = ctx
        else:
            log.log_request(ctx)
        if self.closing:
            return
        self.ending = True
        if self.head is not None:       # a head that never completed: nothing sane to send
            return self.reset(ErrorCodes.INTERNAL_ERROR)
        self.h2c.send_stream(self)
        if req is not None and not req.complete:
            req.discard = True
            req.body = None

    def abort(self) -> None:
        self.reset(ErrorCodes.INTERNAL_ERROR)

    def take_held(self) -> bytes:
        return b""

    def window_opened(self) -> None:
        """The client opened a window (or the connection could write again): send what waits,
        and let the producer go on once little is queued. A paused producer whose queue now
        fits the window goes on first: its end (finish_request) then rides the last DATA
        frame, as nginx's last_buf."""
        h2c = self.h2c
        if self.write_paused and not h2c.write_paused and self.writer is not None \
                and 0 < self.out_size <= h2c.sendable(self):
            self.write_paused = False
            self.writer.downstream_resumed()
        h2c.send_stream(self)
        if self.write_paused and self.out_size <= _LOW and not h2c.write_paused:
            self.write_paused = False
            w = self.writer
            if w is not None:
                w.downstream_resumed()

    def client_closed(self, exc=None) -> None:
        """RST_STREAM from the client, or the connection is gone: nginx's 499 and the upstream
        aborted (a response already complete was logged)."""
        if self.closing:
            return
        self.closing = True
        self.lost = exc
        self._cancel_timer()
        self._cancel_body()
        self.out = bytearray()
        self.out_size = 0
        ctx = self.ctx
        if self.unlogged is not None:
            ctx, self.unlogged = self.unlogged, None
            log.log_request(ctx)
        elif ctx is not None and not ctx.logged:
            downstream.client_closed(ctx)
        self.writer = None
        self.current = None

    def reset(self, code) -> None:
        """Our side gives up on the stream (a handler closed or aborted, a send timeout)."""
        if self.closing:
            return
        self.closing = True
        self._cancel_timer()
        self._cancel_body()
        self.out = bytearray()
        self.out_size = 0
        w = self.writer
        self.writer = None
        ctx = self.ctx
        if w is not None and ctx is not None and not ctx.logged:
            w.client_gone()
        if self.unlogged is not None:
            ctx, self.unlogged = self.unlogged, None
            log.log_request(ctx)
        self.h2c.reset_stream(self, code)

    # ------------------------------------------------------------ send_timeout

    def stalled(self) -> None:
        """Bytes wait and no window is open: send_timeout starts (not re-armed while stalled)."""
        if self.timer is None and self.ctx is not None:
            conf = self.ctx.conf or self.h2c.listen.default_server.conf
            self.timer = self.h2c.runtime.loop.call_later(conf.send_timeout, self._send_timeout)

    def progressed(self) -> None:
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _send_timeout(self) -> None:
        self.timer = None
        if self.closing or not self.out_size:
            return
        ctx = self.ctx
        message = "client timed out (110: Connection timed out) while sending to client"
        if ctx is not None and not ctx.logged:
            w = self.writer
            self.writer = None
            ctx.keep_alive = False
            if w is not None:
                w.client_gone()
            error_log.info(message + error_log.request_suffix(ctx), self.number)
            log.log_request(ctx)
        else:
            log.log_timeout(self, message)
        self.reset(ErrorCodes.INTERNAL_ERROR)


for _name in _FORWARDED:
    setattr(Http2Stream, _name, property(attrgetter("h2c." + _name)))
del _name
