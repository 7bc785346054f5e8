"""One HTTP/2 stream as the request phases see it: a downstream connection of its own.

The HTTP core (ngate/http/) and its content handlers talk to `ctx.conn`: they write an
HTTP/1.1 response head then body bytes, end with finish_request(), pause or resume through
`conn.writer` (downstream_paused/downstream_resumed), read the body through attach_body(), and
close or abort. Http2Stream carries that out on its stream:

  head     the HTTP/1.1 head is collected until its empty line and held; it leaves as a
           HEADERS frame (head.py) with the first body bytes, or with END_STREAM at the end
  body     queued, sent as DATA frames of at most http2_chunk_size as the stream and connection
           windows allow; above _HIGH queued bytes the writer (an upstream exchange, the static
           sender) is paused, below _LOW resumed: a slow client pauses its own upstream only.
           A stream that cannot send for send_timeout is reset and logged as nginx does.
  request  DATA frames go to the body consumer (or wait for one); the stream's receive window
  body     is reopened as the consumer takes them and not while it is paused (pause_reading);
           nothing is acknowledged beyond http2_body_preread_size before a consumer attaches
  end      finish_request logs the request and ends the stream; a client RST_STREAM or a lost
           connection is the client closing: 499 and the upstream aborted (downstream.client_closed)
"""
from __future__ import annotations

from ngate.http2.frames import ErrorCodes

from ngate.http1.request import BodyError, ChunkedDecoder
from ngate.filters import trailers
from ngate.http2.head import h1_to_h2
from ngate.observability import error_log
from ngate.http import downstream, log, phases

_HIGH = 65536       # queued response bytes above which the producer is paused
_LOW = 16384
_BODY_WINDOW = 65536    # the receive window of a stream whose body a handler reads
_MAX_WINDOW = 2 ** 31 - 1


class StreamTransport:
    """What handlers reach through `conn.transport`: reading pauses the stream's receive
    window, closing resets the stream."""
    __slots__ = ("stream",)

    def __init__(self, stream) -> None:
        self.stream = stream

    def pause_reading(self) -> None:
        self.stream.reading = False

    def resume_reading(self) -> None:
        s = self.stream
        if not s.reading:
            s.reading = True
            s.ack_body()

    def is_reading(self) -> bool:
        return self.stream.reading

    def get_write_buffer_size(self) -> int:
        return 0            # queued bytes are copied: a handler may reuse its buffer at once

    def write(self, data) -> None:
        self.stream.write(data)

    def close(self) -> None:
        self.stream.reset(ErrorCodes.INTERNAL_ERROR)

    def abort(self) -> None:
        self.stream.reset(ErrorCodes.INTERNAL_ERROR)

    def is_closing(self) -> bool:
        return self.stream.closing

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name, default=None):
        return self.stream.h2c.transport.get_extra_info(name, default)


