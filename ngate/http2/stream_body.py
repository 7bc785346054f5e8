"""An HTTP/2 stream's request body (a mixin of Http2Stream, stream.py).

DATA frames go to the body consumer (attach_body), or wait in `req.body` for one; a reader gets
the frames of one read of the connection at once (flush_body). The stream's receive window is
reopened as the consumer takes them (ack_body) and not while it is paused (the stream transport's
pause_reading); nothing is acknowledged beyond http2_body_preread_size before a consumer attaches.
A body read whole (proxy_request_buffering) has no flow control, as nginx's no_flow_control.
Content-Length is checked against what came (400), client_max_body_size against a body of unknown
length (413), and client_body_timeout runs while a handler reads (408, RST_STREAM).
"""
from __future__ import annotations

from ngate.http2.frames import ErrorCodes
from ngate.observability import error_log
from ngate.http import downstream, phases

_BODY_WINDOW = 65536    # the receive window of a stream whose body a handler reads
_MAX_WINDOW = 2 ** 31 - 1


class StreamBody:
    """Needs Http2Stream's slots (current, ctx, h2c, window, unacked, reading, whole, inbox,
    body_timer, body_seen, closing, writer)."""
    __slots__ = ()

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
                h2c = self.h2c
                if h2c.fed is None:
                    h2c.fed = [self]
                else:
                    h2c.fed.append(self)
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
