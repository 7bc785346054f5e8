"""What the TLS transport to clients must do, on nginx and on ngate (server/tls_transport.py:
OpenSSL on the raw socket): close_notify before the socket closes, a large response to a
client that stops reading held back by backpressure all the way to the upstream and delivered
whole, a handshake stalled after the ClientHello closed at client_header_timeout, memory
per idle TLS connection (no per-connection read buffer while idle), and a client's TLS 1.2
renegotiation refused."""
from __future__ import annotations

import hashlib
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

from tests.harness.pki import Pki

CONF = """
http {
    server {
        listen 127.0.0.1:{port} ssl;
        server_name tls.test;
        ssl_certificate {pki}/server.crt;
        ssl_certificate_key {pki}/server.key;
        client_header_timeout 2s;
        location / { return 200 "ok\\n"; }
        location /big {
            proxy_pass http://127.0.0.1:{big_port};
            proxy_buffering off;
        }
    }
}
"""

BIG = 64 * 1024 * 1024
CHUNK = 64 * 1024


def pattern(i: int) -> bytes:
    return (b"%08d" % i) * (CHUNK // 8)


class BigBackend:
    """One HTTP response of BIG bytes per connection, sent with blocking sendall; `sent` counts
    what the kernel took so far."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % BIG)
            try:
                for i in range(BIG // CHUNK):
                    conn.sendall(pattern(i))
                    self.sent += CHUNK
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.leaf("server", "tls.test")
    return p


@pytest.fixture
def big():
    b = BigBackend()
    yield b
    b.close()


@pytest.fixture
def proxy(start_proxy, pki, big):
    return start_proxy(CONF, pki=pki.dir, big_port=big.port)


def client(pki, port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(pki.path("root.pem")))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    # suppress_ragged_eofs off: an end without close_notify raises SSLEOFError
    return ctx.wrap_socket(raw, server_hostname="tls.test", suppress_ragged_eofs=False)


def read_head(s: ssl.SSLSocket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = s.recv(65536)
        assert more, data
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def test_client_renegotiation_is_refused(proxy, pki):
    """A TLS 1.2 client asks to renegotiate (s_client's `R`) after a request: the server
    answers with a no_renegotiation alert (OpenSSL 3 refuses client renegotiation on both),
    the client's renegotiation fails, and the server goes on serving."""
    p = subprocess.Popen(["openssl", "s_client", "-tls1_2", "-connect", f"127.0.0.1:{proxy.port}",
                          "-servername", "tls.test", "-CAfile", str(pki.path("root.pem"))],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(b"GET / HTTP/1.1\r\nHost: tls.test\r\n\r\n")
        p.stdin.flush()
        lines = []
        for line in p.stdout:
            lines.append(line)
            if line == b"ok\n":
                break
        assert b"HTTP/1.1 200 OK\r\n" in lines
        p.stdin.write(b"R\n")           # stdin stays open: its end would quit s_client first
        p.stdin.flush()
        assert p.wait(timeout=20) != 0
        err = p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdin.close()
        p.stdout.close()
        p.stderr.close()
    assert b"RENEGOTIATING" in err and b"no renegotiation" in err, err
    with client(pki, proxy.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: tls.test\r\nConnection: close\r\n\r\n")
        head, _ = read_head(s)
        assert head.startswith(b"HTTP/1.1 200")


def test_close_notify_before_close(proxy, pki):
    with client(pki, proxy.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: tls.test\r\nConnection: close\r\n\r\n")
        head, body = read_head(s)
        assert head.startswith(b"HTTP/1.1 200")
        while True:
            more = s.recv(65536)         # b"" only after a close_notify
            if not more:
                break
            body += more
        assert body == b"ok\n"


def test_large_response_to_a_client_that_stops_reading(proxy, pki, big):
    with client(pki, proxy.port) as s:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: tls.test\r\n\r\n")
        head, body = read_head(s)
        assert head.startswith(b"HTTP/1.1 200"), head
        # the client reads nothing more: the backend is held back once the buffers between
        # are full (TLS transport -> proxy -> upstream reads), far before the end
        last = -1
        for _ in range(100):
            time.sleep(0.2)
            if big.sent == last:
                break
            last = big.sent
        assert big.sent == last, "the backend never stopped sending"
        assert big.sent < BIG - 16 * 1024 * 1024, big.sent
        digest = hashlib.sha256(body)
        got = len(body)
        while got < BIG:
            more = s.recv(1 << 20)
            assert more, got
            digest.update(more)
            got += len(more)
        assert got == BIG
        expected = hashlib.sha256()
        for i in range(BIG // CHUNK):
            expected.update(pattern(i))
        assert digest.hexdigest() == expected.hexdigest()


def test_handshake_stalled_after_client_hello_times_out(proxy, pki):
    ctx = ssl.create_default_context(cafile=str(pki.path("root.pem")))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="tls.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=15) as s:
        s.sendall(outgoing.read())                  # the ClientHello, then no Finished
        got = b""
        while True:                                 # ServerHello ... then the close
            try:
                more = s.recv(65536)
            except ConnectionResetError:
                break
            if not more:
                break
            got += more
        assert got[:1] == b"\x16"                   # the server's handshake records came
    proxy.stop()
    assert "client timed out (110: Connection timed out) while SSL handshaking" \
        in proxy.error_log()


def _worker_pid(pid: int) -> int:
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    return int(children[0]) if children else pid


def _rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_memory_per_idle_tls_connection(proxy, pki):
    """Per idle TLS connection after one request, the worker holds about what nginx holds
    (nginx ~14 KB, ngate ~17: OpenSSL's SSL object and session, no read buffer); with uvloop's
    SSLProtocol (256 KiB of read buffer per connection) ngate's worker held ~47 KB."""
    n = 500
    warm = [client(pki, proxy.port) for _ in range(10)]
    for s in warm:
        s.sendall(b"GET / HTTP/1.1\r\nHost: tls.test\r\n\r\n")
        read_head(s)
        s.close()
    time.sleep(0.2)
    pid = _worker_pid(proxy.proc.pid)       # forked by now: it has served the warm-up
    assert pid != proxy.proc.pid
    before = _rss_kb(pid)
    conns = []
    try:
        for _ in range(n):
            s = client(pki, proxy.port)
            s.sendall(b"GET / HTTP/1.1\r\nHost: tls.test\r\n\r\n")
            head, body = read_head(s)
            while not body.endswith(b"ok\n"):
                body += s.recv(100)
            conns.append(s)
        time.sleep(0.2)
        per_conn = (_rss_kb(pid) - before) * 1024 / n / 1000
    finally:
        for s in conns:
            s.close()
    assert per_conn < 22, f"{per_conn:.1f} KB per idle TLS connection"


def test_handshake_ends_logged_as_nginx(proxy, pki):
    port = proxy.port
    with socket.create_connection(("127.0.0.1", port)) as s:      # nothing sent
        pass
    with socket.create_connection(("127.0.0.1", port)) as s:      # a partial record, then FIN
        s.sendall(b"\x16\x03\x01\x00\x50abc")
        time.sleep(0.2)
    time.sleep(0.3)
    proxy.stop()
    log = proxy.error_log()
    assert "client closed connection while SSL handshaking, client: 127.0.0.1" in log
    assert "peer closed connection in SSL handshake while SSL handshaking, client: 127.0.0.1" \
        in log


def test_reload_closes_idle_tls_connections_with_close_notify(proxy, pki):
    import signal
    with client(pki, proxy.port) as old:
        old.sendall(b"GET / HTTP/1.1\r\nHost: tls.test\r\n\r\n")
        head, body = read_head(old)
        while not body.endswith(b"ok\n"):
            body += old.recv(100)
        conf = proxy.prefix / "nginx.conf"
        conf.write_text(conf.read_text().replace('return 200 "ok\\n"', 'return 200 "new\\n"'))
        os.kill(proxy.proc.pid, signal.SIGHUP)
        assert old.recv(100) == b""         # the old worker's close_notify (ragged EOFs raise)
    body = b""
    for _ in range(50):                     # the new workers answer with the new config
        with client(pki, proxy.port) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: tls.test\r\nConnection: close\r\n\r\n")
            head, body = read_head(s)
            while True:
                more = s.recv(100)
                if not more:
                    break
                body += more
        if body == b"new\n":
            break
        time.sleep(0.1)
    assert body == b"new\n"
