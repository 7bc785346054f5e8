"""websocket_ping / websocket_pong_timeout (ngate only: nginx has no such thing)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.test_websocket import ws_connect
from tests.harness.ws_echo import SEED_LOCATION, handshake as _handshake, masked_text as _masked_text, read_until as _read_until
from tests.harness.backend import Backend, Reply
from tests.harness.processes import REPO_ROOT, ProxyProcess, accepts, fresh_prefix, free_port

CONF = """
http {
    websocket_ping 1s;
    websocket_pong_timeout {pong_timeout};
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        proxy_read_timeout {read_timeout};
""" + SEED_LOCATION + """
    }
}
"""


@pytest.fixture
def ngate(tmp_path):
    procs = []

    def start(**params):
        params.setdefault("pong_timeout", "1s")
        proc = ProxyProcess("ngate", CONF, fresh_prefix(tmp_path, f"ngate{len(procs)}"), **params)
        procs.append(proc)
        return proc.start()
    yield start
    for p in procs:
        p.stop()


@pytest.fixture
def echo_process():
    """The echo server of tests/harness/ws_echo.py as its own process (so that it can be stopped)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from tests.harness.ws_echo "
                             "import run_echo; run_echo(int(sys.argv[1]))", str(port)],
                            cwd=REPO_ROOT)
    deadline = time.monotonic() + 10
    while not accepts(port):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.port = port
    yield proc
    os.kill(proc.pid, signal.SIGCONT)
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("pong_timeout", ["1s", "10s"])
def test_pings_keep_an_idle_websocket_beyond_proxy_read_timeout(ngate, echo_process, pong_timeout):
    """A pong timeout longer than proxy_read_timeout keeps the rounds one interval apart (they
    once waited for the pong timeout, and the read timeout closed the tunnel in between)."""
    proxy = ngate(ws_port=echo_process.port, read_timeout="2s", pong_timeout=pong_timeout)
    with ws_connect(proxy, ping_interval=None) as ws:
        ws.send("before")
        assert ws.recv(5) == "before"
        time.sleep(5)
        ws.send("after")
        assert ws.recv(5) == "after"


@pytest.mark.parametrize("pong_timeout", ["1s", "3s"])
def test_a_paused_backend_is_detected_and_the_client_gets_1001(ngate, echo_process, pong_timeout):
    proxy = ngate(ws_port=echo_process.port, read_timeout="60s", pong_timeout=pong_timeout)
    with ws_connect(proxy, ping_interval=None) as ws:
        ws.send("hello")
        assert ws.recv(5) == "hello"
        os.kill(echo_process.pid, signal.SIGSTOP)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(15)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert "websocket upstream did not answer ping" in proxy.error_log()


def _frames(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Small frames (opcode, unmasked payload) in buf, and the incomplete rest. The echo
    backend sends back masked frames as they came."""
    out = []
    while len(buf) >= 2:
        n = buf[1] & 0x7F
        mask = 4 if buf[1] & 0x80 else 0
        assert n < 126
        if len(buf) < 2 + mask + n:
            break
        key = buf[2:2 + mask] or b"\0\0\0\0"
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(buf[2 + mask:2 + mask + n]))
        out.append((buf[0] & 0x0F, payload))
        buf = buf[2 + mask + n:]
    return out, buf


def test_pongs_to_ngate_pings_are_not_forwarded(ngate):
    """The backend echoes every byte: a forwarded pong would come back to the client."""
    with Backend() as backend:
        backend.route("/wss", Reply(status=101, body=b"", headers=[
            (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]))
        # the test answers ngate's ping itself: a loaded machine must not make it late
        proxy = ngate(ws_port=backend.port, read_timeout="60s", pong_timeout="30s")
        with socket.create_connection(("127.0.0.1", proxy.port)) as s:
            s.sendall(_handshake())
            rest = _read_until(s, b"\r\n\r\n").partition(b"\r\n\r\n")[2]
            rest += _read_until(s, b"\x89\x0fngate-keepalive", 5)
            assert b"\x89\x0fngate-keepalive" in rest
            pong = bytes([0x8A, 0x80 | 15]) + b"\0\0\0\0" + b"ngate-keepalive"
            s.sendall(pong + _masked_text(b"after"))
            seen = []
            buf = b""
            s.settimeout(5)
            while (1, b"after") not in seen:
                data = s.recv(65536)
                assert data
                buf += data
                frames, buf = _frames(buf.replace(b"\x89\x0fngate-keepalive", b""))
                seen += frames
    assert all(op != 0xA for op, _ in seen), seen
