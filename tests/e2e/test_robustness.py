"""Adversarial e2e suite (ngate only): mutated and hostile clients, misbehaving upstreams, reloads.

One ngate runs a config with proxy_pass (pooled keepalive and not), return, error_page, rewrite/if,
a static root, map and a WebSocket location. Every case must leave the server answering a normal
request; a request ngate cannot serve gets a 4xx/5xx or a close, never a hang (every socket has a
timeout). At the end of the module the error log and the process output must hold no
`internal error`, `Traceback`, `Exception in callback` or `Fatal error`, and the worker's RSS must
not have grown without bound across thousands of cases. Seeds are fixed: a failure replays.
"""
from __future__ import annotations

import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.test_core_memory import rss, worker_pid
from tests.harness.backend import Backend, Reply
from tests.harness.client import Connection, build_request
from tests.harness.processes import REPO_ROOT, ProxyProcess, fresh_prefix

CONF = """
http {
    client_header_timeout 2s;
    client_body_timeout 2s;
    send_timeout 2s;
    proxy_read_timeout 2s;
    client_max_body_size 64k;
    map $http_x_variant $variant {
        default plain;
        beta b;
        ~^c(?<num>[0-9]+)$ c$num;
    }
    upstream pooled { server 127.0.0.1:{backend_port}; keepalive 4; }
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        root {prefix}/html;
        error_page 404 /404.html;
        error_page 502 504 = @fallback;
        location / { }
        location = /404.html { internal; }
        location /p/ { proxy_pass http://127.0.0.1:{backend_port}; }
        location /k/ {
            proxy_pass http://pooled;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /bad/ {
            proxy_pass http://127.0.0.1:{bad_port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /big-ok/ {
            proxy_pass http://127.0.0.1:{bad_port}/;
            proxy_buffer_size 128k;
        }
        location /ws {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }
        location /ret { return 200 "variant=$variant uri=$uri args=$args\\n"; }
        location /redir { return 301 /p/$variant; }
        location /rw/ { rewrite ^/rw/(.*)$ /p/$1 last; }
        location /if {
            if ($arg_deny) { return 403; }
            if ($http_x_variant ~* ^(re)(.*)$) { rewrite ^ /ret?$1$2 last; }
            set $v "$variant-$uri";
            return 200 "$v\\n";
        }
        location @fallback { return 503 "fallback\\n"; }
    }
}
"""

BAD_LOG = re.compile(r"internal error|Traceback|Exception in callback|Fatal error")