class Http2Stream:
    __slots__ = ("h2c", "sid", "transport", "writer", "current", "queue", "closing",
                 "write_paused", "lost", "ctx", "head", "out", "out_size", "ending", "ended",
                 "reading", "unacked", "chunked", "timer", "requests", "hdrs", "remote_addr",
                 "remote_port", "window", "pending", "body_timer", "body_seen", "whole", "inbox",
                 "unlogged", "trailers", "__weakref__")
    handed_over = True
    trace = None
    line_method = None      # $request's method when not ctx.method (websocket.py: CONNECT)

    def __init__(self, h2c, sid: int) -> None:
        self.h2c = h2c
        self.sid = sid
        self.transport = StreamTransport(self)
        self.writer = None
        self.current = None         # server/connection.py Request
        self.queue = None
        self.closing = False
        self.write_paused = False
        self.lost = None
        self.ctx = None
        self.head = b""             # the response head while it arrives; None once sent
        self.out = bytearray()      # response bytes not yet sent (flow control)
        self.out_size = 0
        self.ending = False         # finish_request came: END_STREAM once `out` is sent
        self.ended = False
        self.reading = True         # request body: acknowledge (reopen the window) as read
        self.unacked = 0            # body bytes consumed and not yet acknowledged
        self.chunked = None         # a ChunkedDecoder if a handler framed the body in chunks
        self.timer = None           # send_timeout while the windows stay shut
        self.requests = 1
        self.hdrs = None            # the response's HEADERS not sent yet
        self.remote_addr = h2c.remote_addr      # per stream: realip may replace them
        self.window = h2c.conf.http2_body_preread_size    # our receive window as the client sees it
        self.remote_port = h2c.remote_port
        self.pending = False        # a send is scheduled (write)
        self.body_timer = None      # client_body_timeout while a handler reads the body
        self.body_seen = 0.0        # when body bytes last came (the timer re-arms from it)
        self.whole = False          # the body is read whole: no flow control (attach_body)
        self.inbox = None           # body bytes of this read for the reader (flush_body)
        self.unlogged = None        # a finished request logged once its bytes are out
        self.trailers = None        # add_trailer's fields: a HEADERS frame with END_STREAM

    # the two the phases read per request, cheaper than __getattr__
    listen = property(lambda self: self.h2c.listen)
    runtime = property(lambda self: self.h2c.runtime)

    def __getattr__(self, name: str):
        # runtime, listen, number, addresses, scheme, tls, proxy_protocol: the connection's
        return getattr(self.h2c, name)

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
                # HEADERS now unless the response ends at once (then with END_STREAM)
                self.h2c.runtime.loop.call_soon(self.h2c.send_stream, self)
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
        self.out += data
        self.out_size += len(data)
        if not self.pending:
            # sent at the end of this turn of the loop: what the handler writes next (its
            # end, finish_request) goes in the same frames, END_STREAM on the last DATA
            self.pending = True
            self.h2c.runtime.loop.call_soon(self._send_pending)
        if self.out_size > _HIGH and not self.write_paused:
            self.write_paused = True
            w = self.writer
            if w is not None:
                w.downstream_paused()

    def write_fields(self, hdrs: list, chunked: bool = False, body: bool = False) -> None:
        """The response head as HEADERS fields (head.response_fields), instead of an HTTP/1.1
        head through write(): the same frames, without building and parsing the head's bytes.
        `body`: the caller writes body bytes now (their send carries the HEADERS); else they
        leave at the end of this loop turn, with what the handler writes meanwhile."""
        if self.closing or self.ended:
            return
        self.head = None
        if chunked:
            self.chunked = ChunkedDecoder()
        self.hdrs = hdrs
        if not body and not self.pending:
            # HEADERS at the end of this loop turn, with the body bytes written meanwhile
            self.pending = True
            self.h2c.runtime.loop.call_soon(self._send_pending)

    def _send_pending(self) -> None:
        self.pending = False
        self.window_opened()        # sends, and lets a paused producer go on if it drained

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

    def attach_body(self, req, consumer) -> None:
        req.consumer = consumer
        if req.discard and req.body_size < 0:
            # the body was refused (_body_fault): a reader after the 400's error_page gets none
            return consumer.body_end()
        # an exchange reading the body whole (proxy/request_body.py BUFFER) takes empty DATA too
        # and needs no flow control
        self.whole = getattr(getattr(consumer, "body", None), "mode", None) == "buffer"
        if not req.complete and self.ctx is not None:
            self.body_seen = self.h2c.runtime.loop.time()
            self._arm_body(self.ctx.conf.client_body_timeout)
        chunks = req.body
        req.body = None
        if self._length_fault(req, req.complete, later=True):
            return
        if chunks:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.unacked += len(data)
            if data or self.whole:
                consumer.body_data(data)
        if req.complete:
            consumer.body_end()
        elif self.whole:
            # nginx: a body read whole has no flow control (no_flow_control): its window opens
            # to 2^31-1 and is topped up when below a quarter of that
            self.unacked = _MAX_WINDOW - self.window
        else:
            # the body is being read now: open the window past the preread size (which may be 0)
            self.unacked += max(0, _BODY_WINDOW - self.window - self.unacked)
        self.ack_body()

    def abort(self) -> None:
        self.reset(ErrorCodes.INTERNAL_ERROR)

    def take_held(self) -> bytes:
        return b""

    # ------------------------------------------------------------ from the connection

    def body_data(self, data: bytes, flow: int, ended: bool = False) -> None:
        """A DATA frame of the request body (`flow`: its flow-controlled length; `ended`: it
        carries END_STREAM). A reader gets the frames of one read of the connection at once
        (flush_body), as nginx passes on what one read brought."""
        req = self.current
        self.window -= flow
        if req is None or self.closing:
            return self.h2c.ack(self, flow)
        self.unacked += flow - len(data)        # padding is acknowledged with the data
        if req.discard:
            self.unacked += len(data)
            return self.ack_body()
        ctx = self.ctx
        req.body_size += len(data)
        ctx.request_length += len(data)
        limit = ctx.conf.client_max_body_size if ctx.conf is not None else 0
        if limit and ctx.content_length_in is None and req.body_size > limit \
                and req.consumer is None and not ctx.head_sent:
            error_log.error(f"client intended to send too large body: {req.body_size} bytes"
                            + error_log.request_suffix(ctx), self.number)
            req.discard = True
            req.body = None
            return phases.finalize(ctx, 413)
        if req.consumer is not None:
            if self._length_fault(req, ended):
                return
            self.body_seen = self.h2c.runtime.loop.time()
            self.unacked += len(data)
            if not data and not self.whole:     # nothing for a reader passing it on
                return self.ack_body()
            if self.inbox is None:
                self.inbox = [data]
                self.h2c.fed.append(self)
            else:
                self.inbox.append(data)
        elif req.body is None:
            req.body = [data]
        else:
            req.body.append(data)

    def flush_body(self) -> None:
        """What this read brought goes to the reader as one piece."""
        inbox, self.inbox = self.inbox, None
        req = self.current
        if not inbox or req is None or req.consumer is None or req.discard or self.closing:
            return
        req.consumer.body_data(inbox[0] if len(inbox) == 1 else b"".join(inbox))
        self.ack_body()

    def body_end(self) -> None:
        req = self.current
        if req is None or req.complete:
            return
        if self.inbox is not None:
            self.flush_body()
        req.complete = True
        self._cancel_body()
        if req.consumer is not None and not req.discard and not self.closing:
            if self._length_fault(req, True):
                return
            req.consumer.body_end()

    def _length_fault(self, req, ended: bool, later: bool = False) -> bool:
        """A body read against its Content-Length (ngx_http_v2_process_request_body): more
        bytes, or END_STREAM before all of them, is a 400 (the upstream exchange dropped;
        `later`: found as the reader attaches, answered once it has started)."""
        ctx = self.ctx
        declared = ctx.content_length_in if ctx is not None else None
        if declared is None or self.closing:
            return False
        if req.body_size > declared:
            message = "client intended to send body data larger than declared"
        elif ended and req.body_size < declared:
            message = (f"client prematurely closed stream: only {req.body_size} out of "
                       f"{declared} bytes of request body received")
        else:
            return False
        req.discard = True
        req.body = None
        self._cancel_body()
        if later:
            self.h2c.runtime.loop.call_soon(self._body_fault, message)
        else:
            self._body_fault(message)
        return True

    def _body_fault(self, message: str) -> None:
        ctx = self.ctx
        if ctx is None or self.closing:
            return
        error_log.info(message + error_log.request_suffix(ctx), self.number)
        req = self.current
        if req is not None:
            req.body_size = -1          # no body for whatever runs next (attach_body)
        ctx.content_length_in = 0
        ctx.body_chunked = False
        if ctx.head_sent or ctx.logged:
            return self.reset(ErrorCodes.PROTOCOL_ERROR)
        ctx.keep_alive = False
        abort = getattr(self.writer, "abort_with", None)    # an upstream exchange reading it
        if abort is not None:
            abort(400)
        else:
            phases.finalize(ctx, 400)

    # ------------------------------------------------------------ client_body_timeout

    def _arm_body(self, timeout: float) -> None:
        if timeout > 0:
            self.body_timer = self.h2c.runtime.loop.call_later(timeout, self._body_timeout)

    def _cancel_body(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def _body_timeout(self) -> None:
        """No body bytes for client_body_timeout while a handler reads them: nginx finalizes
        the request with 408 and resets the stream with PROTOCOL_ERROR (fc->timedout)."""
        self.body_timer = None
        req, ctx = self.current, self.ctx
        if req is None or req.complete or self.closing or ctx is None or ctx.logged:
            return
        timeout = ctx.conf.client_body_timeout
        rest = self.body_seen + timeout - self.h2c.runtime.loop.time()
        if rest > 0 or not self.reading:    # bytes came meanwhile, or paused by the upstream
            return self._arm_body(rest if rest > 0 else timeout)
        downstream.client_timeout(ctx, "")
        self.reset(ErrorCodes.PROTOCOL_ERROR)

    def ack_body(self) -> None:
        if self.whole and self.window >= _MAX_WINDOW // 4:
            return
        if self.reading and self.unacked and not self.closing:
            n = self.unacked
            self.unacked = 0
            self.window += n
            self.h2c.ack(self, n)

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
