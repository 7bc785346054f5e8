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

from tests.harness.ws_echo import CLOSE_CODES, FLOODED, SEED_LOCATION, EchoServer
from tests.harness.backend import Backend, Reply
from tests.harness.h2client import H2Client
from tests.harness.h2ws import ENABLE_CONNECT_PROTOCOL, H2WebSocket, graceful_goaway
from tests.harness.processes import ProxyProcess, free_port, wait_log

CONF = """
error_log {prefix}/logs/error.log info;
events {}
http {
    log_format ws '$request|$status|$request_method|$http_upgrade|$server_protocol|$http2|$body_bytes_sent';
    access_log {prefix}/logs/access.log ws;
    limit_conn_zone $server_name zone=per_server:1m;
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
        location /authed/ {
            auth_request /auth;
            proxy_pass http://127.0.0.1:{ws_port}/wss;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
        }
        location = /auth {
            internal;
            proxy_pass http://127.0.0.1:{backend}/auth/$http_x_token;
            proxy_pass_request_body off;
        }
        location /old/ {
            rewrite ^/old/(.*)$ /wss/$1 last;
        }
        location /one {
            limit_conn per_server 1;
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
        }
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
            if path.endswith(b"/bad"):      # wrong whatever ngate's random key hashed to
                accept = (b"y" if accept[:1] == b"x" else b"x") + accept[1:]
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
        backend.route("/slow", Reply(body=b"late\n", delay=0.7))
        backend.route("/auth/yes", Reply(status=200, body=b""))
        backend.route("/auth/no", Reply(status=401, body=b""))
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


def open_ws(ngate, path="/wss", **kw) -> H2WebSocket:
    return H2WebSocket(H2Client(ngate.port), path, **kw)


# ---------------------------------------------------------------- handshake and echo

def test_handshake_echo_and_what_the_backend_saw(ngate):
    ws = open_ws(ngate, headers=[(b"sec-websocket-protocol", b"chat"),
                                 (b"sec-websocket-key", b"Y2xpZW50J3Mgb3duIGtleQ=="),
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
        assert len(seen["sec-websocket-key"]) == 24       # ngate's own, once
        assert seen["sec-websocket-key"] != "Y2xpZW50J3Mgb3duIGtleQ=="
        assert seen["x-real-ip"] == "127.0.0.1"
        ws.close(1000, "bye")
        assert ws.wait(lambda: ws.ended)
        assert ws.close_code == 1000
    finally:
        ws.c.close()
    wait_log(ngate, r"CONNECT /wss HTTP/2.0\|200\|GET\|websocket\|HTTP/2.0\|h2c\|\d+")


# ---------------------------------------------------------------- answers without a tunnel

@pytest.mark.parametrize("path,status,body", [
    ("/denied", 403, b"403 Forbidden"),             # access phase
    ("/up/missing", 404, b"no such socket\n"),      # the backend's refusal, as it sent it
    ("/hello", 501, b"501 Not Implemented"),        # a 200 would open the tunnel: 501
    ("/up/ok", 501, b"501 Not Implemented"),        # the backend answered 200 to the upgrade
])
def test_refused_upgrade_is_a_normal_response(ngate, path, status, body):
    ws = open_ws(ngate, path)
    try:
        c = ws.c
        c.pump(lambda: ws.ended or ws.reset_code is not None)
        assert ws.status == status
        assert body in bytes(c.bodies.get(ws.sid, b""))
        # the client did not end its side: ngate stops reading it (RST_STREAM NO_ERROR)
        assert ws.reset_code in (None, ErrorCodes.NO_ERROR)
    finally:
        ws.c.close()
    wait_log(ngate, rf"CONNECT {path} HTTP/2.0\|{status}\|GET\|websocket\|")
    if status == 501:
        wait_log(ngate, r"response cannot answer an extended CONNECT")


def test_invalid_accept_from_the_backend_is_502(ngate):
    ws = open_ws(ngate, "/raw/bad")
    try:
        ws.c.pump(lambda: ws.ended or ws.reset_code is not None)
        assert ws.status == 502
    finally:
        ws.c.close()
    wait_log(ngate, r'upstream sent invalid "Sec-WebSocket-Accept" header')
    wait_log(ngate, r"CONNECT /raw/bad HTTP/2.0\|502\|")


def test_off_advertises_nothing_and_refuses_protocol(ngate):
    c = H2Client(ngate.params["off_port"])
    try:
        c.pump(lambda: c.conn.remote_settings.get(0x4) is not None, 2)   # their SETTINGS
        assert c.conn.remote_settings.get(ENABLE_CONNECT_PROTOCOL, 0) == 0
        sid = c.request("/wss", "CONNECT", headers=[(b":protocol", b"websocket")], end=False)
        status, _, _ = c.response(sid)
        assert status == 400
    finally:
        c.close()
    wait_log(ngate, r'client sent unknown pseudo-header ":protocol"')


def test_other_protocol_is_refused(ngate):
    c = H2Client(ngate.port)
    try:
        sid = c.request("/wss", "CONNECT", headers=[(b":protocol", b"connect-udp")], end=False)
        assert c.response(sid)[0] == 400
    finally:
        c.close()


# ---------------------------------------------------------------- phases

@pytest.mark.parametrize("token,status", [("yes", 200), ("no", 401)])
def test_auth_request_decides(ngate, token, status):
    ws = open_ws(ngate, "/authed/x", headers=[(b"x-token", token.encode())])
    try:
        assert ws.status == status
        if status == 200:
            ws.send("authed")
            assert ws.recv() == "authed"
    finally:
        ws.c.close()


def test_rewrite_then_tunnel(ngate):
    ws = open_ws(ngate, "/old/chat")
    try:
        assert ws.status == 200
        ws.send("rewritten")
        assert ws.recv() == "rewritten"
    finally:
        ws.c.close()


def test_limit_conn_holds_the_slot_while_the_tunnel_is_open(ngate):
    first = open_ws(ngate, "/one")
    try:
        assert first.status == 200
        second = H2WebSocket(first.c, "/one")       # same connection, another stream
        assert second.status == 503
        first.send("first")
        assert first.recv() == "first"
        first.close()
        assert first.wait(lambda: first.ended)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:           # the slot is released at the close
            third = H2WebSocket(first.c, "/one")
            if third.status == 200:
                break
            time.sleep(0.1)
        assert third.status == 200
    finally:
        first.c.close()


# ---------------------------------------------------------------- close, end, reset

def test_backend_initiated_close(ngate):
    ws = open_ws(ngate)
    try:
        ws.send("close 4000 bye")
        assert ws.wait(lambda: ws.close_code is not None)
        assert ws.close_code == 4000
        ws.close(4000)
        assert ws.wait(lambda: ws.ended)        # the backend closed TCP: END_STREAM
        assert ws.reset_code in (None, ErrorCodes.NO_ERROR)
    finally:
        ws.c.close()


def test_end_stream_is_a_fin_to_the_backend(ngate):
    ws = open_ws(ngate)
    try:
        ws.send("x")
        assert ws.recv() == "x"
        del CLOSE_CODES[:]
        ws.end()                                # END_STREAM: the backend reads EOF
        assert ws.wait(lambda: ws.ended)        # and closes: END_STREAM back
        deadline = time.monotonic() + 5
        while not CLOSE_CODES and time.monotonic() < deadline:
            time.sleep(0.05)
        assert CLOSE_CODES == [1006]            # TCP closed without a close frame
    finally:
        ws.c.close()


def test_rst_stream_resets_the_backend(ngate):
    ws = open_ws(ngate)
    try:
        ws.send("x")
        assert ws.recv() == "x"
        del CLOSE_CODES[:]
        ws.reset()
        deadline = time.monotonic() + 5
        while not CLOSE_CODES and time.monotonic() < deadline:
            time.sleep(0.05)
        assert CLOSE_CODES == [1006]
        # the connection itself goes on
        other = H2WebSocket(ws.c, "/wss")
        other.send("still")
        assert other.recv() == "still"
    finally:
        ws.c.close()


def test_backend_reset_is_rst_stream_connect_error(ngate):
    ws = open_ws(ngate, "/raw/reset")
    try:
        assert ws.status == 200
        assert ws.wait(lambda: ws.reset_code is not None)
        assert ws.reset_code == ErrorCodes.CONNECT_ERROR
    finally:
        ws.c.close()


# ---------------------------------------------------------------- flow control

def test_big_messages_both_ways(ngate):
    ws = open_ws(ngate)
    try:
        big = bytes(range(256)) * 8192          # 2 MiB: many windows each way
        ws.send(big)
        assert ws.recv(20) == big
    finally:
        ws.c.close()


def test_slow_client_pauses_the_backend(ngate):
    c = H2Client(ngate.port)
    c.auto_ack = set()          # DATA of no stream is acknowledged: the stream window stays shut
    ws = H2WebSocket(c, "/wss")
    try:
        total = 48 << 20
        FLOODED[0] = 0
        ws.send(f"flood {total}")
        last, deadline = -1, time.monotonic() + 20
        while time.monotonic() < deadline:      # until the backend stops making progress
            c.pump(lambda: False, 1)
            if FLOODED[0] == last:
                break
            last = FLOODED[0]
        assert 0 < FLOODED[0] < total // 2     # blocked: ngate stopped reading it
        got = len(c.bodies.get(ws.sid, b""))
        assert got <= 65535                     # what the window allowed
        c.auto_ack = None                       # now read everything
        c.conn.acknowledge_received_data(got, ws.sid)
        c.flush()
        assert ws.wait(lambda: FLOODED[0] >= total and
                       sum(len(m) for m in ws.messages) >= total, 60)
    finally:
        c.close()


def test_slow_backend_shuts_the_client_window(ngate):
    ws = open_ws(ngate, "/raw/stall")       # the backend accepts, then never reads
    try:
        assert ws.status == 200
        chunk = ws.frames.send_data(b"y" * 65536, fin=True)
        sent = 0
        with pytest.raises(TimeoutError):
            while sent < (256 << 20):
                ws.send_raw(chunk)
                sent += len(chunk)
        assert sent < (64 << 20)            # bounded by socket buffers and the stream window
        assert ws.c.conn.local_flow_control_window(ws.sid) < 65536
    finally:
        ws.c.close()


# ---------------------------------------------------------------- websocket_ping, metrics

def test_websocket_ping_reaches_a_silent_client(ngate):
    ws = open_ws(ngate, "/pinged")
    try:
        assert ws.wait(lambda: ws.pings, 5)
        assert ws.pings[0] == b"ngate-keepalive"
        ws.ping_reply(ws.pings[0])
        ws.send("alive")
        assert ws.recv() == "alive"
    finally:
        ws.c.close()


def test_a_client_that_never_answers_pings_is_cut(ngate):
    ws = open_ws(ngate, "/pinged")
    try:
        del CLOSE_CODES[:]
        assert ws.wait(lambda: ws.pings, 5)             # and no pong
        assert ws.wait(lambda: ws.reset_code is not None, 10)
        assert ws.reset_code == ErrorCodes.CANCEL
        deadline = time.monotonic() + 5
        while not CLOSE_CODES and time.monotonic() < deadline:
            time.sleep(0.05)
        assert CLOSE_CODES == [1001]                    # the live side got a close frame
    finally:
        ws.c.close()
    wait_log(ngate, r"websocket client did not answer ping, closing tunnel")


def test_metrics_label_the_protocol(ngate):
    ws = open_ws(ngate)
    try:
        ws.send("m" * 1000)
        assert ws.recv() == "m" * 1000
        url = f"http://127.0.0.1:{ngate.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        assert re.search(r'ngate_websocket_tunnels_open\{location="/wss",protocol="h2"\} [1-9]',
                         text), text
        m = re.search(r'ngate_websocket_bytes_total\{direction="to_upstream",'
                      r'location="/wss",protocol="h2"\} (\S+)', text)
        assert m and float(m.group(1)) >= 1000, text
    finally:
        ws.c.close()


# ---------------------------------------------------------------- graceful stop and reload

SHUTDOWN_CONF = """
worker_processes 1;
worker_shutdown_timeout 1s;
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 1024; }
http {
    server {
        listen 127.0.0.1:{port} http2;
""" + SEED_LOCATION + """
        location /slow { proxy_pass http://127.0.0.1:{backend}; }
    }
}
"""


def test_stream_in_flight_ends_after_goaway(tmp_path, servers):
    """Graceful stop: a stream answered after GOAWAY gets its END_STREAM (the connection's last
    frames were dropped by its close)."""
    import signal
    echo, backend, _ = servers
    proxy = ProxyProcess("ngate", SHUTDOWN_CONF, tmp_path / "ngate", ws_port=echo.port,
                         backend=backend.port).start()
    try:
        c = H2Client(proxy.port)
        graceful_goaway(c)
        sid = c.request("/slow")
        time.sleep(0.3)
        proxy.proc.send_signal(signal.SIGQUIT)
        status, _, body = c.response(sid, timeout=10)
        assert c.goaway is not None
        assert (status, body) == (200, b"late\n")
        assert sid in c.ended
        c.close()
        proxy.proc.wait(10)
    finally:
        proxy.stop()


@pytest.mark.parametrize("how", ["reload", "quit"])
def test_shutdown_timeout_sends_close_frames_1001(tmp_path, servers, how):
    import signal
    echo = servers[0]
    proxy = ProxyProcess("ngate", SHUTDOWN_CONF, tmp_path / "ngate", ws_port=echo.port,
                         backend=servers[1].port).start()
    try:
        ws = open_ws(proxy)
        graceful_goaway(ws.c)
        ws.send("hello")
        assert ws.recv() == "hello"
        del CLOSE_CODES[:]
        proxy.proc.send_signal(signal.SIGHUP if how == "reload" else signal.SIGQUIT)
        assert ws.wait(lambda: ws.close_code is not None, 10)
        assert ws.close_code == 1001
        assert ws.wait(lambda: ws.ended or ws.reset_code is not None, 5)
        deadline = time.monotonic() + 5
        while not CLOSE_CODES and time.monotonic() < deadline:
            time.sleep(0.05)
        assert CLOSE_CODES == [1001]
        ws.c.close()
        if how == "quit":
            proxy.proc.wait(10)
    finally:
        proxy.stop()
