"""A frame-level HTTP/2 client for tests (the `h2` library over a blocking socket, h2c with
prior knowledge or TLS with ALPN h2): requests, raw frames for attacks, and what came back."""
from __future__ import annotations

import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from h2.exceptions import ProtocolError


class H2Client:
    def __init__(self, port: int, tls: ssl.SSLContext | None = None, server_name: str | None = None,
                 window: int | None = None, timeout: float = 5.0) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls is not None:
            tls.set_alpn_protocols(["h2"])
            raw = tls.wrap_socket(raw, server_hostname=server_name)
        self.sock = raw
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.events: list = []
        self.bodies: dict[int, bytearray] = {}
        self.heads: dict[int, list] = {}
        self.ended: set[int] = set()
        self.resets: dict[int, int] = {}
        self.goaway = None          # ConnectionTerminated once seen
        self.closed = False
        self.auto_ack: set[int] | None = None   # stream ids whose DATA is acknowledged (None: all)

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def request(self, path: str = "/", method: str = "GET", headers=(), body: bytes | None = None,
                authority: str = "localhost", end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(b":method", method.encode()), (b":path", path.encode()),
                (b":scheme", b"http"), (b":authority", authority.encode()), *headers]
        self.conn.send_headers(sid, hdrs, end_stream=end and body is None)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=end)
        self.flush()
        return sid

    def pump(self, until, timeout: float = 5.0) -> bool:
        """Read and handle frames until until() is true (True) or timeout/close (False)."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return until()
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return until()
            except OSError:
                self.closed = True
                return until()
            if not data:
                self.closed = True
                return until()
            try:
                events = self.conn.receive_data(data)
            except ProtocolError:
                self.closed = True
                return until()
            for ev in events:
                self.events.append(ev)
                if isinstance(ev, h2.events.ResponseReceived):
                    self.heads[ev.stream_id] = ev.headers
                elif isinstance(ev, h2.events.DataReceived):
                    self.bodies.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                    if self.auto_ack is None or ev.stream_id in self.auto_ack:
                        self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    else:   # the connection window only: the stream stays shut
                        self.conn.increment_flow_control_window(ev.flow_controlled_length)
                elif isinstance(ev, h2.events.StreamEnded):
                    self.ended.add(ev.stream_id)
                elif isinstance(ev, h2.events.StreamReset):
                    self.resets[ev.stream_id] = ev.error_code
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = ev
            try:
                self.flush()
            except OSError:
                self.closed = True
        return True

    def response(self, sid: int, timeout: float = 5.0) -> tuple[int, dict, bytes]:
        self.pump(lambda: sid in self.ended or sid in self.resets, timeout)
        head = dict(self.heads.get(sid, []))
        status = int(head[b":status"]) if b":status" in head else 0
        return status, head, bytes(self.bodies.get(sid, b""))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "H2Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
