"""A WebSocket client over HTTP/2 (RFC 8441) for frame-level tests: an extended CONNECT on an
H2Client stream, then WebSocket frames (wsproto's sans-IO FrameProtocol, client side: masked)
in DATA frames."""
from __future__ import annotations

from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode

from tests.harness.h2client import H2Client

ENABLE_CONNECT_PROTOCOL = 0x8


def graceful_goaway(client: H2Client) -> None:
    """Let the h2 library go on reading after a GOAWAY (it takes any GOAWAY as the end of the
    connection; a graceful one lets the streams in flight finish, as browsers read it)."""
    from h2.connection import ConnectionInputs, ConnectionState
    sm = client.conn.state_machine
    sm._transitions = dict(sm._transitions)
    sm._transitions[ConnectionState.CLIENT_OPEN, ConnectionInputs.RECV_GOAWAY] = (
        None, ConnectionState.CLIENT_OPEN)


class H2WebSocket:
    def __init__(self, client: H2Client, path: str = "/wss", headers=(), scheme: str = "http",
                 authority: str = "localhost") -> None:
        self.c = client
        self.frames = FrameProtocol(client=True, extensions=[])
        self.messages: list = []
        self.pings: list[bytes] = []
        self.close_code = None
        self._parts: list = []
        c = client
        c.pump(lambda: ENABLE_CONNECT_PROTOCOL in c.conn.remote_settings, 2)
        self.sid = sid = c.conn.get_next_available_stream_id()
        hdrs = [(b":method", b"CONNECT"), (b":protocol", b"websocket"),
                (b":scheme", scheme.encode()), (b":path", path.encode()),
                (b":authority", authority.encode()), (b"sec-websocket-version", b"13"),
                *headers]
        c.conn.send_headers(sid, hdrs)
        c.flush()
        c.pump(lambda: sid in c.heads or sid in c.resets or sid in c.ended, 5)
        head = dict(c.heads.get(sid, []))
        self.status = int(head[b":status"]) if b":status" in head else 0
        self.headers = head
        self._seen = 0

    # ------------------------------------------------------------ sending

    def send(self, msg) -> None:
        self.send_raw(self.frames.send_data(msg, fin=True))

    def send_raw(self, data: bytes, end: bool = False) -> None:
        c = self.c
        view = memoryview(data)
        while True:
            n = min(len(view), c.conn.local_flow_control_window(self.sid),
                    c.conn.max_outbound_frame_size)
            if n <= 0 and len(view):
                if not c.pump(lambda: c.conn.local_flow_control_window(self.sid) > 0
                              or self.sid in c.resets, 5) or self.sid in c.resets:
                    raise TimeoutError("stream window stays shut")
                continue
            last = n == len(view)
            c.conn.send_data(self.sid, bytes(view[:n]), end_stream=end and last)
            c.flush()
            view = view[n:]
            if last:
                return

    def ping_reply(self, payload: bytes) -> None:
        self.send_raw(self.frames.pong(payload))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.send_raw(self.frames.close(code, reason))

    def end(self) -> None:
        self.c.conn.end_stream(self.sid)
        self.c.flush()

    def reset(self) -> None:
        self.c.conn.reset_stream(self.sid)
        self.c.flush()

    # ------------------------------------------------------------ receiving

    def _feed(self) -> None:
        body = self.c.bodies.get(self.sid, b"")
        if len(body) > self._seen:
            self.frames.receive_bytes(bytes(body[self._seen:]))
            self._seen = len(body)
        for frame in self.frames.received_frames():
            if frame.opcode is Opcode.PING:
                self.pings.append(bytes(frame.payload))
            elif frame.opcode is Opcode.CLOSE:
                self.close_code = frame.payload[0] if isinstance(frame.payload, tuple) else \
                    getattr(frame.payload, "code", frame.payload)
            elif frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION):
                self._parts.append(frame.payload)
                if frame.message_finished:
                    first = self._parts[0]
                    self.messages.append(("" if isinstance(first, str) else b"").join(self._parts))
                    self._parts = []

    def wait(self, until, timeout: float = 5.0) -> bool:
        def check():
            self._feed()
            return until()
        return self.c.pump(check, timeout) or check()

    def recv(self, timeout: float = 5.0):
        if not self.wait(lambda: self.messages, timeout):
            raise TimeoutError(f"no message (ended={self.ended}, reset={self.reset_code})")
        return self.messages.pop(0)

    @property
    def ended(self) -> bool:
        return self.sid in self.c.ended

    @property
    def reset_code(self):
        return self.c.resets.get(self.sid)


__all__ = ["H2WebSocket", "CloseReason"]
