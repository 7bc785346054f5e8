"""WebSocket through the seed's recipe, against nginx and ngate: a real `websockets` echo server
behind the proxy and a real `websockets` client in front of it.

The echo server and the raw-socket helpers are in tests/harness/ws_echo.py.
"""
from __future__ import annotations

import json
import os
import re
import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.harness.ws_echo import FLOODED, SEED_LOCATION, EchoServer
from tests.harness.ws_echo import handshake as _handshake, masked_text as _masked_text, read_until as _read_until

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
        location /ownlog {
            error_log {prefix}/logs/ownlog.log info;
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
            proxy_read_timeout 1s;
        }
    }
}
"""

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


def test_tunnel_timeout_goes_to_the_locations_error_log(proxy):
    """A tunnel's errors are its request's: they go to the location's error_log, as nginx's
    r->connection->log does after the upgrade."""
    path = os.path.join(proxy.prefix, "logs", "ownlog.log")
    with ws_connect(proxy, "/ownlog") as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(10)

    def own() -> str:
        with open(path, errors="replace") as f:
            return f.read()
    deadline = time.monotonic() + 5
    while "proxying upgraded" not in own() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "upstream timed out (110: Connection timed out) while proxying upgraded connection" in own()
    assert "proxying upgraded" not in proxy.error_log()


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
