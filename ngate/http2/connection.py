"""The HTTP/2 connection to a client (nginx's ngx_http_v2 connection): an asyncio Protocol
around the sans-IO `h2` library. Bytes in -> h2 events -> streams (stream.py) that run the
request phases; what streams write -> h2 frames -> the transport.

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
- header lists: the HPACK decoder stops at http2_max_header_size of decoded headers (an HPACK
  bomb never inflates further), a field above http2_max_field_size, and h2's CONTINUATION
  backlog limit: GOAWAY (nginx: ENHANCE_YOUR_CALM, "client exceeded ... limit");
- floods: frames that make no progress (PING, SETTINGS, empty DATA, PRIORITY, WINDOW_UPDATE,
  RST_STREAM) count up, progress (a new request, body bytes, response bytes sent) counts
  down; past _FLOOD nginx's "http2 flood detected" and the connection closes. Unread output
  past _OUT_LIMIT (acks a client does not read) closes it too;
- zero windows: queued response bytes per stream are bounded (the producer pauses) and a
  stream that cannot send for send_timeout is reset.
"""
from __future__ import annotations

import struct
import time
import traceback

from h2.config import H2Configuration
from h2.connection import ConnectionInputs, H2Connection
from h2.errors import ErrorCodes
from h2.events import (ConnectionTerminated, DataReceived, PingReceived, PriorityUpdated,
                       RemoteSettingsChanged, RequestReceived, SettingsAcknowledged,
                       StreamEnded, StreamReset, WindowUpdated)
from h2.exceptions import DenialOfServiceError, FlowControlError, ProtocolError, StreamClosedError
from h2.frame_buffer import FrameBuffer
from h2.settings import Settings, SettingCodes
from h2.stream import StreamInputs
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame

from ngate.http2 import request as h2request
from ngate.http2.compression import HpackFault, NginxDecoder, check_partial
from ngate.http2.hpack_out import StatelessEncoder
from ngate.http2.priority import PriorityTree
from ngate.http2.stream import Http2Stream
from ngate.observability import error_log
from ngate.http import log, phases
from ngate.server.clock import OneTimer

_MAX_WINDOW = 2 ** 31 - 1
_FLOOD = 10000
_OUT_LIMIT = 1 << 20
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


# request headers are validated as nginx does (request.py): h2's own checks would end the
# connection where nginx answers 400 or resets the one stream. What we send is built by head.py
# (lower-case names, no hop-by-hop fields, stripped values) or by ngate itself: h2 neither
# normalises nor validates it again (profiled: a fifth of the CPU of a request)
_CONFIG = H2Configuration(client_side=False, header_encoding=None,
                          validate_inbound_headers=False, normalize_inbound_headers=False,
                          validate_outbound_headers=False, normalize_outbound_headers=False)


class _LocalSettings(Settings):
    """Our settings as sent; h2 itself refuses no stream for their number (its refusal kills
    the connection): Http2Connection refuses streams one by one as nginx does."""

    @property
    def max_concurrent_streams(self) -> int:
        return _MAX_WINDOW


class _FrameBuffer(FrameBuffer):
    """h2's frame buffer, reading frames as nginx 1.22 does where h2 differs: a frame type
    nginx does not know (ALTSVC 0xa and above, which h2 would parse and fail on) is skipped, and
    a PUSH_PROMISE from the client is a PROTOCOL_ERROR as soon as its frame header is in."""

    def __next__(self):
        data = self._data
        while len(data) >= 9 and not self._headers_buffer:
            kind = data[3]
            if kind == 0x5:
                raise ProtocolError("client sent PUSH_PROMISE frame")
            if kind <= 0x9:
                break
            length = int.from_bytes(data[:3], "big")
            if len(data) < 9 + length:
                raise StopIteration
            del data[:9 + length]
        return super().__next__()


def _no_content_length(headers) -> None:
    pass


_FRAME_HEAD = struct.Struct(">HBBBL").pack


