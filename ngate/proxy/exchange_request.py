"""The request side of an upstream exchange (proxy/exchange.py): the client's body read
(100 Continue as nginx's ngx_http_test_expect), spooled, held or streamed to the try's
connection (proxy/request_body.py RequestBody), the request written by the wire, then sent.
"""
from __future__ import annotations

import time

from ngate.http1 import response as resp
from ngate.http1.discard import test_expect
from ngate.observability import error_log
from ngate.proxy import request_body as rb
from ngate.proxy.body_spool import SpoolError
from ngate.proxy.exchange_peer import PeerSide
from ngate.proxy.exchange_state import CONNECTING, DONE, READING, SENDING, TRANSITIONS
from ngate.proxy.upstream_conn import UpstreamConnection
from ngate.server import flow


def log_spooled(ctx, name: str) -> None:
    """nginx: [warn] (client_body_in_file_only: [notice]) when a body goes to a temp file."""
    text = f"a client request body is buffered to a temporary file {name}" + \
        error_log.request_suffix(ctx)
    if ctx.conf.client_body_in_file_only == "off":
        error_log.warn(text, ctx.conn.number)
    else:
        error_log.notice(text, ctx.conn.number)


class RequestSide(PeerSide):
    """Mixed into UpstreamExchange: see ExchangeBase for the fields."""
    __slots__ = ()

    # ------------------------------------------------------------ start and connect

    def start(self) -> None:
        """Read the client's body (100 Continue first when asked), then connect: at once for a
        streamed body, at the end of a buffered one (body_end)."""
        ctx = self.ctx
        mode = self.wire.prepare(self)
        self.conn.writer = self
        if not ctx.expect_tested:
            # nginx reads the body (if any) first: 100 Continue even without
            if b"expect" in ctx.hdr:
                test_expect(ctx)
            else:
                ctx.expect_tested = True    # test_expect's answer without the header
        if mode is rb.NONE:
            self.body = rb.NO_BODY
        else:
            body = self.body = rb.RequestBody(self.conf, mode)
            ctx.body_spool = body           # $request_body, $request_body_file
            self.conn.attach_body(ctx.req, self)
            if mode is rb.BUFFER or self.state is DONE:
                return
        self.connect()

    def attach(self, uconn: UpstreamConnection) -> None:
        """The try's connection is ready: the wire writes the request head and the body it has;
        then the body goes on as it comes, the spooled file follows, or the request is sent."""
        a = self.attempt
        if a.connect_time is None:      # nginx: when the request is first sent (0 when pooled)
            a.connect_time = 0.0 if self.reused else time.monotonic() - a.start
        self.uconn = uconn
        uconn.exchange = self
        uconn.requests += 1
        self.resp_headers = []
        self.reason = None
        self.status = 0
        self.got_bytes = False
        if SENDING not in TRANSITIONS[self.state]:     # _to(SENDING), inlined (hot path)
            self._refused(SENDING)
        self.state = SENDING
        held = self.wire.send_request(self, uconn)  # bytes held from the client went out
        body = self.body
        if held and not uconn.write_paused:
            flow.resume(self.conn)
        sp = body.spool
        if sp is not None and sp.in_file:
            sp.rewind()
            if not self._send_spool():
                return          # upstream_write_resumed goes on
        if body.done:           # request_sent, written out (hot path)
            if READING not in TRANSITIONS[self.state]:
                self._refused(READING)
            self.state = READING
            a.bytes_sent += self.sent_bytes
            t = self.timeout = self.plan.read_timeout       # arm, written out (hot path)
            timer = self.timer
            if timer is None:
                self.deadline = self.loop.time() + t
                self.timer = True
                d = self.deadlines                  # Deadlines.watch, written out (hot path)
                d.watched.add(self)
                if d.handle is None:
                    d.watch(self)
            elif timer is True:
                self.deadline = self.loop.time() + t
            else:
                self.arm(t)         # the connection's timer (start_pooled's: no body, not here)
        else:
            self.body_open = True
            if self.uconn.write_paused:
                flow.pause(self.conn)

    def _send_spool(self) -> bool:
        """Stream the spooled body until the upstream pauses; True when it is all written
        (else upstream_write_resumed goes on, *_send_timeout re-armed by each step)."""
        sp = self.body.spool
        start = sp.pos
        done = sp.send_to(self.uconn, self.wire.frame_file)
        self.sent_bytes += sp.pos - start
        if done:
            end = self.wire.end_of_body(self)
            if end:
                self.uconn.transport.write(end)
        else:
            self.arm(self.plan.send_timeout)
        return done

    def request_sent(self) -> None:
        if self.state is SENDING:
            self._to(READING)
        self.attempt.bytes_sent += self.sent_bytes
        self.arm(self.plan.read_timeout)

    # ------------------------------------------------------------ client body (consumer API)

    def body_data(self, data: bytes) -> None:
        """A piece of the client's body: spooled (BUFFER), written on while the request's body
        is open upstream, or held until a connection takes it (RequestBody)."""
        if self.state is DONE:
            return              # answered already (413, an early response, client gone)
        body = self.body
        n = len(data)
        limit = self.conf.client_max_body_size
        if limit and self.ctx.body_chunked and body.total + n > limit:
            body.done = True
            error_log.error(f"client intended to send too large chunked body: "
                            f"{body.total}+{n} bytes" + error_log.request_suffix(self.ctx),
                            self.conn.number)
            return self.abort_with(413)
        if body.mode is rb.BUFFER:
            try:
                name = body.spool_add(data)
            except SpoolError as err:
                return self.spool_failed(err)
            if name is not None:
                log_spooled(self.ctx, name)
            return
        u = self.uconn
        if u is None or not self.body_open:
            # nginx sends the chunks of one client read as one chunk
            merge = body.mode is rb.CHUNKED and self._same_read()
            body.received(data, merge)
            if body.hold(data, merge):
                flow.pause(self.conn)
            return
        body.received(data)
        self.wire.write_body(self, u, data)
        self.sent_bytes += n
        if self.timer is None:
            self.arm(self.plan.send_timeout)

    def body_end(self) -> None:
        if self.state is DONE:
            return
        body = self.body
        body.done = True
        if body.mode is rb.BUFFER:
            if self.state is CONNECTING and self.uconn is None and self.connecting is None:
                self.wire.body_read(self)
                self.connect()
            return
        u = self.uconn
        if u is not None and self.body_open:
            self.body_open = False
            self.wire.end_body(self, u)
            self.request_sent()

    def _same_read(self) -> bool:
        """Whether a chunked body piece came in the same client read as the previous one (each
        chunk is passed on alone, for client_max_body_size's per-chunk check)."""
        if self.in_read:
            return True
        self.in_read = True
        self.loop.call_soon(self._read_over, self.uconn)
        return False

    def _read_over(self, uconn) -> None:
        self.in_read = False
        if self.corked is not None:
            self.uncork(False, uconn)

    def cork(self, data: bytes) -> None:
        """nginx sends the chunks it read at once as one chunk, with the last chunk when the body
        ends there: the data of this client read is written once it is parsed (or at its end)."""
        self._same_read()
        corked = self.corked
        if corked is None:
            self.corked = [data]
        else:
            corked.append(data)

    def uncork(self, last: bool = False, uconn=None) -> None:
        corked = self.corked
        self.corked = None
        u = self.uconn
        if u is None or (uconn is not None and u is not uconn) or u.closed:
            return
        out = resp.chunk(b"".join(corked)) if corked else b""
        if last:
            out += resp.LAST_CHUNK
        if out:
            u.transport.write(out)