class ScriptBackend:
    """A raw upstream: reads one request head, then plays the script named by the target's last
    path segment (`SCRIPTS`): ("send", bytes), ("sleep", s), ("trickle", bytes, s), ("close",),
    ("reset",)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    return
                head += data
            target = head.split(b" ", 2)[1].decode()
            for step in SCRIPTS.get(target.rsplit("/", 1)[-1], [("close",)]):
                if step[0] == "send":
                    conn.sendall(step[1])
                elif step[0] == "sleep":
                    time.sleep(step[1])
                elif step[0] == "trickle":
                    for i in range(len(step[1])):
                        conn.sendall(step[1][i:i + 1])
                        time.sleep(step[2])
                elif step[0] == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                elif step[0] == "close":
                    return
            conn.recv(1)        # keep the connection until the proxy is done with it
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()


OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
SCRIPTS: dict[str, list[tuple]] = {
    "garbage": [("send", b"\x00\xffgarbage not http\r\n\r\n"), ("close",)],
    "garbage-keep": [("send", b"HTTP/1.1 twohundred OK\r\n\r\n")],
    "partial-head": [("send", b"HTTP/1.1 200 OK\r\nContent-Le"), ("close",)],
    "partial-status": [("send", b"HTT"), ("close",)],
    "huge-headers": [("send", b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n"
                      b"Content-Length: 2\r\n\r\nok")],
    "short-body": [("send", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten!!"),
                   ("close",)],
    "bad-chunk": [("send", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n")],
    "huge-chunk": [("send", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"ffffffffffffffffffff\r\nhello\r\n")],
    "neg-length": [("send", b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello")],
    "two-lengths": [("send", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n"
                     b"\r\nok!")],
    "continue": [("send", b"HTTP/1.1 100 Continue\r\n\r\n"
                  b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK_HEAD)],
    "switch": [("send", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\nraw tunnel bytes"), ("sleep", 0.2), ("close",)],
    "reset-head": [("send", b"HTTP/1.1 200 OK\r\n"), ("reset",)],
    "reset-body": [("send", b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000),
                   ("sleep", 0.05), ("reset",)],
    "reset-chunked": [("send", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"10\r\n0123456789abcdef\r\n"), ("sleep", 0.05), ("reset",)],
    "trickle": [("trickle", OK_HEAD, 0.02)],
    "silent": [("sleep", 3), ("close",)],
    "close": [("close",)],
    "reset": [("reset",)],
    "no-status-reason": [("send", b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok")],
    "http09": [("send", b"hello world"), ("close",)],
    "bad-header-line": [("send", b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 2\r\n\r\nok")],
    "nul-header": [("send", b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok")],
    "304-body": [("send", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello")],
    "close-delimited": [("send", b"HTTP/1.0 200 OK\r\n\r\nuntil close"), ("close",)],
}


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    backend = Backend().start()
    backend.route("/ws", Reply(status=101, headers=[(b"Upgrade", b"websocket"),
                                                    (b"Connection", b"Upgrade")], body=b""))
    backend.route("/p/big", Reply(body=b"B" * (1 << 20)))
    backend.route("/k/big", Reply(body=b"B" * (1 << 20)))
    bad = ScriptBackend()
    prefix = fresh_prefix(tmp_path_factory.mktemp("robust"), "ngate")
    (prefix / "html").mkdir()
    (prefix / "html" / "index.html").write_text("<h1>index</h1>\n")
    (prefix / "html" / "404.html").write_text("not here\n")
    (prefix / "html" / "big.bin").write_bytes(b"S" * (1 << 20))
    proc = ProxyProcess("ngate", CONF, prefix, backend_port=backend.port, bad_port=bad.port)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        backend.stop()
        bad.stop()
    report = proc.error_log() + proc.output()
    bad_lines = [line for line in report.splitlines() if BAD_LOG.search(line)]
    assert not bad_lines, "\n".join(bad_lines[:20])


def healthy(proc: ProxyProcess) -> None:
    """The server still answers a normal request."""
    with Connection(proc.port, timeout=5) as conn:
        conn.send(build_request("GET", "/ret?ok=1"))
        resp = conn.read_response()
    assert resp.status == 200 and resp.body.startswith(b"variant=plain"), resp


def check_log(proc: ProxyProcess) -> None:
    report = proc.error_log() + proc.output()
    bad_lines = [line for line in report.splitlines() if BAD_LOG.search(line)]
    assert not bad_lines, "\n".join(bad_lines[:10])


def read_until_close(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes; a hang fails (socket.timeout)."""
    sock.settimeout(timeout)
    out = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        out.append(data)
        if time.monotonic() > deadline:
            raise AssertionError("server kept sending past the deadline")
    return b"".join(out)


STATUS = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9]) ")
HTTP09 = re.compile(rb"[\r\n]*[A-Z_-]+ +[^ \r\n]+ *\r?\n")


def statuses(data: bytes) -> list[int]:
    return [int(s) for s in STATUS.findall(data)]


