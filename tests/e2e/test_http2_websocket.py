"""WebSocket over HTTP/2 (RFC 8441, ngate/http2/websocket.py): a frame-level h2 client opens
extended CONNECT streams through the seed's /wss block to a real `websockets` echo server.

The stream runs the phases as the HTTP/1.1 upgrade (deny, return, the backend's refusal come
back as normal responses), ngate sends the backend its own handshake and checks its answer, DATA
frames and backend bytes are pumped with flow control both ways, END_STREAM / RST_STREAM map to
FIN / RST, websocket_ping and the metrics work as for HTTP/1.1 tunnels."""
from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request

import pytest
from h2.errors import ErrorCodes

from tests.e2e.test_websocket import CLOSE_CODES, FLOODED, SEED_LOCATION, EchoServer
from tests.harness.backend import Backend, Reply
from tests.harness.h2client import H2Client
from tests.harness.h2ws import ENABLE_CONNECT_PROTOCOL, H2WebSocket
from tests.harness.processes import ProxyProcess, free_port

CONF = """
error_log {prefix}/logs/error.log info;
events {}
http {
    log_format ws '$request|$status|$request_method|$http_upgrade|$server_protocol|$http2|$body_bytes_sent';
    access_log {prefix}/logs/access.log ws;
    server {
        listen 127.0.0.1:{port} http2;
        server_name example.test;
""" + SEED_LOCATION + """
        location /pinged {
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
            websocket_ping 1s;
        }
        location /denied {
            deny all;
            proxy_pass http://127.0.0.1:{ws_port};
        }
        location /hello { return 200 "hello\\n"; }
        location /up/ {
            proxy_pass http://127.0.0.1:{backend};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
        }
        location /raw/ {
            proxy_pass http://127.0.0.1:{raw_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
        }
        location = /metrics { metrics; }
    }
    server {
        listen 127.0.0.1:{off_port} http2;
        http2_websocket off;
""" + SEED_LOCATION + """
    }
}
"""


class RawBackend:
    """Accepts the upgrade with a correct Sec-WebSocket-Accept, then does what `mode` says:
    "stall" (never reads), "reset" (RST at once)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns: list = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        import base64
        import hashlib
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            head = b""
            while b"\r\n\r\n" not in head:
                d = c.recv(4096)
                if not d:
                    break
                head += d
            m = re.search(rb"(?i)sec-websocket-key: *(\S+)", head)
            key = m.group(1) if m else b""
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            path = head.split(b" ")[1]
            if path.endswith(b"/bad"):
                accept = b"x" + accept[1:]
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            if path.endswith(b"/reset"):
                time.sleep(0.3)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.close()

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture(scope="module")
def servers():
    with EchoServer() as echo, Backend() as backend:
        backend.route("/up/missing", Reply(status=404, body=b"no such socket\n"))
        backend.route("/up/ok", Reply(status=200, body=b"not a websocket\n"))
        raw = RawBackend()
        yield echo, backend, raw
        raw.close()


@pytest.fixture(scope="module")
def ngate(tmp_path_factory, servers):
    echo, backend, raw = servers
    prefix = tmp_path_factory.mktemp("ngate-h2ws")
    with ProxyProcess("ngate", CONF, prefix, ws_port=echo.port, backend=backend.port,
                      raw_port=raw.port, off_port=free_port()) as p:
        yield p


def wait_log(p, pattern: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = p.access_log() + p.error_log()
        if re.search(pattern, text):
            return text
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not logged:\n{p.access_log()[-2000:]}\n{p.error_log()[-2000:]}")


def open_ws(ngate, path="/wss", **kw) -> H2WebSocket:
    return H2WebSocket(H2Client(ngate.port), path, **kw)


# ---------------------------------------------------------------- handshake and echo

def test_handshake_echo_and_what_the_backend_saw(ngate):
    ws = open_ws(ngate, headers=[(b"sec-websocket-protocol", b"chat"),
                                 (b"user-agent", b"h2ws-test")])
    try:
        assert ws.c.conn.remote_settings[ENABLE_CONNECT_PROTOCOL] == 1
        assert ws.status == 200, ws.headers
        assert ws.headers[b"sec-websocket-protocol"] == b"chat"
        assert b"sec-websocket-accept" not in ws.headers
        ws.send("hello")
        assert ws.recv() == "hello"
        ws.send(b"\x00\x01\xff")
        assert ws.recv() == b"\x00\x01\xff"
        ws.send("headers")
        seen = json.loads(ws.recv())
        assert seen["upgrade"] == "websocket"
        assert seen["connection"] == "Upgrade"
        assert seen["sec-websocket-version"] == "13"
        assert seen["sec-websocket-protocol"] == "chat"
        assert len(seen["sec-websocket-key"]) == 24       # ngate's own
        assert seen["x-real-ip"] == "127.0.0.1"
        ws.close(1000, "bye")
        assert ws.wait(lambda: ws.ended)
        assert ws.close_code == 1000
    finally:
        ws.c.close()
    wait_log(ngate, r"CONNECT /wss HTTP/2.0\|200\|GET\|websocket\|HTTP/2.0\|h2c\|\d+")
