"""The HTTP/2 connection to a client (nginx's ngx_http_v2 connection): an asyncio Protocol
around ngate's sans-IO frame layer (framing.py). Bytes in -> frames -> the on_* calls below ->
streams (stream.py) that run the request phases; what streams write -> frames (output.py) ->
the transport.

States: open (streams come and go; http2_idle_timeout while none is active, http2_recv_timeout
while a frame is incomplete) -> going away (GOAWAY sent on graceful stop or reload: streams in
flight finish, new ones are refused; the connection closes when the last one ends) -> closed.

Settings sent: SETTINGS_MAX_CONCURRENT_STREAMS (http2_max_concurrent_streams),
SETTINGS_INITIAL_WINDOW_SIZE (http2_body_preread_size), SETTINGS_MAX_FRAME_SIZE 16384,
SETTINGS_ENABLE_CONNECT_PROTOCOL under http2_websocket (WebSocket over HTTP/2, websocket.py), and a
connection WINDOW_UPDATE to 2^31-1 as nginx (per-stream windows do the flow control of bodies).

Defences (each with a test in tests/e2e/test_http2_attacks.py):
- too many streams: past http2_max_concurrent_streams active ones, RST_STREAM REFUSED_STREAM;
  more than twice that many new streams in one read are refused too (nginx 1.25.3's
  CVE-2023-44487 fix), and a client whose resets pass twice the limit and half of its streams
  gets GOAWAY ENHANCE_YOUR_CALM (rapid reset);
- header lists: the HPACK decoder stops at the large_client_header_buffers sizes (an HPACK
  bomb never inflates further), a field above one buffer, more than 64 CONTINUATION frames in
  a block (framing.py): GOAWAY ENHANCE_YOUR_CALM with nginx's log line;
- floods: frames that make no progress (PING, SETTINGS, empty DATA, PRIORITY, WINDOW_UPDATE,
  RST_STREAM) count up, progress (a new request, body bytes, response bytes sent) counts
  down; past _FLOOD nginx's "http2 flood detected" and the connection closes. Unread output
  past _OUT_LIMIT (acks a client does not read) closes it too;
- zero windows: queued response bytes per stream are bounded (the producer pauses) and a
  stream that cannot send for send_timeout is reset.
"""
from __future__ import annotations

import time
import traceback

from ngate.http2 import request as h2request
from ngate.http2.compression import HpackFault, NginxDecoder, check_partial
from ngate.http2.frames import (ENABLE_CONNECT_PROTOCOL, ENABLE_PUSH, HEADERS,
                                INITIAL_WINDOW_SIZE, MAX_CONCURRENT_STREAMS, MAX_FRAME_SIZE,
                                MAX_WINDOW, PREFACE, ErrorCodes)
from ngate.http2.frames_out import NO_STREAMS
from ngate.http2.framing import ConnectionFault, Framing
from ngate.http2.lifecycle import Lifecycle
from ngate.http2.output import Output
from ngate.http2.priority import PriorityTree
from ngate.http2.stream import _NO_HEAD, Http2Stream
from ngate.observability import error_log
from ngate.http import phases
from ngate.http.context import RequestContext
from ngate.server.connection import Request

__all__ = ["PREFACE", "Http2Connection"]

_FLOOD = 10000
_OUT_LIMIT = 1 << 20


_LIMITS: dict = {}


def _limits(srv) -> tuple:
    """(initial stream window, largest frame read) of a server, one pair of ints for all
    its connections: nginx reads a header block as it comes, so it takes a HEADERS frame
    longer than the SETTINGS_MAX_FRAME_SIZE it announced (its limits are the header sizes)."""
    number, size = srv.large_client_header_buffers
    key = (srv.http2_body_preread_size, number, size)
    limits = _LIMITS.get(key)
    if limits is None:
        limits = _LIMITS[key] = (min(srv.http2_body_preread_size, MAX_WINDOW),
                                 max(16384, number * size + 16384))
    return limits


