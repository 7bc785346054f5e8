"""Repeated 101 heads (ngate: proxy/known_head.py's known_upgrade): a backend that answers every
handshake with the same head but for its Sec-WebSocket-Accept. From the second handshake on,
ngate translates the head without llhttp; each client must still get its own accept value, the
backend's other headers, the bytes the backend sent right after its head, and a working tunnel,
as from nginx. A head whose accept value is not a 28-character base64 digest goes through llhttp
each time and passes on unchanged."""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading

import pytest

from tests.harness.ws_echo import masked_text, read_until

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HELLO = b"\x81\x05hello"        # an unmasked text frame from the backend, right after its 101

CONF = """
http {
    access_log off;
    server {
        listen 127.0.0.1:{port};
        location / {
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }
        location /hidden {
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_hide_header Sec-WebSocket-Accept;
            proxy_pass_header Server;
        }
        location /added {
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            add_header X-Added yes always;
        }
    }
}
"""


def accept_for(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


class RawUpgrader:
    """Answers each connection's handshake with one fixed 101 head shape and HELLO in the same
    write, then echoes what arrives. `/odd` gets an accept value that is no digest."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    @staticmethod
    def _one(conn: socket.socket) -> None:
        with conn:
            head = read_until(conn, b"\r\n\r\n")
            key = next((line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                        if line.lower().startswith(b"sec-websocket-key:")), b"")
            accept = b"not-a-digest" if head.startswith(b"GET /odd") else accept_for(key)
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
                         b"\r\nX-Backend: raw\r\nServer: raw\r\n\r\n" + HELLO)
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)


@pytest.fixture
def proxy(start_proxy):
    with RawUpgrader() as backend:
        yield start_proxy(CONF, ws_port=backend.port)


def _handshake(proxy, path: str, key: bytes) -> tuple[dict, bytes, socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                 b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    got = read_until(sock, b"\r\n\r\n" + HELLO)
    head, _, rest = got.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return headers, rest, sock, head


def _without_varying(head: bytes, accept: bytes) -> bytes:
    return b"\r\n".join(line for line in head.replace(accept, b"<accept>").split(b"\r\n")
                        if not line.startswith(b"Date: "))


@pytest.mark.parametrize("path", ["/ws", "/odd", "/hidden", "/added"])
def test_each_handshake_gets_its_own_accept(proxy, path):
    first = None
    for _ in range(4):
        key = base64.b64encode(os.urandom(16))
        headers, rest, sock, head = _handshake(proxy, path, key)
        with sock:
            want = b"not-a-digest" if path == "/odd" else accept_for(key)
            if path == "/hidden":
                assert b"sec-websocket-accept" not in headers
                assert headers[b"server"] == b"raw"
            else:
                assert headers[b"sec-websocket-accept"] == want
            if path == "/added":
                assert headers[b"x-added"] == b"yes"
            assert headers[b"upgrade"] == b"websocket"
            assert headers[b"connection"].lower() == b"upgrade"
            assert headers[b"x-backend"] == b"raw"
            assert rest == HELLO            # the backend's bytes after its head, first
            # the first head went through the parser, the next ones (ngate) the known way:
            # the same bytes but the accept value and the Date
            same = _without_varying(head, want)
            assert first is None or same == first
            first = same
            frame = masked_text(b"ping")
            sock.sendall(frame)
            assert read_until(sock, frame) == frame     # echoed through the tunnel
