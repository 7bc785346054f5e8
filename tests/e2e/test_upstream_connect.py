"""Opening upstream connections, against both nginx and ngate: a connect that hangs
(proxy_connect_timeout, then the next peer), and a client that leaves while the connect is
pending (the half-open upstream socket is closed, the request logged as 499).

A peer whose connect hangs: a listening socket with a full accept queue (backlog 0, filled and
never accepted): the kernel drops further SYNs, so a connect to it stays in SYN-SENT.
"""
from __future__ import annotations

import socket
import subprocess
import time

import pytest

from tests.harness.backend import Reply
from tests.harness.client import request

CONF = """
http {
    log_format st '$status $upstream_addr $upstream_status';
    server {
        listen 127.0.0.1:{port};
        access_log {prefix}/logs/access.log st;
        proxy_connect_timeout 1s;
        location /next/ { proxy_pass http://stuck_then_good; }
        location /stuck/ { proxy_pass http://127.0.0.1:{stuck_port}; }
    }
    upstream stuck_then_good { server 127.0.0.1:{stuck_port}; server 127.0.0.1:{backend_port}; }
}
"""


@pytest.fixture
def stuck():
    """(port, sockets): a listener that accepts no more connections."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.2)
    yield port
    for s in fillers:
        s.close()
    lsock.close()


def _syn_sent(port: int) -> int:
    """Connections to 127.0.0.1:port still in SYN-SENT (from `ss`), the fillers included."""
    out = subprocess.run(["ss", "-Htn", "state", "syn-sent", f"dport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


def test_connect_timeout_then_the_next_peer(start_proxy, backend, stuck):
    backend.route("/next/x", Reply(body=b"from the good peer\n"))
    proxy = start_proxy(CONF, stuck_port=stuck, backend_port=backend.port)
    resp = request(proxy.port, "GET", "/next/x")
    assert resp.status == 200
    assert resp.body == b"from the good peer\n"
    proxy.stop()
    assert proxy.access_log().splitlines()[-1] == (
        f"200 127.0.0.1:{stuck}, 127.0.0.1:{backend.port} 504, 200")
    assert "upstream timed out (110: Connection timed out) while connecting to upstream" \
        in proxy.error_log()


def test_connect_timeout_alone_answers_504(start_proxy, backend, stuck):
    proxy = start_proxy(CONF, stuck_port=stuck, backend_port=backend.port)
    resp = request(proxy.port, "GET", "/stuck/x")
    assert resp.status == 504
    proxy.stop()
    assert proxy.access_log().splitlines()[-1] == f"504 127.0.0.1:{stuck} 504"


def test_client_leaving_during_the_connect_closes_the_upstream_socket(start_proxy, backend,
                                                                      stuck):
    proxy = start_proxy(CONF, stuck_port=stuck, backend_port=backend.port)
    before = _syn_sent(stuck)
    client = socket.create_connection(("127.0.0.1", proxy.port))
    client.sendall(b"GET /stuck/x HTTP/1.1\r\nHost: t\r\n\r\n")
    deadline = time.monotonic() + 0.8
    while _syn_sent(stuck) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _syn_sent(stuck) == before + 1        # the proxy's connect is pending
    client.close()
    deadline = time.monotonic() + 0.8            # well before proxy_connect_timeout
    while _syn_sent(stuck) > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _syn_sent(stuck) == before            # closed on the client's leaving
    proxy.stop()
    assert proxy.access_log().splitlines()[-1] == f"499 127.0.0.1:{stuck} -"