def send_and_close_write(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send `raw`, half-close, and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
        except OSError:     # already refused and closed (EPIPE, ECONNRESET, ENOTCONN)
            pass
        return read_until_close(sock, timeout)


# ------------------------------------------------------------------ mutated request heads

def seeds() -> list[bytes]:
    return [
        build_request("GET", "/ret?a=1&b=%41", headers=[(b"X-Variant", b"c42")]),
        build_request("GET", "/p/x?y=1", headers=[(b"Accept", b"*/*"), (b"Cookie", b"a=b")]),
        build_request("GET", "/k/pooled", headers=[(b"Connection", b"keep-alive")]),
        build_request("POST", "/p/post", body=b"hello=world"),
        build_request("POST", "/k/chunked", headers=[(b"Transfer-Encoding", b"chunked")],
                      body=b"5\r\nhello\r\n0\r\n\r\n"),
        build_request("HEAD", "/index.html"),
        build_request("GET", "/rw/abc?q=1"),
        build_request("GET", "/if?deny=", headers=[(b"X-Variant", b"rewrite")]),
        build_request("GET", "/redir", headers=[(b"X-Variant", b"beta")]),
        build_request("GET", "/ws", headers=[(b"Upgrade", b"websocket"),
                                             (b"Connection", b"Upgrade")]),
        build_request("GET", "/nothing/here"),
        b"GET http://example.test/p/abs?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        b"GET /ret HTTP/1.0\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: example.test\r\n\r\n",
        build_request("PUT", "/k/put", body=b"x" * 300),
    ]


ODD = [b"\x00", b"\r", b"\n", b"%", b" ", b":", b"\t", b"\x7f", b"\x80", b"\xff", b"/", b"?",
       b"#", b"..", b"%00", b"%zz", b"%2e%2e/", b"\r\n", b"\r\n\r\n", b"\\", b";", b"*"]
METHODS = [b"get", b"G", b"GETT", b"BREW", b"CONNECT", b"TRACE", b"PRI", b"M" * 300, b"",
           b"DELETE", b"PATCH", b"PROPFIND", b"\x00"]
LENGTHS = [b"-1", b"99999999999999999999999", b"18446744073709551616", b" 5", b"5, 6", b"0x10",
           b"1e3", b"", b"+3", b"3 3", b"100000"]


def mutate(rng: random.Random, raw: bytes) -> bytes:
    for _ in range(rng.randint(1, 3)):
        raw = rng.choice(MUTATORS)(rng, raw)
    return raw


def m_flip(rng, raw):
    i = rng.randrange(len(raw) or 1)
    return raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1:]


def m_insert(rng, raw):
    i = rng.randrange(len(raw) + 1)
    return raw[:i] + rng.choice(ODD) + raw[i:]


def m_truncate(rng, raw):
    return raw[:rng.randrange(len(raw) + 1)]