class _H2(H2Connection):
    """h2's connection with narrow hooks: the stream id of the HEADERS frame being decoded
    (nginx's last_sid in the GOAWAY of a decoding error), and the largest frame taken in:
    nginx reads a header block as it comes and takes a HEADERS frame longer than the
    SETTINGS_MAX_FRAME_SIZE it announced (its limits are the header sizes), so frames up to
    `frame_limit` are read (h2 would end the connection with FRAME_SIZE_ERROR). On the way
    out, the frames of responses are packed here (see the send_* methods; profiled: h2's frame
    objects, events and generic serialization were a third of a request's CPU)."""
    headers_sid = 0
    frame_limit = 16384
    block_sizes: dict = {}          # per connection once set (Http2Connection.__init__)

    def _begin_new_stream(self, stream_id, allowed_ids):
        # Content-Length against the DATA received is ngate's (stream.py, nginx's 400 when a
        # handler reads the body); h2 would reset the stream or end the connection
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        stream._initialize_content_length = _no_content_length
        return stream

    def _receive_data_frame(self, frame):
        stream = self.streams.get(frame.stream_id)
        n = frame.flow_controlled_length
        if stream is not None and not stream.closed and n > stream.inbound_flow_control_window:
            # nginx: "client violated flow control for stream": that stream is reset with
            # FLOW_CONTROL_ERROR and the connection lives on (h2 would end the connection)
            events = self.state_machine.process_input(ConnectionInputs.RECV_DATA)
            self._inbound_flow_control_window_manager.window_consumed(n)
            frames = stream.reset_stream(ErrorCodes.FLOW_CONTROL_ERROR)
            reset = StreamReset(stream_id=frame.stream_id, error_code=ErrorCodes.FLOW_CONTROL_ERROR,
                                remote_reset=False)
            return frames, events + [reset]
        return super()._receive_data_frame(frame)

    @property
    def max_inbound_frame_size(self) -> int:
        return self.frame_limit

    @max_inbound_frame_size.setter
    def max_inbound_frame_size(self, value: int) -> None:
        pass

    def _receive_headers_frame(self, frame):
        sid = frame.stream_id
        if sid > self.headers_sid:
            self.headers_sid = sid
        elif sid <= self.highest_inbound_stream_id:
            stream = self.streams.get(sid)
            if stream is None or stream.closed:
                # nginx: a HEADERS frame of a stream already used is a connection error
                raise ProtocolError("client sent HEADERS frame with incorrect identifier "
                                    f"{sid}, the last was {self.highest_inbound_stream_id}")
        self.block_sizes[sid] = len(frame.data)        # $request_length (request.py)
        if "PRIORITY" in frame.flags and frame.depends_on == sid:
            # nginx checks before the stream exists: GOAWAY names the stream before it
            raise ProtocolError(f"client sent HEADERS frame for stream {sid} "
                                "with incorrect dependency")
        return super()._receive_headers_frame(frame)

    def _prepare_for_sending(self, frames) -> None:
        out = self._data_to_send
        for f in frames:
            cls = f.__class__
            if cls is DataFrame or cls is HeadersFrame:
                flags = f.flags._flags
                if not f.pad_length and "PRIORITY" not in flags:
                    data = f.data
                    n = f.body_len = len(data)
                    bits = 1 if "END_STREAM" in flags else 0
                    if "END_HEADERS" in flags:
                        bits |= 4
                    out += _FRAME_HEAD((n >> 8) & 0xFFFF, n & 0xFF, f.type, bits, f.stream_id)
                    out += data
                    continue
            out += f.serialize()

    def send_headers(self, stream_id, headers, end_stream=False, **priority) -> None:
        """A response's HEADERS (not 1xx, not trailers, no priority) straight into the output:
        the connection's and the stream's state machines take the same inputs as in h2's
        send_headers, the block is our encoder's, the frames are packed here (h2 would build
        events, validation flags and frame objects, and re-encode the fields as UTF-8)."""
        stream = self.streams.get(stream_id)
        if stream is None or priority or stream.state_machine.headers_sent \
                or headers[0][1][:1] == b"1":
            return super().send_headers(stream_id, headers, end_stream, **priority)
        self.state_machine.process_input(ConnectionInputs.SEND_HEADERS)
        sm = stream.state_machine
        sm.process_input(StreamInputs.SEND_HEADERS)
        if end_stream:
            sm.process_input(StreamInputs.SEND_END_STREAM)
        block = self.encoder.encode(headers)
        n = len(block)
        size = self.max_outbound_frame_size
        out = self._data_to_send
        if n <= size:
            out += _FRAME_HEAD(n >> 8, n & 0xFF, 0x1, 0x5 if end_stream else 0x4, stream_id)
            out += block
            return
        out += _FRAME_HEAD(size >> 8, size & 0xFF, 0x1, 0x1 if end_stream else 0, stream_id)
        out += block[:size]
        for i in range(size, n, size):      # CONTINUATION frames, END_HEADERS on the last
            piece = block[i:i + size]
            m = len(piece)
            out += _FRAME_HEAD(m >> 8, m & 0xFF, 0x9, 0x4 if i + size >= n else 0, stream_id)
            out += piece

    def send_data(self, stream_id, data, end_stream=False, pad_length=None) -> None:
        """DATA within the windows, unpadded: h2's state inputs and window accounting, the frame
        packed here (h2 would build a DataFrame with its Flags and Padding per call)."""
        stream = self.streams.get(stream_id)
        n = len(data)
        if stream is None or pad_length is not None or n > self.max_outbound_frame_size \
                or n > self.outbound_flow_control_window \
                or n > stream.outbound_flow_control_window:
            return super().send_data(stream_id, data, end_stream, pad_length)   # or its error
        self.state_machine.process_input(ConnectionInputs.SEND_DATA)
        sm = stream.state_machine
        sm.process_input(StreamInputs.SEND_DATA)
        if end_stream:
            sm.process_input(StreamInputs.SEND_END_STREAM)
        stream.outbound_flow_control_window -= n
        self.outbound_flow_control_window -= n
        out = self._data_to_send
        out += _FRAME_HEAD(n >> 8, n & 0xFF, 0x0, 0x1 if end_stream else 0, stream_id)
        out += data

    def end_stream(self, stream_id) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return super().end_stream(stream_id)
        self.state_machine.process_input(ConnectionInputs.SEND_DATA)
        stream.state_machine.process_input(StreamInputs.SEND_END_STREAM)
        self._data_to_send += _FRAME_HEAD(0, 0, 0x0, 0x1, stream_id)