class Http2Connection(Output, Lifecycle):
    __slots__ = ("runtime", "listen", "transport", "number", "remote_addr", "remote_port",
                 "server_addr", "server_port", "tls", "proxy_protocol", "framing",
                 "streams", "write_paused", "closing", "going_away", "flood", "new_streams",
                 "resets", "refused", "conf", "deadline", "timer", "requests", "started",
                 "partial", "dropped", "prio", "acked", "fed", "batch", "flush_soon", "windows",
                 "write_timer", "sending", "last_parse", "last_request", "ka_deadline",
                 "checks")
    handed_over = True

    def __init__(self, runtime, listen, proto: str = "h2c") -> None:
        # proto: "h2" (ALPN) or "h2c"; $http2 follows the listener (the `proto` property)
        self.runtime = runtime
        self.listen = listen
        self.transport = None
        self.tls = None
        self.proxy_protocol = None
        self.streams = NO_STREAMS       # the framing's `streams` (one table: framing.py)
        self.write_paused = False
        self.closing = False
        self.going_away = False
        self.flood = 0
        self.new_streams = 0
        self.resets = 0
        self.refused = 0            # streams refused at once (new_streams): opened, for the
        #                             rapid reset rule, as the streams taken (`requests`) are
        self.timer = None
        self.deadline = 0.0
        self.requests = 0
        self.partial = 0            # the new stream whose HEADERS frame is still arriving
        self.dropped = None         # streams reset for client_header_timeout before their headers
        self.prio = None            # PriorityTree once the client sends a priority
        self.acked = False          # the client acknowledged our SETTINGS
        self.fed = None             # streams with body bytes of this read (flush_body)
        self.windows = None         # streams whose send windows opened in this read (0: all)
        self.batch = False      # in data_received: frames out wait for its one flush
        self.write_timer = None     # send_timeout while the transport's buffer is full
        self.flush_soon = False     # out of it: one flush per loop turn (flush_later)
        self.sending = None         # streams that wrote, to send before that flush (send_later)
        self.last_parse = None      # (header list, its parse) of the last stream (request.py)
        self.checks = False         # start_stream first (connection_made)
        srv = listen.default_server
        self.conf = srv
        # the HPACK decoder is made with the first header block (new_decoder)
        self.framing = fr = Framing(self, None, _limits(srv))
        fr.state = Http2Stream      # a stream is its own framing state (on_headers)

    @property
    def scheme(self) -> str:
        return self.listen.scheme

    @property
    def proto(self) -> str:
        """$http2: "h2" over TLS, "h2c" in clear text (nginx: the connection's ssl)."""
        return "h2c" if self.listen.ssl_context is None else "h2"

    def new_decoder(self) -> NginxDecoder:
        number, size = self.conf.large_client_header_buffers
        return NginxDecoder(size, number * size)

    # ------------------------------------------------------------ asyncio Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.started = time.monotonic()     # $connection_time
        conf = self.conf.conf
        # the keep-alive rules of a new stream (on_headers): the last request number (all are
        # the last under keepalive_timeout 0) and keepalive_time's end
        self.last_request = conf.keepalive_requests if conf.keepalive_timeout != 0 else 0
        self.ka_deadline = self.started + conf.keepalive_time
        if not self.runtime.connection_opened(self):
            self.closing = True
            return
        self.number = self.runtime.next_connection_number()
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.remote_addr, self.remote_port = peer[0], str(peer[1])
            local = self.listen.local
            if local is None:
                sock = transport.get_extra_info("sockname")
                local = sock[0], str(sock[1])
            self.server_addr, self.server_port = local
        else:
            self.remote_addr, self.remote_port = "unix:", ""
            self.server_addr, self.server_port = "unix:", ""
        listen = self.listen
        if listen.ssl_context is not None:
            self.tls = transport.get_extra_info("ssl_object")
        # a stream's request goes through start_stream's checks first (request.py): TLS client
        # certificates to verify, a server of the listener with `http2 off`
        self.checks = listen.http2_off or self.tls is not None and listen.ssl_context.verifies
        srv = self.conf
        values = {MAX_CONCURRENT_STREAMS: srv.http2_max_concurrent_streams,
                  INITIAL_WINDOW_SIZE: self.framing.preread, MAX_FRAME_SIZE: 16384,
                  ENABLE_PUSH: 0}
        if srv.http2_websocket:
            values[ENABLE_CONNECT_PROTOCOL] = 1     # RFC 8441 (websocket.py)
        self.framing.initiate(values)
        self.flush()
        self._arm(self._idle_value())

    def data_received(self, data: bytes) -> None:
        try:
            self._receive(data)
        except Exception as exc:        # a defect of ngate's: logged, never a traceback to asyncio
            self.batch = False
            error_log.alert("internal error: " + "".join(traceback.format_exception(exc))
                            .replace("\n", " | ") + ", client: " + self.remote_addr, self.number)
            self._fail(ErrorCodes.INTERNAL_ERROR,
                       "closing the HTTP/2 connection after an internal error")

    def _receive(self, data: bytes) -> None:
        if self.closing:
            return
        self.new_streams = 0
        if time.monotonic() > self.ka_deadline:
            # keepalive_time is over (at the time of the read, as nginx's check against its
            # cached ngx_current_msec): every stream from now on is the last (on_headers)
            self.last_request = 0
        fr = self.framing
        self.batch = True       # until the flush: frames out wait for it (flush_later)
        try:
            fr.receive(data)
        except (ConnectionFault, HpackFault) as exc:
            self.batch = False
            return self._fail(exc.code, exc.message)
        try:
            if self.closing:
                return
            pending = fr.buf
            if len(pending) > 9 and pending[3] == HEADERS:
                try:
                    check_partial(bytes(pending))
                except HpackFault as exc:
                    sid = int.from_bytes(pending[5:9], "big") & 0x7fffffff
                    self.batch = False
                    return self._fail(exc.code, exc.message, sid)
            if self.fed:
                fed, self.fed = self.fed, None
                for s in fed:
                    s.flush_body()
                if self.closing:
                    return
            if self.windows is not None:
                windows, self.windows = self.windows, None
                self._windows(windows)
                if self.closing:
                    return
            if self.sending:
                self.send_queued()
                if self.closing:
                    return
        finally:
            self.batch = False
        if self.flood > _FLOOD:
            return self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "http2 flood detected")
        self.flush()        # one write for every stream answered in this read
        if self.sending:    # written while sending (a producer resumed): the next turn
            self.flush_later()
        if not self.closing:
            if self.write_paused and self.transport.get_write_buffer_size() > _OUT_LIMIT:
                return self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "http2 flood detected")
            self._idle_or_recv()

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        self.closing = True
        self._cancel_timer()
        if self.write_timer is not None:
            self.write_timer.cancel()
            self.write_timer = None
        self.runtime.connection_closed(self)
        streams = list(self.streams.values())
        self.streams = NO_STREAMS
        for s in streams:
            s.client_closed(exc)

    def pause_writing(self) -> None:
        self.write_paused = True
        self._arm_write()
        for s in list(self.streams.values()):
            if not s.write_paused:
                s.write_paused = True
                if s.writer is not None:
                    s.writer.downstream_paused()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.write_timer is not None:
            self.write_timer.cancel()
            self.write_timer = None
        for s in self._by_priority(list(self.streams.values())):
            s.window_opened()

    # ------------------------------------------------------------ frames in (framing.py)

    def on_headers(self, sid: int, fields: list, ended: bool, size: int, stream) -> None:
        # stream: the framing's state of the new stream (framing.state: an Http2Stream)
        if self.partial or self.dropped:    # client_header_timeout's (lifecycle.py)
            if sid == self.partial:
                self.partial = 0
            if self.dropped and sid in self.dropped:
                # reset already (client_header_timeout): no second RST_STREAM
                self.dropped.discard(sid)
                return self.framing.forget(sid)
        if self.going_away:
            return self._refuse(sid)
        srv = self.conf
        new = self.new_streams = self.new_streams + 1
        if self.flood:
            flood = self.flood - 100
            self.flood = flood if flood > 0 else 0
        limit = srv.http2_max_concurrent_streams
        if new > 2 * limit:
            # nginx 1.25.3 (CVE-2023-44487): refused, and counted as a reset for the GOAWAY rule
            if new == 2 * limit + 1:
                error_log.info("client sent too many streams at once, client: " + self.remote_addr,
                               self.number)
            self.resets += 1
            self.refused += 1
            self._refuse(sid)
            self._rapid_reset()
            return
        streams = self.streams      # (the framing's: the new stream is in it)
        if len(streams) > limit:
            return self._refuse(sid)
        if not ended and not self.acked and srv.http2_body_preread_size < 65535:
            # nginx: its smaller window is not in force before the client acknowledged it
            error_log.info("client sent stream with data before settings were acknowledged, "
                           "client: " + self.remote_addr, self.number)
            return self._refuse(sid)
        # the framing made the stream as its state (framing.state): it opens as a stream now
        requests = self.requests = self.requests + 1
        # Http2Stream.open_on's steps written out (a call less; the framing's state is always
        # an Http2Stream: __init__; an extended CONNECT's WebSocketStream calls its open_on)
        stream.h2c = self
        stream.sid = sid
        stream.listen = self.listen
        stream.runtime = self.runtime
        stream.writer = None
        stream.closing = False
        stream.write_paused = False
        stream.head = _NO_HEAD
        stream.out = None
        stream.out_size = 0
        stream.ending = False
        stream.ended = False
        stream.chunked = None
        stream.timer = None
        stream.hdrs = None
        stream.pending = False
        stream.body_timer = None
        stream.unlogged = None
        stream.remote_addr = self.remote_addr
        stream.remote_port = self.remote_port
        stream.requests = requests
        stream.window = srv.http2_body_preread_size
        if self.prio is not None:
            self.prio.opened(sid)
        # (the connection's timer, idle or http2_recv_timeout, is settled at the end of this
        # read: _receive's _idle_or_recv, which cancels it while streams are active)
        if requests >= self.last_request:
            # nginx: the last stream of this connection (keepalive_requests, keepalive_timeout
            # 0, keepalive_time: _receive makes every stream the last once it is over)
            self.goaway()
        last = self.last_parse
        if last is not None and last[0] is fields:
            method, path, headers, hdr, _, _, plain = last[1]
            if plain and size:
                # request.start's steps for the usual request whose header list is the previous
                # stream's (its kept parse), written out: a call less
                ctx = RequestContext(stream, method, path, "2.0", headers, hdr)
                ctx.http_minor = 2
                ctx.keep_alive = False
                ctx.request_length = size
                stream.ctx = ctx
                stream.current = req = Request(ctx)
                if ended:
                    req.complete = True
                else:
                    ctx.body_chunked = True
                stats = self.runtime.stats
                if stats is not None:
                    stats.request_started(ctx)
                if self.checks:
                    return self.start_stream(ctx, req)
                return phases.start_request(ctx, req)
        stream.current = None       # (the kept parse's request above sets both at once)
        stream.ctx = None
        h2request.start(self, stream, fields, ended, size)

    def on_trailers(self, sid: int, fields: list) -> None:
        s = self.streams.get(sid)
        if s is not None:
            s.body_end()

    def on_data(self, sid: int, data: bytes, flow: int, ended: bool) -> None:
        if data:
            self.flood = max(0, self.flood - 10)
        else:
            self.flood += 1
        s = self.streams.get(sid)
        if s is None:
            return
        s.body_data(data, flow, ended)
        if ended and not self.closing:
            s.body_end()

    def on_window(self, sid: int) -> None:
        """A WINDOW_UPDATE (sid -1: of a stream no longer open): the streams whose windows
        opened send once the read is done, in priority order."""
        self.flood += 1
        if sid >= 0:
            if self.windows is None:
                self.windows = set()
            self.windows.add(sid)

    def on_settings(self) -> None:
        self.flood += 1
        if self.windows is None:
            self.windows = set()
        self.windows.add(0)

    def on_settings_ack(self) -> None:
        self.acked = True

    def on_ping(self) -> None:
        self.flood += 1

    def on_priority(self, sid: int, depends_on: int, weight: int, exclusive: int) -> None:
        self.flood += 1
        if self.prio is None:
            self.prio = PriorityTree()
        self.prio.set(sid, depends_on, weight, bool(exclusive))

    def on_goaway(self) -> None:
        self.going_away = True
        if not self.streams:
            self._close()

    def on_reset(self, sid: int, code: int, message, s) -> None:
        """RST_STREAM from the client (message None), or a stream error of ours (framing.py);
        `s`: the stream if it was active (the framing took it out of the table)."""
        self.flood += 1
        self._stream_closed(sid)
        if message:
            error_log.info(message + ", client: " + self.remote_addr, self.number)
        if s is None:
            return
        if s.ctx is not None and not s.ctx.logged and message is None:
            self.resets += 1
        s.client_closed()
        if not self._rapid_reset():
            self._after_stream()

    def _windows(self, sids: set) -> None:
        """Windows opened (0: the connection's, or new settings): the streams that can send
        now do, in priority order."""
        if 0 in sids:
            ready = [s for s in self.streams.values() if s.out_size or s.write_paused]
        else:
            ready = [s for s in map(self.streams.get, sorted(sids)) if s is not None and s.out_size]
        for s in self._by_priority(ready):
            s.window_opened()

    def _by_priority(self, streams: list) -> list:
        """Streams that can send at once, in the order nginx's frame queue would send them."""
        prio = self.prio
        if prio is not None and len(streams) > 1:
            streams.sort(key=lambda s: prio.key(s.sid))     # stable: ties keep their order
        return streams

    def _stream_closed(self, sid: int) -> None:
        if self.prio is not None:
            self.prio.closed_stream(sid)

    def _rapid_reset(self) -> bool:
        """More resets (and streams refused at once) than twice the stream limit, and more than
        half of the streams opened: GOAWAY ENHANCE_YOUR_CALM."""
        if self.resets > 2 * self.conf.http2_max_concurrent_streams \
                and self.resets * 2 > self.requests + self.refused:
            self._fail(ErrorCodes.ENHANCE_YOUR_CALM,
                       "client sent too many RST_STREAM frames (rapid reset)")
            return True
        return False

    def start_stream(self, ctx, req) -> None:
        """A stream's request goes to the phases (TLS client checks first, as HTTP/1.1; then
        nginx 1.25's ngx_http_v2_run_request: 421 when the Host's server has `http2 off`)."""
        listen = self.listen
        if self.tls is not None and listen.ssl_context.verifies:
            from ngate.server.tls import _server_for, client_refusal, refuse
            server = _server_for(ctx, listen)
            refusal = client_refusal(self.tls, server, ctx.host, listen.ssl_context)
            if refusal is not None:
                return refuse(ctx, req, *refusal)
        if listen.http2_off:
            from ngate.server.https import host_server, refuse
            server = host_server(ctx, listen)
            if server is not None and not server.http2:
                return refuse(ctx, req, server, 421, "client attempted to request the server "
                              "name for which the negotiated protocol is disabled")
        phases.start_request(ctx, req)
