"""WebSocket through the seed's recipe, against nginx and ngate: a real `websockets` echo server
behind the proxy and a real `websockets` client in front of it.

The echo server (`EchoServer`, also runnable as a subprocess with `run_echo(port)`) echoes every
message and understands a few commands sent as text: `headers` (answers the handshake headers it
received, as JSON), `close <code> <reason>`, `fragments <n>` (sends one message in n fragments),
`flood <bytes>` (sends binary data until that many bytes were written or the writer blocks).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import threading
import time

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

SEED_LOCATION = """
        location /wss {
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
            proxy_set_header X-Real-IP $remote_addr;
        }
"""

CONF = """
http {
    log_format tunnel '$request $status $body_bytes_sent';
    log_format full '$remote_addr "$request" $status $body_bytes_sent $bytes_sent $request_time '
                    '$upstream_addr "$http_user_agent" $upstream_status $upstream_response_time '
                    '$upstream_bytes_sent $connection_requests';
    access_log {prefix}/logs/access.log tunnel;
    access_log {prefix}/logs/full.log full;
    map $http_upgrade $connection_upgrade {
        default upgrade;
        '' close;
    }
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
""" + SEED_LOCATION + """
        location /map {
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }
        location /plain {
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
        }
        location /short {
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
            proxy_read_timeout 1s;
            proxy_send_timeout 1s;
        }
        location /quiet {
            access_log off;
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
            proxy_read_timeout 1s;
        }
    }
}
"""

SUBPROTOCOLS = ["superchat", "chat"]


def _select_subprotocol(connection, offered):
    """The server's preference among what the client offered; none offered is fine."""
    return next((p for p in SUBPROTOCOLS if p in offered), None)


# ---------------------------------------------------------------- the echo backend

async def _handler(ws) -> None:
    try:
        if ws.request.path.endswith("/greet"):
            await ws.send("welcome")
        async for msg in ws:
            if isinstance(msg, str) and msg.startswith("headers"):
                await ws.send(json.dumps({k.lower(): v for k, v in ws.request.headers.raw_items()}))
            elif isinstance(msg, str) and msg.startswith("close "):
                _, code, reason = msg.split(" ", 2)
                await ws.close(int(code), reason)
            elif isinstance(msg, str) and msg.startswith("fragments "):
                n = int(msg.split()[1])
                await ws.send(f"part{i};" for i in range(n))
            elif isinstance(msg, str) and msg.startswith("flood "):
                await _flood(ws, int(msg.split()[1]))
            else:
                await ws.send(msg)
    except ConnectionClosed:
        pass
    finally:
        CLOSE_CODES.append(ws.close_code)


async def _flood(ws, total: int) -> None:
    """Send binary messages until `total` bytes are written; record progress for the test."""
    chunk = b"x" * 65536
    ws.flooded = 0
    while ws.flooded < total:
        await ws.send(chunk)
        ws.flooded += len(chunk)
        FLOODED[0] = ws.flooded


FLOODED = [0]
CLOSE_CODES: list = []      # the close code of every connection the echo server saw end


class EchoServer:
    """The websockets echo server on 127.0.0.1 in a thread (its own loop)."""

    def __init__(self, **options) -> None:
        self.port = 0
        self.options = dict(select_subprotocol=_select_subprotocol, max_size=None, ping_interval=None) | options
        self._loop = None
        self._thread = None

    def __enter__(self) -> "EchoServer":
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()

            async def main() -> None:
                self._stop = loop.create_future()
                async with serve(_handler, "127.0.0.1", 0, **self.options) as server:
                    self.port = server.sockets[0].getsockname()[1]
                    ready.set()
                    await self._stop
            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)


def run_echo(port: int) -> None:
    """The echo server in the foreground (for tests that need it as a separate process)."""
    async def main() -> None:
        async with serve(_handler, "127.0.0.1", port, select_subprotocol=_select_subprotocol, max_size=None,
                         ping_interval=None):
            await asyncio.Future()
    asyncio.run(main())


@pytest.fixture
def echo():
    with EchoServer() as server:
        yield server


@pytest.fixture
def proxy(start_proxy, echo):
    return start_proxy(CONF, ws_port=echo.port)


def ws_connect(proxy, path: str = "/wss", **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 5)
    return connect(f"ws://127.0.0.1:{proxy.port}{path}", **kw)


# ---------------------------------------------------------------- conversations

@pytest.mark.parametrize("path", ["/wss", "/map"])
def test_text_binary_and_handshake_headers(proxy, path):
    with ws_connect(proxy, path) as ws:
        ws.send("hello")
        assert ws.recv(5) == "hello"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(5) == b"\x00\x01\xff"
        ws.send("headers")
        seen = json.loads(ws.recv(5))
    assert seen["upgrade"] == "websocket"
    assert seen["connection"].lower() == "upgrade"
    if path == "/wss":
        assert seen["x-real-ip"] == "127.0.0.1"
    assert ws.response.status_code == 101
    assert ws.response.headers["Upgrade"].lower() == "websocket"
    assert ws.response.headers["Connection"].lower() == "upgrade"


def test_fragmented_messages_pass_untouched(proxy):
    with ws_connect(proxy) as ws:
        ws.send(iter(["a", "b", "c"]))              # client -> backend fragmented
        assert ws.recv(5) == "abc"
        ws.send("fragments 4")                      # backend -> client fragmented
        parts = list(ws.recv_streaming(5))
    # websockets ends an iterated message with an empty final frame: 5 frames arrive as sent
    assert parts == ["part0;", "part1;", "part2;", "part3;", ""]


def test_16_mib_messages_both_ways(proxy):
    payload = os.urandom(16 << 20)
    with ws_connect(proxy) as ws:
        ws.send(payload)
        assert ws.recv(30) == payload