def m_dup_header(rng, raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if len(lines) < 2:
        return raw
    i = rng.randrange(1, len(lines))
    lines[i + 1:i + 1] = [lines[i]] * rng.choice([1, 2, 50, 500])
    return b"\r\n".join(lines) + sep + body


def m_huge_header(rng, raw):
    size = rng.choice([1000, 8191, 8200, 40000, 200000])
    line = rng.choice([b"X-Huge: ", b"Host: ", b"Cookie: ", b"X" * 10 + b": "]) + b"v" * size
    return raw.replace(b"\r\n", b"\r\n" + line + b"\r\n", 1)


def m_method(rng, raw):
    return rng.choice(METHODS) + raw[raw.find(b" "):] if b" " in raw else raw


def m_target(rng, raw):
    parts = raw.split(b" ", 2)
    if len(parts) < 3:
        return raw
    targets = [b"/%", b"/%4", b"/%G0", b"/a%00b", b"/../../etc/passwd", b"/p/%2e%2e/%2e%2e/x",
               b"http://example.test", b"http://[::1]:x/", b"https://a/p/", b"//p//x",
               b"/ret?" + b"a" * 9000, b"/" + b"x" * 5000, b"*", b"", b"/p/\xff\xfe",
               b"/ret#frag", b"/./././ret", b"/ret/..", b"/p/../../..", b"ftp://a/b",
               b"http://exa mple/", b"/%25%", b"/ws?%"]
    parts[1] = rng.choice(targets)
    return b" ".join(parts)


def m_version(rng, raw):
    return re.sub(rb"HTTP/1\.[01]", rng.choice([b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.9", b"HTTP/11",
                                               b"http/1.1", b"HTTP/1.", b"HTTP/", b"HTTP/9.9",
                                               b"HTTP/1.1 x"]), raw, count=1)


def m_length(rng, raw):
    value = rng.choice(LENGTHS)
    if b"Content-Length: " in raw:
        return re.sub(rb"Content-Length: [^\r]*", b"Content-Length: " + value, raw, count=1)
    return raw.replace(b"\r\n", b"\r\nContent-Length: " + value + b"\r\n", 1)


def m_chunk(rng, raw):
    if b"chunked" not in raw:
        raw = raw.replace(b"\r\n", b"\r\nTransfer-Encoding: chunked\r\n", 1)
    size = rng.choice([b"ffffffffffffffffffff", b"-1", b"zz", b"1;ext=" + b"e" * 5000, b"",
                       b"7fffffffffffffff", b"10000000000000000", b"5 ", b"0x5", b"5\x00"])
    head, sep, _ = raw.partition(b"\r\n\r\n")
    return head + sep + size + b"\r\nhello\r\n0\r\n\r\n"


def m_te(rng, raw):
    te = rng.choice([b"chunked, chunked", b"gzip", b"identity", b"chunked, gzip", b"gzip, chunked",
                     b"Chunked", b" chunked", b"\x00chunked"])
    return raw.replace(b"\r\n", b"\r\nTransfer-Encoding: " + te + b"\r\n", 1)


def m_header_junk(rng, raw):
    junk = rng.choice([b"NoColon", b": empty-name", b"X Y: z", b"X-A:\x00", b"X-B: a\rb",
                       b" folded: continuation", b"\tX: y", b"X-C: \xff\xfe", b"Host:",
                       b"Host: a\x00b", b"Host: [::1", b"Host: a..b", b"Host: a/b",
                       b"Host: " + b"h" * 300, b"Expect: 100-continue", b"Expect: weird",
                       b"Upgrade: websocket", b"Connection: upgrade, close, keep-alive",
                       b"X_Under: score", b"Content-Length: 3"])
    return raw.replace(b"\r\n", b"\r\n" + junk + b"\r\n", 1)


MUTATORS = [m_flip, m_insert, m_truncate, m_dup_header, m_huge_header, m_method, m_target,
            m_version, m_length, m_chunk, m_te, m_header_junk, m_flip, m_insert, m_truncate]


def test_mutated_requests(env):
    """2,000 mutations of valid requests, each on its own half-closed connection: whatever comes
    back is well-formed HTTP or nothing, and the connection is closed (no hang)."""
    rng = random.Random(20240611)
    base = seeds()
    start = rss(worker_pid(env.proc.pid))
    for n in range(2000):
        raw = mutate(rng, rng.choice(base))
        data = send_and_close_write(env.port, raw)
        if data:     # an HTTP/0.9 request (no version) gets its body alone, as from nginx
            assert STATUS.match(data) or HTTP09.match(raw), (n, raw[:300], data[:300])
        if n % 20 == 0:
            healthy(env)
    healthy(env)
    check_log(env)
    grown = rss(worker_pid(env.proc.pid)) - start
    assert grown < 40 << 20, f"worker RSS grew {grown} bytes over 2,000 mutated requests"


def test_malformed_requests_get_4xx_or_close(env):
    """Known-bad requests: the answer is a 4xx/5xx or a close, never a 2xx or a hang."""
    cases = [
        b"GET / HTTP/1.1\r\nHost: example.test\r\nContent-Length: -1\r\n\r\n",
        b"POST /p/ HTTP/1.1\r\nHost: example.test\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST /p/ HTTP/1.1\r\nHost: example.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"POST /p/ HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"POST /p/ HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /p/ HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        b"GET /\x00 HTTP/1.1\r\nHost: example.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.test\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET /%00 HTTP/1.1\r\nHost: example.test\r\n\r\n",
        b"GET /../x HTTP/1.1\r\nHost: example.test\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: example.test\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.test\r\n" + b"X-Long: " + b"a" * 70000 + b"\r\n\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: example.test\r\n\r\n",
        b"POST /p/ HTTP/1.1\r\nHost: example.test\r\nContent-Length: 100000\r\n\r\n",
    ]
    for raw in cases:
        data = send_and_close_write(env.port, raw)
        codes = statuses(data[:200])
        assert not data or (codes and codes[0] >= 400), (raw[:100], data[:300])
        healthy(env)
    check_log(env)


# ------------------------------------------------------------------ hostile clients

def test_slowloris_heads(env):
    """Heads sent a byte at a time and never finished are cut at client_header_timeout (2s) with
    no answer (nginx: 408 logged, connection closed); others are served meanwhile."""
    socks = []
    for i in range(20):
        s = socket.create_connection(("127.0.0.1", env.port), timeout=6)
        s.sendall(b"GET /ret HTTP/1.1\r\nHost: exa"[:10 + i])
        socks.append(s)
    for _ in range(5):
        for s in socks:
            try:
                s.sendall(b"X")
            except OSError:
                pass
        healthy(env)
        time.sleep(0.1)
    for s in socks:
        data = read_until_close(s, timeout=6)
        assert not data or statuses(data)[0] >= 400, data[:200]
        s.close()
    healthy(env)
    check_log(env)


REQUESTS_TO_ABANDON = [
    build_request("GET", "/p/big"),
    build_request("GET", "/k/big"),
    build_request("GET", "/big.bin"),
    build_request("POST", "/p/up", body=b"u" * 30000),
    build_request("POST", "/k/up", headers=[(b"Transfer-Encoding", b"chunked")],
                  body=b"2000\r\n" + b"c" * 0x2000 + b"\r\n0\r\n\r\n"),
    build_request("GET", "/ws", headers=[(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]),
    build_request("GET", "/bad/silent"),
    build_request("GET", "/bad/trickle"),
    build_request("GET", "/ret"),
]


@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset"])
def test_client_closes_at_every_stage(env, reset):
    """The client goes away mid-head, mid-body, right after the request, and mid-response."""
    for raw in REQUESTS_TO_ABANDON:
        cuts = sorted({1, len(raw) // 3, raw.find(b"\r\n\r\n") + 2, len(raw) - 1, len(raw)})
        for cut in cuts:
            for read_some in (False, True):
                s = socket.create_connection(("127.0.0.1", env.port), timeout=5)
                try:
                    s.sendall(raw[:cut])
                    if read_some and cut == len(raw):
                        s.recv(100)     # mid-response (or mid-upgrade)
                finally:
                    if reset:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()
        healthy(env)
    time.sleep(0.3)
    healthy(env)
    check_log(env)


def test_half_closed_clients(env):
    """shutdown(SHUT_WR) after a complete request: the response (or a close), then a close."""
    for raw in REQUESTS_TO_ABANDON[:5] + [build_request("GET", "/ret"),
                                          build_request("GET", "/index.html"),
                                          build_request("GET", "/nope"),
                                          build_request("GET", "/bad/garbage")]:
        data = send_and_close_write(env.port, raw)
        # the garbage upstream's bytes may win the race with the half-close: passed on raw as
        # HTTP/0.9, as nginx does
        assert not data or STATUS.match(data) or data.startswith(b"\x00\xffgarbage"), data[:200]
    # a complete return/static answer is not lost to the half-close
    data = send_and_close_write(env.port, build_request("GET", "/ret"))
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"args=\n"), data
    healthy(env)
    check_log(env)


def test_pipelined_bursts(env):
    """100 pipelined requests in one write, mixed targets: 100 answers in order."""
    rng = random.Random(7)
    targets = ["/ret?i=%d", "/p/x?i=%d", "/k/x?i=%d", "/index.html?i=%d", "/nope?i=%d",
               "/rw/x?i=%d", "/if?i=%d", "/bad/garbage?i=%d", "/redir?i=%d"]
    for _ in range(3):
        chosen = [rng.choice(targets) % i for i in range(100)]
        raw = b"".join(build_request("GET", t) for t in chosen)
        with Connection(env.port, timeout=10) as conn:
            conn.send(raw)
            got = [conn.read_response() for _ in chosen]
        assert len(got) == 100 and all(100 < r.status < 600 for r in got)
        assert [r.status for r in got if r.body.startswith(b"variant=")] == \
            [200] * sum(t.startswith("/ret") for t in chosen)
    # a burst with a malformed request in the middle: answers up to it, then a 400 and a close
    raw = (build_request("GET", "/ret") * 10 + b"GET /\x00 HTTP/1.1\r\n\r\n"
           + build_request("GET", "/ret") * 10)
    data = send_and_close_write(env.port, raw)
    assert statuses(data) == [200] * 10 + [400], data[-300:]
    # the same behind proxied requests still in flight when the bad head is parsed (it was
    # answered first, and the proxied responses then written to a closed transport)
    for bad in (b"d", b"\x00", b"GET / HTTP/1.1\r\nHost: example.test\r\nX: a\x00b\r\n\r\n"):
        raw = (build_request("POST", "/p/post", body=b"hello=world")
               + build_request("GET", "/k/x") + bad)
        with socket.create_connection(("127.0.0.1", env.port), timeout=5) as sock:
            sock.sendall(raw)
            data = read_until_close(sock)
        assert statuses(data) == [200, 200, 400], data[-300:]
    healthy(env)
    check_log(env)


# ------------------------------------------------------------------ misbehaving upstreams

@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_upstream_misbehaviour(env, script):
    """Every script through the pooled location: a complete answer, or a 5xx (the error_page
    fallback is a 503), or a close once the head went out; never a hang."""
    for method in ("GET", "HEAD"):
        with Connection(env.port, timeout=6) as conn:
            conn.send(build_request(method, "/bad/" + script))
            try:
                resp = conn.read_response(method)
            except Exception as exc:  # noqa: BLE001 - a truncated answer must end in a close
                assert conn.closed_by_peer(3), (script, exc)
            else:
                assert 100 < resp.status < 600
                if script in ("garbage", "partial-head", "partial-status", "huge-headers",
                              "bad-header-line", "http09", "reset", "close", "reset-head",
                              "silent"):
                    assert resp.status >= 500, (script, resp)
    healthy(env)
    check_log(env)


def test_upstream_head_over_proxy_buffer_size(env):
    """A response head over proxy_buffer_size (4k by default) is a 502 as in nginx ("upstream
    sent too big header"), here turned into the @fallback 503; proxy_buffer_size 128k takes it."""
    with Connection(env.port, timeout=5) as conn:
        conn.send(build_request("GET", "/bad/huge-headers"))
        assert conn.read_response().body == b"fallback\n"
        conn.send(build_request("GET", "/big-ok/huge-headers"))
        resp = conn.read_response()
    assert resp.status == 200 and len(resp.header("X-Big")) == 70000
    assert "upstream sent too big header while reading response header from upstream" in \
        env.error_log()
    check_log(env)


def test_101_without_upgrade_request(env):
    """A 101 the client did not ask for is a 502 (nginx: upstream sent unexpected 101)."""
    with Connection(env.port, timeout=5) as conn:
        conn.send(build_request("GET", "/bad/switch"))
        resp = conn.read_response()
    assert resp.status >= 500 or resp.status == 101, resp
    healthy(env)
    check_log(env)


# ------------------------------------------------------------------ reload race

def test_requests_racing_reload(env):
    """Requests on fresh connections while `-s reload` runs three times: each gets its answer."""
    stop = threading.Event()
    failures: list[str] = []
    count = [0]

    def client(target: str) -> None:
        while not stop.is_set():
            try:
                with Connection(env.port, timeout=5) as conn:
                    conn.send(build_request("GET", target))
                    resp = conn.read_response()
                if resp.status != 200:
                    failures.append(f"{target}: {resp.status}")
                count[0] += 1
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{target}: {exc!r}")

    threads = [threading.Thread(target=client, args=(t,)) for t in ("/ret", "/p/r", "/k/r")]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            time.sleep(0.3)
            subprocess.run([sys.executable, "-m", "ngate", "-p", f"{env.prefix}/", "-c",
                            str(env.prefix / "nginx.conf"), "-s", "reload"], check=True,
                           cwd=str(REPO_ROOT), timeout=10)
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not failures, failures[:10]
    assert count[0] > 10
    healthy(env)
    check_log(env)
