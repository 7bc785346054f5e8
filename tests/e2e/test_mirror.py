"""mirror while the body is read whole: a client that leaves mid-body (logged 400, as nginx's
read_client_request_body says), or stops sending until client_body_timeout, gets nothing
mirrored and nothing proxied, and the worker goes on serving
(both programs); a mirror to a slow backend does not hold the client's response."""
from __future__ import annotations

import socket
import threading
import time

from tests.harness.backend import Backend
from tests.harness.client import Connection, build_request, exchange

CONF = """
http {
    log_format st "$status $request_uri";
    access_log {prefix}/logs/st.log st;
    server {
        listen 127.0.0.1:{port};
        client_body_timeout 1s;
        location / { mirror /m; proxy_pass http://127.0.0.1:{main_port}; }
        location /slow/ { mirror /s; proxy_pass http://127.0.0.1:{main_port}; }
        location /m { internal; proxy_pass http://127.0.0.1:{mirror_port}; }
        location /s { internal; proxy_pass http://127.0.0.1:{slow_port}; }
    }
}
"""


def wait_for(predicate, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_client_leaving_or_stalling_mid_body(start_proxy):
    with Backend("main") as main, Backend("mirror") as mirror, \
            socket.create_server(("127.0.0.1", 0)) as slow:
        proc = start_proxy(CONF, main_port=main.port, mirror_port=mirror.port,
                           slow_port=slow.getsockname()[1])
        log = proc.prefix / "logs" / "st.log"
        with Connection(proc.port, timeout=5) as c:
            c.send(b"POST /left HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
            time.sleep(0.2)
        assert wait_for(lambda: log.exists() and "/left" in log.read_text()), log.read_text()
        assert log.read_text().split()[0] == "400"
        with Connection(proc.port, timeout=5) as c:
            c.send(b"POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
            assert c.closed_by_peer(10.0)     # nginx: after lingering_timeout
        assert not main.requests and not mirror.requests
        # a mirror whose backend never answers: the client's response is not held
        [resp] = exchange(proc.port, build_request("POST", "/slow/x", body=b"abc"), "POST")
        assert resp.status == 200 and main.requests[-1].body == b"abc"
        slow.settimeout(5)
        conn, _ = slow.accept()
        with conn:
            conn.settimeout(5)
            got = b""
            while b"abc" not in got:
                got += conn.recv(65536)
            assert got.startswith(b"POST /s HTTP/1.0\r\n")
        [resp] = exchange(proc.port, build_request("GET", "/after"))
        assert resp.status == 200
        assert wait_for(lambda: len(mirror.requests) == 1)
        assert mirror.requests[0].target == b"/m"
