"""WebSocket over HTTP/2 (RFC 8441, an ngate extension: nginx has no such thing).

With `http2_websocket on` (the default) an HTTP/2 connection advertises
SETTINGS_ENABLE_CONNECT_PROTOCOL, and a browser opens `wss://` as an extended CONNECT stream
(`:method CONNECT`, `:protocol websocket`) inside it. Such a stream goes through the normal
phases as the HTTP/1.1 upgrade request nginx would see: `$request_method` is GET, the request
carries `Upgrade: websocket`, `Connection: upgrade` and a `Sec-WebSocket-Key` of ngate's own
(the client sends none over HTTP/2), so the seed's recipe (`proxy_set_header Upgrade
$http_upgrade; proxy_set_header Connection "Upgrade";`) sends the backend an HTTP/1.1 Upgrade
handshake unchanged. `$request` keeps what the client sent: "CONNECT /path HTTP/2.0".

States of a WebSocketStream (an Http2Stream):
  phases     the request runs its phases; DATA that arrives is held, unacknowledged (so bounded
             by the stream's receive window)
  answered   a response other than a 101 (a 403, the backend's 404, ...) goes out as a normal
             response, and the stream is reset (NO_ERROR) unless the client ended it. A 2xx
             would tell the client its tunnel is open (RFC 9110 9.3.6): such a response (from
             `return 200`, or a backend answering 200 to the upgrade) is replaced by a 501
  checking   the backend's 101: its Sec-WebSocket-Accept must match ngate's key, else 502
  tunnel     :status 200 (with the 101's headers, less the hop-by-hop ones and the Accept) and
             the stream becomes the client side of proxy/tunnel.py's Tunnel through a
             StreamPipe: DATA frames <-> backend bytes. Flow control both ways: DATA is
             acknowledged (WINDOW_UPDATE) only while the backend's transport is below its
             high-water mark, and the backend is not read while more than the stream's high mark
             waits for the client's window. END_STREAM from the client is a FIN (write_eof) to
             the backend; the backend's EOF is END_STREAM; RST_STREAM is a TCP reset of the
             backend connection and the backend's reset is RST_STREAM CONNECT_ERROR.
             websocket_ping, the 1001 close frames at shutdown, proxy_read_timeout, metrics
             (label protocol="h2") and the access log line (at the close, status 200) are the
             Tunnel's, as for HTTP/1.1.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct

from ngate.http2.frames import ErrorCodes

from ngate.http1 import response as resp
from ngate.http2.head import h1_to_h2
from ngate.http2.stream import Http2Stream
from ngate.http2.stream_transport import StreamTransport
from ngate.observability import error_log
from ngate.http import phases
from ngate.proxy.tunnel import Side, Tunnel

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
UNKNOWN = 'client sent unknown pseudo-header ":protocol"'
_NOT_ON_200 = frozenset({b"sec-websocket-accept", b"content-length"})
_ACK_BATCH = 16384


def accept_for(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def extended_connect(conn, stream, protocol: bytes, headers: list, hdr: dict):
    """An extended CONNECT (request.py): (stream, method, refusal). The stream is replaced by a
    WebSocketStream and the headers get those of an HTTP/1.1 upgrade; refusal is an error
    message (400) when the extension is off or the protocol is not websocket."""
    if not conn.conf.http2_websocket:
        return stream, b"CONNECT", UNKNOWN
    if protocol.lower() != b"websocket":
        return stream, b"CONNECT", 'client sent unsupported ":protocol" "%s"' % (
            protocol.decode("latin-1"))
    ws = WebSocketStream()
    ws.open_on(conn, stream.sid)
    ws.requests = stream.requests
    # the stream's state in the one table (framing.py) is now this stream's
    ws.send_window = stream.send_window
    ws.recv_window = stream.recv_window
    ws.in_closed = stream.in_closed
    ws.out_closed = stream.out_closed
    conn.streams[stream.sid] = ws
    key = base64.b64encode(os.urandom(16))
    ws.key = key
    if b"sec-websocket-key" in hdr:     # not an HTTP/2 header (RFC 8441 5): ngate's replaces it
        headers[:] = [(n, v) for n, v in headers if n.lower() != b"sec-websocket-key"]
    for name, value in ((b"upgrade", b"websocket"), (b"connection", b"upgrade"),
                        (b"sec-websocket-key", key), (b"sec-websocket-version", b"13")):
        if name == b"sec-websocket-version" and name in hdr:
            continue
        headers.append((name, value))
        hdr[name] = value
    return ws, b"GET", None


class WebSocketStream(Http2Stream):
    __slots__ = ("key", "upgrade_head", "pipe", "refused", "held", "held_flow", "client_ended")
    line_method = "CONNECT"     # $request shows the request line the client sent
    respond_whole = None        # send_response goes through write_fields' 2xx check

    def open_on(self, h2c, sid: int) -> None:
        super().open_on(h2c, sid)
        self.key = b""
        self.upgrade_head = None    # the backend's 101 head, until the tunnel starts
        self.pipe = None            # StreamPipe once tunnelled
        self.refused = 0            # the body length of the 501 that replaced a 2xx
        self.held = []              # DATA before the tunnel (bounded by the receive window)
        self.held_flow = 0
        self.client_ended = False

    # ------------------------------------------------------------ the response head

    def write(self, data) -> None:
        if self.head is None or self.closing or self.ended:
            if not self.refused:
                Http2Stream.write(self, data)
            return
        head = self.head + bytes(data)
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self.head = head
            return
        status = int(head.split(b" ", 2)[1])
        if status == 101:
            self.head = None
            self.upgrade_head = head[:end]      # the tunnel (start_tunnel) sends :status 200
            return
        if 200 <= status < 300:
            return self._refuse_2xx(status)
        self.head = b""
        Http2Stream.write(self, head)

    def write_fields(self, hdrs: list, chunked: bool = False, body: bool = False) -> None:
        if self.head is not None and not self.closing and not self.ended:
            status = int(hdrs[0][1])
            if 200 <= status < 300:
                return self._refuse_2xx(status)
        Http2Stream.write_fields(self, hdrs, chunked, body)

    def _refuse_2xx(self, status: int) -> None:
        ctx = self.ctx
        error_log.error(f"a {status} response cannot answer an extended CONNECT (RFC 8441: "
                        "it would open the tunnel), sent 501" + error_log.request_suffix(ctx),
                        self.number)
        conf = ctx.conf
        page = resp.status_page(501, conf.server_tokens if conf is not None else True) or b""
        self.head = None
        self.refused = len(page)
        ctx.status = 501
        self.hdrs = [(b":status", b"501"), (b"content-type", b"text/html"),
                     (b"content-length", b"%d" % len(page))]
        if page:
            if self.out is None:
                self.out = bytearray(page)
            else:
                self.out += page
            self.out_size += len(page)
        self.h2c.runtime.loop.call_soon(self.h2c.send_stream, self)

    def finish_request(self, ctx) -> None:
        if self.refused:
            ctx.status = 501
            ctx.body_bytes_sent = self.refused
        if not self.client_ended and self.current is not None:
            self.current.complete = False   # answered without a tunnel: reset after the response
        Http2Stream.finish_request(self, ctx)

    # ------------------------------------------------------------ client DATA

    def body_data(self, data: bytes, flow: int, ended: bool = False) -> None:
        self.window -= flow
        pipe = self.pipe
        if pipe is None:
            if self.closing or self.ended or self.ctx is None:
                return self.h2c.ack(self, flow)
            self.held.append(data)
            self.held_flow += flow
            return
        self.unacked += flow
        if data:
            pipe.protocol.data_received(data)
        if self.unacked >= _ACK_BATCH or self.window < _ACK_BATCH:
            # a WINDOW_UPDATE per quarter window, not per message: one frame (and, between
            # small messages, one write) less per message
            self.ack_body()

    def body_end(self) -> None:
        self.client_ended = True
        req = self.current
        if req is not None:
            req.complete = True
        pipe = self.pipe
        if pipe is not None:
            pipe.client_eof()

    def client_closed(self, exc=None) -> None:
        pipe = self.pipe
        if pipe is None:
            return Http2Stream.client_closed(self, exc)
        if self.closing:
            return
        self.closing = True
        self.out = bytearray()
        self.out_size = 0
        pipe.client_reset()

    # ------------------------------------------------------------ the tunnel

    def start_tunnel(self, ctx, uconn, upstream_bytes: bytes) -> None:
        """The backend said 101 (proxy/tunnel.py's start_tunnel): check it, :status 200, pump."""
        head = self.upgrade_head
        self.upgrade_head = None
        transport = uconn.transport
        uconn.parser = None
        if self.closing or head is None:
            transport.close()
            return
        _status, headers, _chunked = h1_to_h2(head)
        accept = next((v for n, v in headers if n == b"sec-websocket-accept"), None)
        if accept != accept_for(self.key):
            transport.close()
            error_log.error('upstream sent invalid "Sec-WebSocket-Accept" header while reading '
                            "response header from upstream" + error_log.request_suffix(ctx),
                            self.number)
            self.head = b""
            ctx.head_sent = False
            ctx.keep_alive = False
            return phases.finalize(ctx, 502)
        self.hdrs = [(b":status", b"200")] + [(n, v) for n, v in headers[1:]
                                              if n not in _NOT_ON_200]
        ctx.status = 200
        ctx.req = None
        pipe = self.pipe = StreamPipe(self)
        self.writer = pipe
        tunnel = H2Tunnel(ctx, pipe, transport)
        pipe.tunnel = tunnel
        self.ctx = None         # the Tunnel keeps what it needs; a reset is no rapid-reset
        held = b"".join(self.held)
        self.held = []
        self.unacked += self.held_flow
        self.held_flow = 0
        if self.current is not None:
            self.current.complete = self.client_ended  # not ended: reset after our END_STREAM
        self.h2c.send_stream(self)
        tunnel.start(held, upstream_bytes)
        if tunnel.closed:
            return
        self.ack_body()
        if self.client_ended:
            pipe.client_eof()


class StreamPipe(StreamTransport):
    """The stream as the Tunnel's client transport (and as the stream's writer: the stream calls
    downstream_paused/resumed as its queued bytes pass the high/low marks)."""
    __slots__ = ("protocol", "tunnel")

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.protocol = None
        self.tunnel = None

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def get_write_buffer_size(self) -> int:
        return self.stream.out_size

    def close(self) -> None:
        """The tunnel ends: END_STREAM once the queued bytes are out (RST_STREAM CONNECT_ERROR
        when the backend reset its connection)."""
        s = self.stream
        if s.closing or s.ended:
            return
        if self.tunnel is not None and self.tunnel.upstream_reset:
            return s.reset(ErrorCodes.CONNECT_ERROR)
        s.ending = True
        s.h2c.send_stream(s)

    def abort(self) -> None:
        self.stream.reset(ErrorCodes.CANCEL)

    # the stream's writer
    def downstream_paused(self) -> None:
        if self.protocol is not None:
            self.protocol.pause_writing()

    def downstream_resumed(self) -> None:
        if self.protocol is not None:
            self.protocol.resume_writing()

    def client_gone(self) -> None:
        self.client_reset()

    # from the stream
    def client_eof(self) -> None:
        """END_STREAM: a FIN to the backend; the tunnel ends when the backend closes too."""
        t = self.tunnel
        if t is None or t.closed:
            return
        up = t.upstream
        if up.can_write_eof():
            try:
                up.write_eof()
            except (OSError, RuntimeError):
                t.close("client")
        else:
            t.close("client")

    def client_reset(self) -> None:
        """RST_STREAM (or the HTTP/2 connection lost): reset the backend's TCP connection."""
        t = self.tunnel
        if t is None or t.closed:
            return
        up = t.upstream
        sock = up.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        up.abort()
        t.close("client")


class UpstreamSide(Side):
    """The backend's side: a connection reset is told apart from a close (RST_STREAM vs
    END_STREAM)."""
    __slots__ = ()

    def connection_lost(self, exc) -> None:
        if exc is not None and self.tunnel is not None:
            self.tunnel.upstream_reset = True
        Side.connection_lost(self, exc)


class H2Tunnel(Tunnel):
    __slots__ = ("upstream_reset",)
    protocol = "h2"

    def __init__(self, ctx, pipe, upstream) -> None:
        super().__init__(ctx, pipe, upstream, True)
        self.upstream_reset = False
        self.from_upstream = UpstreamSide(self, pipe, False)