def test_ping_pong(proxy):
    with ws_connect(proxy) as ws:
        assert ws.ping(b"are you there").wait(5)


def test_subprotocol_negotiation(proxy):
    with ws_connect(proxy, subprotocols=["chat", "superchat"]) as ws:
        assert ws.subprotocol == "superchat"
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "superchat"
        ws.send("x")
        assert ws.recv(5) == "x"


@pytest.mark.parametrize("code,reason", [(4001, "custom going"), (1000, "bye"), (1008, "policy")])
def test_close_codes_from_backend(proxy, code, reason):
    with ws_connect(proxy) as ws:
        ws.send(f"close {code} {reason}")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(5)
    assert info.value.rcvd.code == code and info.value.rcvd.reason == reason


def test_close_code_from_client(proxy):
    with ws_connect(proxy) as ws:
        ws.close(4100, "client leaving")
    assert ws.protocol.close_rcvd.code == 4100      # the echo server's answer came back


def test_permessage_deflate_end_to_end(proxy):
    with ws_connect(proxy, compression="deflate") as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        text = "compress me " * 5000
        ws.send(text)
        assert ws.recv(5) == text
        ws.send("headers")
        seen = json.loads(ws.recv(5))
    assert "permessage-deflate" in seen["sec-websocket-extensions"]


# ---------------------------------------------------------------- raw-socket cases

def _handshake(path: str = "/wss", extra: bytes = b"") -> bytes:
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


def _masked_text(text: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    return bytes([0x81, 0x80 | len(text)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(text))


def _read_until(sock: socket.socket, marker: bytes, limit: float = 5.0) -> bytes:
    buf = b""
    sock.settimeout(limit)
    while marker not in buf:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    return buf


def test_frame_pipelined_behind_the_handshake(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(_handshake() + _masked_text(b"early bird"))
        got = _read_until(s, b"early bird")
    assert got.startswith(b"HTTP/1.1 101 ")
    head, _, frames = got.partition(b"\r\n\r\n")
    assert frames == b"\x81\x0aearly bird"


def test_frame_sent_right_after_the_101(proxy):
    with ws_connect(proxy, "/wss/greet") as ws:
        assert ws.recv(5) == "welcome"


def test_idle_tunnel_closed_by_proxy_read_timeout(proxy):
    with ws_connect(proxy, "/short") as ws:
        ws.send("x")
        assert ws.recv(5) == "x"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(10)
    assert info.value.rcvd is None          # TCP closed, no close frame (1006), as nginx does


def test_timeout_without_access_log_names_the_request_in_the_error_log(proxy):
    """The tunnel keeps no request state when nothing will be logged at close; the timeout
    error still carries nginx's request context."""
    with ws_connect(proxy, "/quiet") as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(10)
    deadline = time.monotonic() + 5
    while "proxying upgraded" not in proxy.error_log() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(l for l in proxy.error_log().splitlines() if "proxying upgraded" in l)
    assert ("upstream timed out (110: Connection timed out) while proxying upgraded connection, "
            'client: 127.0.0.1, server: example.test, request: "GET /quiet HTTP/1.1", '
            f'upstream: "http://127.0.0.1:{proxy.params["ws_port"]}/quiet", host: "127.0.0.1:{proxy.port}"'
            ) in line
    assert "/quiet" not in proxy.access_log()


def test_access_log_written_when_the_tunnel_closes(proxy):
    """Both formats' lines as nginx writes them: the request's variables (escaped), the bytes
    tunnelled and the times measured at the close."""
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(_handshake(extra=b'User-Agent: tester "7"\r\n'))
        got = _read_until(s, b"\r\n\r\n")
        head_len = got.index(b"\r\n\r\n") + 4
        s.sendall(_masked_text(b"0123456789"))
        got += _read_until(s, b"0123456789")
        time.sleep(0.3)
        assert "GET /wss" not in proxy.access_log()      # not before the tunnel ends
        s.sendall(b"\x88\x82\x00\x00\x00\x00\x03\xe8")   # close 1000
        while data := s.recv(65536):
            got += data
    deadline = time.monotonic() + 5
    while "GET /wss" not in proxy.access_log() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(l for l in proxy.access_log().splitlines() if l.startswith("GET /wss"))
    assert line == f"GET /wss HTTP/1.1 101 {len(got) - head_len}"
    full = proxy._read("full.log").splitlines()
    assert len(full) == 1
    m = re.fullmatch(r'127\.0\.0\.1 "GET /wss HTTP/1\.1" 101 (\d+) (\d+) (\d+\.\d{3}) '
                     r'127\.0\.0\.1:(\d+) "tester \\x227\\x22" 101 (\d+\.\d{3}) (\d+) 1', full[0])
    assert m, full[0]
    body, total, request_time, ws_port, upstream_time, upstream_sent = m.groups()
    assert (int(body), int(total), int(ws_port)) == (len(got) - head_len, len(got), proxy.params["ws_port"])
    # both times end with the tunnel, which lived through the 0.3 s sleep
    assert float(request_time) >= 0.3 and float(upstream_time) >= 0.3
    assert int(upstream_sent) > 16 + 8             # the request head, the text and close frames


def test_client_that_never_reads_pauses_the_backend(proxy):
    """Backpressure: the backend floods a client that never reads; its writes must block."""
    FLOODED[0] = 0
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect(("127.0.0.1", proxy.port))
    try:
        s.sendall(_handshake())
        _read_until(s, b"\r\n\r\n")
        s.sendall(_masked_text(b"flood 1073741824"))
        time.sleep(3)
        assert 0 < FLOODED[0] < 64 << 20, FLOODED[0]
    finally:
        s.close()