class Http2Connection(OneTimer):
    __slots__ = ("runtime", "listen", "transport", "number", "remote_addr", "remote_port",
                 "server_addr", "server_port", "scheme", "tls", "proxy_protocol", "h2",
                 "streams", "write_paused", "closing", "going_away", "flood", "new_streams",
                 "resets", "opened", "conf", "deadline", "timer", "lost", "proto", "conn_unacked",
                 "requests", "started", "partial", "dropped", "prio", "acked", "fed", "batch",
                 "flush_soon")
    handed_over = True

    def __init__(self, runtime, listen, proto: str = "h2c") -> None:
        self.runtime = runtime
        self.listen = listen
        self.transport = None
        self.scheme = listen.scheme
        self.tls = None
        self.proxy_protocol = None
        self.proto = proto          # $http2: "h2" over TLS, "h2c" in clear text
        self.streams: dict = {}
        self.write_paused = False
        self.closing = False
        self.going_away = False
        self.flood = 0
        self.new_streams = 0
        self.resets = 0
        self.opened = 0
        self.conn_unacked = 0
        self.timer = None
        self.deadline = 0.0
        self.lost = None
        self.requests = 0
        self.partial = 0            # the new stream whose HEADERS frame is still arriving
        self.dropped = None         # streams reset for client_header_timeout before their headers
        self.prio = None            # PriorityTree once the client sends a priority
        self.acked = False          # the client acknowledged our SETTINGS
        self.fed: list = []         # streams with body bytes of this read (flush_body)
        self.batch = False      # in data_received: frames out wait for its one flush
        self.flush_soon = False     # out of it: one flush per loop turn (flush_later)
        srv = listen.default_server
        self.conf = srv
        h2 = self.h2 = _H2(config=_CONFIG)
        h2.incoming_buffer = _FrameBuffer(server=True)
        h2.block_sizes = {}
        h2.local_settings = _LocalSettings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: srv.http2_max_concurrent_streams,
            SettingCodes.INITIAL_WINDOW_SIZE: min(srv.http2_body_preread_size, _MAX_WINDOW),
            SettingCodes.MAX_FRAME_SIZE: 16384,
            SettingCodes.ENABLE_PUSH: 0,
            # RFC 8441 (http2_websocket, ngate/http2/websocket.py)
            SettingCodes.ENABLE_CONNECT_PROTOCOL: 1 if srv.http2_websocket else 0,
        })
        number, size = srv.large_client_header_buffers
        h2.decoder = NginxDecoder(size, number * size)
        h2.frame_limit = max(16384, number * size + 16384)
        h2.encoder = StatelessEncoder()

    # ------------------------------------------------------------ asyncio Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.started = time.monotonic()     # $connection_time
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
        if self.listen.ssl_context is not None:
            self.tls = transport.get_extra_info("ssl_object")
        h2 = self.h2
        h2.initiate_connection()
        h2.increment_flow_control_window(_MAX_WINDOW - 65535)
        self.flush()
        self._arm(self._idle_value())

    def data_received(self, data: bytes) -> None:
        try:
            self._receive(data)
        except Exception as exc:        # a defect of ngate's: logged, never a traceback to asyncio
            error_log.alert("internal error: " + "".join(traceback.format_exception(exc))
                            .replace("\n", " | ") + ", client: " + self.remote_addr, self.number)
            self._fail(ErrorCodes.INTERNAL_ERROR, "closing the HTTP/2 connection after an internal error")

    def _receive(self, data: bytes) -> None:
        if self.closing:
            return
        self.new_streams = 0
        try:
            events = self.h2.receive_data(data)
        except HpackFault as exc:
            return self._fail(exc.code, exc.message, self.h2.headers_sid)
        except DenialOfServiceError as exc:
            return self._fail(ErrorCodes.ENHANCE_YOUR_CALM, self._limit_message(exc))
        except FlowControlError as exc:
            return self._fail(ErrorCodes.FLOW_CONTROL_ERROR, f"client violated flow control ({exc})")
        except ProtocolError as exc:
            if "continuation" in str(exc).lower():      # CVE-2024-27316
                return self._fail(ErrorCodes.ENHANCE_YOUR_CALM,
                                  "client sent too many CONTINUATION frames")
            return self._fail(ErrorCodes.PROTOCOL_ERROR, f"client sent invalid HTTP/2 ({exc})")
        pending = self.h2.incoming_buffer._data
        if len(pending) > 9 and pending[3] == 0x1:
            try:
                check_partial(bytes(pending))
            except HpackFault as exc:
                sid = int.from_bytes(pending[5:9], "big") & 0x7fffffff
                return self._fail(exc.code, exc.message, sid)
        self.batch = True
        try:
            self._events(events)
        finally:
            self.batch = False
        if self.closing:
            return
        if self.flood > _FLOOD:
            return self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "http2 flood detected")
        self.flush()        # one write for every stream answered in this read
        if not self.closing:
            if self.transport.get_write_buffer_size() > _OUT_LIMIT and self.write_paused:
                return self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "http2 flood detected")
            self._idle_or_recv()

    def _events(self, events) -> None:
        windows = None
        for ev in events:
            cls = ev.__class__
            if cls is DataReceived:
                self._data(ev)
            elif cls is RequestReceived:
                self._request(ev)
            elif cls is StreamEnded:
                s = self.streams.get(ev.stream_id)
                if s is not None:
                    s.body_end()
            elif cls is WindowUpdated:
                # h2 applied every frame of this read before these events: the streams whose
                # windows opened send after the loop, in priority order
                self.flood += 1
                if windows is None:
                    windows = set()
                windows.add(ev.stream_id)
            elif cls is StreamReset:
                self._reset(ev)
            elif cls is SettingsAcknowledged:
                self.acked = True
            elif cls is ConnectionTerminated:
                self.going_away = True
                if not self.streams:
                    return self._close()
            elif cls in (PingReceived, RemoteSettingsChanged, PriorityUpdated):
                self.flood += 1
                if cls is PriorityUpdated:
                    if self.prio is None:
                        self.prio = PriorityTree()
                    self.prio.set(ev.stream_id, ev.depends_on, ev.weight, ev.exclusive)
                if cls is RemoteSettingsChanged:
                    if windows is None:
                        windows = set()
                    windows.add(0)
            if self.closing:
                return
        if self.fed:
            fed, self.fed = self.fed, []
            for s in fed:
                s.flush_body()
            if self.closing:
                return
        if windows is not None:
            self._windows(windows)

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        self.lost = exc
        self.closing = True
        self._cancel_timer()
        self.runtime.connection_closed(self)
        streams = list(self.streams.values())
        self.streams = {}
        for s in streams:
            s.client_closed(exc)

    def pause_writing(self) -> None:
        self.write_paused = True
        for s in list(self.streams.values()):
            if not s.write_paused:
                s.write_paused = True
                if s.writer is not None:
                    s.writer.downstream_paused()

    def resume_writing(self) -> None:
        self.write_paused = False
        for s in self._by_priority(list(self.streams.values())):
            s.window_opened()

    # ------------------------------------------------------------ frames in

    def _request(self, ev) -> None:
        sid = ev.stream_id
        srv = self.conf
        if sid == self.partial:
            self.partial = 0
        if self.dropped and sid in self.dropped:
            # reset already (client_header_timeout): closed in h2 without a second RST_STREAM
            self.dropped.discard(sid)
            self.h2._get_stream_by_id(sid).reset_stream(ErrorCodes.PROTOCOL_ERROR)
            return
        if self.going_away:
            return self._refuse(sid)
        self.new_streams += 1
        self.flood = max(0, self.flood - 100)
        limit = srv.http2_max_concurrent_streams
        if self.new_streams > 2 * limit:
            # nginx 1.25.3 (CVE-2023-44487): refused, and counted as a reset for the GOAWAY rule
            if self.new_streams == 2 * limit + 1:
                error_log.info("client sent too many streams at once, client: " + self.remote_addr,
                               self.number)
            self.resets += 1
            self.opened += 1
            self._refuse(sid)
            return self._rapid_reset()
        if len(self.streams) >= limit:
            return self._refuse(sid)
        if not self.acked and ev.stream_ended is None and srv.http2_body_preread_size < 65535:
            # nginx: its smaller window is not in force before the client acknowledged it
            error_log.info("client sent stream with data before settings were acknowledged, "
                           "client: " + self.remote_addr, self.number)
            return self._refuse(sid)
        stream = Http2Stream(self, sid)
        self.streams[sid] = stream
        if self.prio is not None:
            self.prio.opened(sid)
        self.opened += 1
        self.requests += 1
        stream.requests = self.requests
        self._cancel_timer()
        conf = srv.conf
        if self.requests >= conf.keepalive_requests or conf.keepalive_timeout == 0 \
                or time.monotonic() - self.started > conf.keepalive_time:
            self.goaway()       # nginx: the last stream of this connection (keep-alive rules)
        h2request.start(self, stream, ev)

    def _data(self, ev) -> None:
        s = self.streams.get(ev.stream_id)
        n = ev.flow_controlled_length
        if ev.data:
            self.flood = max(0, self.flood - 10)
        else:
            self.flood += 1
        self.conn_unacked += n
        if self.conn_unacked > 1 << 24:
            self.h2.increment_flow_control_window(self.conn_unacked)
            self.conn_unacked = 0
        if s is None:
            return
        s.body_data(ev.data, n, ev.stream_ended is not None)

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

    def _reset(self, ev) -> None:
        self.flood += 1
        self._stream_closed(ev.stream_id)
        s = self.streams.pop(ev.stream_id, None)
        if not ev.remote_reset:         # ours (_H2._receive_data_frame)
            error_log.info(f"client violated flow control for stream {ev.stream_id}, client: "
                           + self.remote_addr, self.number)
        if s is None:
            return
        if s.ctx is not None and not s.ctx.logged and ev.remote_reset:
            self.resets += 1
        s.client_closed()
        if not self._rapid_reset():
            self._after_stream()

    def _rapid_reset(self) -> bool:
        """More resets (and streams refused at once) than twice the stream limit, and more than
        half of the streams opened: GOAWAY ENHANCE_YOUR_CALM."""
        if self.resets > 2 * self.conf.http2_max_concurrent_streams \
                and self.resets * 2 > self.opened:
            self._fail(ErrorCodes.ENHANCE_YOUR_CALM,
                       "client sent too many RST_STREAM frames (rapid reset)")
            return True
        return False

    def start_stream(self, ctx, req) -> None:
        """A stream's request goes to the phases (TLS client checks first, as HTTP/1.1)."""
        if self.tls is not None and self.listen.ssl_context.verifies:
            from ngate.server.tls import _server_for, client_refusal, refuse
            server = _server_for(ctx, self.listen)
            refusal = client_refusal(self.tls, server, ctx.host, self.listen.ssl_context)
            if refusal is not None:
                return refuse(ctx, req, *refusal)
        phases.start_request(ctx, req)

    # ------------------------------------------------------------ frames out

    def send_stream(self, s) -> None:
        """Send what the stream has queued as far as the windows allow; END_STREAM at its end."""
        if s.closing or s.ended or self.closing:
            return
        h2 = self.h2
        sid = s.sid
        try:
            if s.hdrs is not None:
                hdrs = s.hdrs
                s.hdrs = None
                if s.ending and not s.out_size and s.trailers is None:
                    h2.send_headers(sid, hdrs, end_stream=True)
                    self._ended(s)
                    return self.flush_later()
                h2.send_headers(sid, hdrs)
            elif s.head is not None:
                return          # no head yet (a call_soon of a stream since reset)
            out = s.out
            if out:
                ctx = s.ctx
                chunk = (ctx.conf or self.conf).http2_chunk_size if ctx is not None \
                    else self.conf.http2_chunk_size
                sent = 0
                while s.out_size:
                    window = min(h2.local_flow_control_window(sid), h2.max_outbound_frame_size,
                                 chunk)
                    if window <= 0:
                        break
                    piece = bytes(out[sent:sent + window])
                    sent += len(piece)
                    s.out_size -= len(piece)
                    # the last piece carries END_STREAM, as nginx's last_buf (unless
                    # add_trailer's HEADERS frame follows)
                    last = s.ending and not s.out_size and s.trailers is None
                    h2.send_data(sid, piece, end_stream=last)
                    if last:
                        del out[:]
                        self._ended(s)
                        return self.flush_later()
                if sent:
                    del out[:sent]
                    s.progressed()
                    self.flood = 0
                if s.out_size:
                    s.stalled()
            if s.ending and not s.out_size:
                if s.trailers is not None:      # add_trailer: the trailing HEADERS frame
                    h2.send_headers(sid, s.trailers, end_stream=True)
                else:
                    h2.end_stream(sid)
                self._ended(s)
        except (StreamClosedError, ProtocolError):
            s.client_closed()
            self.streams.pop(sid, None)
        self.flush_later()

    def sendable(self, s) -> int:
        """Bytes of DATA the windows let the stream send now."""
        try:
            return self.h2.local_flow_control_window(s.sid)
        except (StreamClosedError, ProtocolError, KeyError):
            return 0

    def _ended(self, s) -> None:
        s.ended = True
        s._cancel_timer()
        s._cancel_body()
        if s.unlogged is not None:
            ctx, s.unlogged = s.unlogged, None
            log.log_request(ctx)
        req = s.current
        s.current = None
        s.ctx = None
        if req is not None and not req.complete:
            # the response is complete before the request body: nginx stops reading it
            try:
                self.h2.reset_stream(s.sid, ErrorCodes.NO_ERROR)
            except (StreamClosedError, ProtocolError):
                pass
        self.streams.pop(s.sid, None)
        self._stream_closed(s.sid)
        self._after_stream()

    def ack(self, s, n: int) -> None:
        """Reopen the stream's receive window by n consumed body bytes."""
        if self.closing or s.ended:
            return
        try:
            self.h2.increment_flow_control_window(n, stream_id=s.sid)
        except (StreamClosedError, ProtocolError, KeyError):
            return
        self.flush_later()

    def reset_stream(self, s, code) -> None:
        self.streams.pop(s.sid, None)
        self._stream_closed(s.sid)
        if not self.closing:
            try:
                self.h2.reset_stream(s.sid, code)
            except (StreamClosedError, ProtocolError):
                pass
            self.flush()
        self._after_stream()

    def _refuse(self, sid: int) -> None:
        try:
            self.h2.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
        except (StreamClosedError, ProtocolError):
            pass

    def flush_later(self) -> None:
        """Frames queued by a stream out of a client read (an upstream's response, a window
        reopened): written once this loop turn's callbacks are done, so the responses of
        several upstream reads leave in one write (one TLS record) instead of one each."""
        if not self.batch and not self.flush_soon:
            self.flush_soon = True
            self.runtime.loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self.flush_soon = False
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closing:
            try:
                self.transport.write(data)
            except RuntimeError:
                pass

    # ------------------------------------------------------------ lifecycle

    def _active(self) -> int:
        return len(self.streams)

    def _after_stream(self) -> None:
        if self.streams or self.closing:
            return
        if self.going_away:
            return self._close(linger=True)
        self._arm(self._idle_value())

    def _idle_or_recv(self) -> None:
        """http2_recv_timeout while a frame is incomplete, else http2_idle_timeout while no
        stream is active (streams have their own timeouts)."""
        buf = self.h2.incoming_buffer       # h2's FrameBuffer: a frame or header block begun
        if buf._data or buf._headers_buffer:
            sid = self._new_stream_arriving(buf)
            if sid:
                # nginx: the stream exists once its HEADERS frame begins; client_header_timeout
                # is that stream's, which is reset (the connection lives on)
                if sid != self.partial:
                    self.partial = sid
                    self._arm(self.conf.client_header_timeout, self._header_timeout)
                return
            self._arm(self.conf.http2_recv_timeout or self.conf.client_header_timeout,
                      self._recv_timeout)
        elif not self.streams:
            self._arm(self._idle_value())
        elif self.timer is not None:
            self._cancel_timer()

    def _new_stream_arriving(self, buf) -> int:
        """The id of a new stream whose header block has begun and not ended, else 0."""
        if buf._headers_buffer:
            sid = buf._headers_buffer[0].stream_id
        elif len(buf._data) >= 9 and buf._data[3] == 0x1:
            sid = int.from_bytes(buf._data[5:9], "big") & 0x7fffffff
        else:
            return 0
        return sid if sid > (self.h2.highest_inbound_stream_id or 0) and sid & 1 else 0

    def _header_timeout(self) -> None:
        sid, self.partial = self.partial, 0
        if self.closing or not sid:
            return
        error_log.info("client timed out (110: Connection timed out) while reading client "
                       "request headers, client: " + self.remote_addr, self.number)
        if self.dropped is None:
            self.dropped = set()
        self.dropped.add(sid)
        try:
            self.transport.write(RstStreamFrame(sid, error_code=ErrorCodes.PROTOCOL_ERROR)
                                 .serialize())
        except RuntimeError:
            pass
        if not self.streams:
            self._arm(self._idle_value())

    def _idle_value(self) -> float:
        """nginx 1.19.7+: keepalive_timeout between streams (http2_idle_timeout if set)."""
        return self.conf.http2_idle_timeout or self.conf.conf.keepalive_timeout

    def _recv_timeout(self) -> None:
        if self.closing:
            return
        error_log.info("client timed out (110: Connection timed out) while processing HTTP/2 "
                       "connection, client: " + self.remote_addr, self.number)
        self._close()

    def _fail(self, code, message: str, last_sid: int = 0) -> None:
        """A connection error: logged as nginx words it, GOAWAY (naming the last stream begun,
        as nginx's last_sid), close."""
        error_log.info(message + ", client: " + self.remote_addr, self.number)
        h2 = self.h2
        last = max(last_sid, h2.highest_inbound_stream_id or 0)
        try:
            h2.close_connection(error_code=code, last_stream_id=last)
        except ProtocolError:
            pass
        self.flush()
        self._close()

    def _limit_message(self, exc) -> str:
        if "header list" in str(exc):
            return "client exceeded http2_max_header_size limit"
        if "CONTINUATION" in str(exc) or "continuation" in str(exc):
            return "client sent too many CONTINUATION frames"
        return f"client sent too much ({exc})"

    def _close(self, linger: bool = False) -> None:
        """Close; `linger`: after GOAWAY with all answered, nginx's lingering close (our side
        shut, what still arrives dropped for lingering_timeout): a frame the client sends
        meanwhile (a PING) must not make the kernel reset the connection before the client
        has read the end of its responses."""
        if self.closing:
            return
        self.flush()        # what the last stream queued (its END_STREAM) goes first
        self.closing = True
        self._cancel_timer()
        streams = list(self.streams.values())
        self.streams = {}
        for s in streams:
            s.client_closed()
        t = self.transport
        if linger and self.tls is None and t.can_write_eof():
            t.write_eof()
            self.timer = self._linger_end
            self.deadline = self.runtime.loop.time() + self.conf.conf.lingering_timeout
            self.runtime.deadlines.watch(self)
            return
        t.close()

    def _linger_end(self) -> None:
        self.transport.close()

    def goaway(self) -> None:
        """Graceful stop or reload: GOAWAY with the last stream taken; streams in flight end."""
        if self.going_away or self.closing:
            return
        self.going_away = True
        self.flush()
        # written by hand: h2's own GOAWAY closes its state machine, and the streams in flight
        # must still send their responses
        frame = GoAwayFrame(0, last_stream_id=self.h2.highest_inbound_stream_id or 0,
                            error_code=ErrorCodes.NO_ERROR)
        try:
            self.transport.write(frame.serialize())
        except RuntimeError:
            pass

    # the runtime's view of a connection (graceful stop, abort)
    def close_if_idle(self) -> bool:
        self.goaway()
        if not self.streams:
            self._close(linger=True)
            return True
        return False

    def abort(self) -> None:
        if self.closing:
            return      # closed, or closing gracefully (a tunnel's 1001 close frame may be
            #             on its way out: an abort would reset it away)
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------ timers (server/clock.py)

    def _arm(self, timeout: float, callback=None) -> None:
        if timeout > 0:
            self.timer = callback or self._idle_timeout
            self.deadline = self.runtime.loop.time() + timeout
            self.runtime.deadlines.watch(self)

    def _idle_timeout(self) -> None:
        """http2_idle_timeout with no stream active: GOAWAY and close, as nginx."""
        if self.streams or self.closing:
            return
        self.goaway()
        self._close(linger=True)

    @classmethod
    def take_over(cls, old, transport, proto: str, data: bytes = b"") -> "Http2Connection":
        """The client chose HTTP/2 (ALPN h2, or the h2c preface): this connection takes the
        transport from the HTTP/1.x one that accepted it."""
        if old in old.runtime.connections:
            old.runtime.connection_closed(old, handover=True)
        old.closing = True
        conn = cls(old.runtime, old.listen, proto)
        conn.proxy_protocol = old.proxy_protocol
        transport.set_protocol(conn)
        conn.connection_made(transport)
        if data:
            conn.data_received(data)
        return conn
