"""worker_connections and worker_rlimit_nofile are applied by ngate's worker (ngate only), and
what a worker without descriptors left answers (nginx and ngate)."""
import re
import socket
import subprocess
import time

import pytest

from tests.harness.client import request
from tests.harness.processes import ProxyProcess, fresh_prefix

CONF = """
error_log logs/error.log info;
pid logs/nginx.pid;
worker_rlimit_nofile 4321;
events { worker_connections 8; }
http {
    server {
        listen 127.0.0.1:{port};
        location / { return 200 "ok\\n"; }
    }
}
"""


@pytest.fixture
def proxy(tmp_path):
    proc = ProxyProcess("ngate", CONF, fresh_prefix(tmp_path, "ngate")).start()
    yield proc
    proc.stop()


def worker_pid(proxy) -> int:
    """The worker's pid (the master accepts on its socket before the worker exists)."""
    deadline = time.monotonic() + 10
    while True:
        out = subprocess.run(["pgrep", "-P", str(proxy.proc.pid)], capture_output=True, text=True)
        if out.stdout.split() or time.monotonic() > deadline:
            return int(out.stdout.split()[0])
        time.sleep(0.05)


def test_worker_rlimit_nofile_is_applied(proxy):
    # the worker sets its limit before it serves: once it has answered, the limit is in place
    # (just forked, it still has the master's)
    assert request(proxy.port, "GET", "/").status == 200
    limits = open(f"/proc/{worker_pid(proxy)}/limits").read()
    line = next(l for l in limits.splitlines() if l.startswith("Max open files"))
    assert line.split()[3] == "4321", line


def test_connections_past_worker_connections_are_closed(proxy):
    # the harness's readiness probe (connected and closed before the worker ran) counts until
    # the worker reads its EOF: accepted in one batch with the held connections it would take
    # a slot of theirs; a request first lets the worker see it go
    assert request(proxy.port, "GET", "/").status == 200
    held = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(8)]
    try:
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", proxy.port), timeout=3)
        extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            got = extra.recv(100)
        except ConnectionResetError:
            got = b""
        assert got == b""               # closed without an answer, as nginx does
        extra.close()
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)
    assert request(proxy.port, "GET", "/").status == 200       # room again
    assert "8 worker_connections are not enough" in proxy.error_log()


NOFILE_CONF = """
error_log logs/error.log info;
pid logs/nginx.pid;
worker_rlimit_nofile 64;
events { worker_connections 1000; }
http {
    server {
        listen 127.0.0.1:{port};
        location /ret { return 200 "ok\\n"; }
        location / { proxy_pass http://127.0.0.1:{backend_port}; }
    }
}
"""


def test_no_descriptor_left_for_the_upstream_is_a_500(start_proxy, backend):
    """Every descriptor of the worker taken by idle clients: a proxied request's socket() fails
    (nginx: [alert] socket() failed, a 500 with Connection: close, no next upstream), the
    accepts past the limit fail ([crit] accept4() failed) and the worker goes on."""
    proxy = start_proxy(NOFILE_CONF, backend_port=backend.port)
    first = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    held = []
    try:
        first.sendall(b"GET /ret HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while not got.endswith(b"\r\n\r\nok\n"):
            data = first.recv(4096)
            assert data, got
            got += data
        assert got.startswith(b"HTTP/1.1 200")
        held = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(80)]
        deadline = time.monotonic() + 10
        while "accept4() failed" not in proxy.error_log() and time.monotonic() < deadline:
            time.sleep(0.05)
        first.sendall(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while b"</html>" not in got:
            data = first.recv(4096)
            assert data, got
            got += data
        assert got.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert b"\r\nConnection: close\r\n" in got
    finally:
        first.close()
        for s in held:
            s.close()
    log = proxy.error_log()
    assert re.search(r"\[crit\] \d+#\d+: accept4\(\) failed \(24: Too many open files\)", log), log
    assert re.search(r'\[alert\] \d+#\d+: \*\d+ socket\(\) failed \(24: Too many open files\) while '
                     r'connecting to upstream, client: 127\.0\.0\.1, server: , request: "GET /up '
                     r'HTTP/1\.1", upstream: "http://127\.0\.0\.1:\d+/up", host: "x"', log), log
    assert backend.requests == []
    time.sleep(0.6)                             # accepting again after its pause
    assert request(proxy.port, "GET", "/ret").status == 200
