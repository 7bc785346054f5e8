"""HTTP/2 to clients (ngate/http2/): real clients (curl --http2 over TLS with ALPN,
--http2-prior-knowledge in clear text, nghttp, h2load) and a frame-level h2 client for flow
control, cancellation and limits. Every stream runs the normal phases and talks HTTP/1.x to the
backend."""
from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import time

import h2.events
import hpack

import pytest
import trustme

from tests.harness.backend import Backend, Reply
from tests.harness.h2client import H2Client
from tests.harness.processes import ProxyProcess, free_port, wait_log

BIG = bytes(range(256)) * 4096          # 1 MiB
HUGE = BIG * 32                         # past what the kernel's socket buffers hold

CONF = """
error_log {prefix}/logs/error.log info;
events {}
http {
    log_format h2 '$request|$status|$server_protocol|$http2|$body_bytes_sent|$ssl_alpn_protocol';
    access_log {prefix}/logs/access.log h2;
    client_max_body_size 1k;
    send_timeout 2s;
    server {
        listen 127.0.0.1:{port} http2;
        location / { return 200 "plain $http2 $server_protocol\\n"; }
        location /p/ { proxy_pass http://127.0.0.1:{backend}; }
        location /big { proxy_pass http://127.0.0.1:{backend}; }
        location /huge { proxy_pass http://127.0.0.1:{backend}; }
        location /sf/ { proxy_pass http://127.0.0.1:{backend}; sub_filter "backend" "BACK";
                        sub_filter_types text/plain; }
        location /upload { client_max_body_size 1m; proxy_pass http://127.0.0.1:{backend}; }
        location /drop { return 444; }
        location /drop-after-error { error_page 404 = /drop; return 404; }
        location /gen/ok { return 201 "created\n"; }
        location /gen/longer { return 201 "created!\n"; }
        location /gen/ok-bare { server_tokens off; return 201 "created\n"; }
        location /gen/bare { server_tokens off; default_type application/x-bare; return 200 "b"; }
        location /gen/missing { return 404; }
        location /gen/empty { return 204; }
    }
    server {
        listen 127.0.0.1:{tls_port} ssl http2;
        server_name a.test;
        ssl_certificate {pki}/a.crt;
        ssl_certificate_key {pki}/a.key;
        location / { return 200 "tls $http2 $server_protocol $ssl_alpn_protocol\\n"; }
    }
    server {
        listen 127.0.0.1:{tls_port2} ssl;
        server_name a.test;
        http2 on;
        ssl_certificate {pki}/a.crt;
        ssl_certificate_key {pki}/a.key;
        location / { return 200 "on $http2\\n"; }
    }
    server {
        listen 127.0.0.1:{ka_port} http2;
        keepalive_requests 3;
        keepalive_time 1s;
        location / { return 200 "ka\\n"; }
    }
}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    d.chmod(0o755)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    cert = ca.issue_cert("a.test")
    cert.cert_chain_pems[0].write_to_path(str(d / "a.crt"))
    cert.private_key_pem.write_to_path(str(d / "a.key"))
    return d


@pytest.fixture(scope="module")
def backend():
    with Backend() as b:
        b.route("/big", Reply(body=BIG))
        b.route("/huge", Reply(body=HUGE))
        b.route("/p/slow", Reply(body=b"late\n", delay=3))
        b.route("/p/hdr", Reply(headers=[(b"Content-Type", b"text/x"), (b"X-Up", b"1"),
                                         (b"Connection", b"keep-alive")], body=b"hdr\n"))
        b.route("/p/chunked", Reply(chunks=[b"ab", b"cd"]))
        yield b


@pytest.fixture(scope="module")
def ngate(tmp_path_factory, pki, backend):
    prefix = tmp_path_factory.mktemp("ngate-h2")
    with ProxyProcess("ngate", CONF, prefix, backend=backend.port, pki=str(pki),
                      tls_port=free_port(), tls_port2=free_port(), ka_port=free_port()) as p:
        yield p


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                          timeout=30)


def test_curl_prior_knowledge(ngate):
    r = curl("--http2-prior-knowledge", "-i", f"http://127.0.0.1:{ngate.port}/x")
    assert r.stdout.startswith(b"HTTP/2 200"), r
    assert r.stdout.endswith(b"plain h2c HTTP/2.0\n")
    wait_log(ngate, r"GET /x HTTP/2.0\|200\|HTTP/2.0\|h2c\|19\|")


def test_http1_on_the_same_plain_socket(ngate):
    r = curl("-i", f"http://127.0.0.1:{ngate.port}/y")
    assert r.stdout.startswith(b"HTTP/1.1 200"), r
    assert r.stdout.endswith(b"plain  HTTP/1.1\n")


def test_curl_alpn_h2_and_http11_fallback(ngate, pki):
    port = ngate.params["tls_port"]
    base = ["--cacert", str(pki / "ca.pem"), "--resolve", f"a.test:{port}:127.0.0.1"]
    r = curl(*base, "--http2", "-i", f"https://a.test:{port}/")
    assert r.stdout.startswith(b"HTTP/2 200"), r
    assert r.stdout.endswith(b"tls h2 HTTP/2.0 h2\n")
    r = curl(*base, "--http1.1", "-i", f"https://a.test:{port}/")
    assert r.stdout.startswith(b"HTTP/1.1 200"), r
    assert r.stdout.endswith(b"tls  HTTP/1.1 http/1.1\n")


def test_http2_on_directive(ngate, pki):
    port = ngate.params["tls_port2"]
    r = curl("--cacert", str(pki / "ca.pem"), "--resolve", f"a.test:{port}:127.0.0.1", "--http2",
             "-i", f"https://a.test:{port}/")
    assert r.stdout.startswith(b"HTTP/2 200") and r.stdout.endswith(b"on h2\n"), r


def test_proxy_over_http2(ngate, backend):
    mark = backend.mark()
    with H2Client(ngate.port) as c:
        sid = c.request("/p/hdr", headers=[(b"x-client", b"yes"), (b"cookie", b"a=1"),
                                           (b"cookie", b"b=2")])
        status, head, body = c.response(sid)
    assert (status, body) == (200, b"hdr\n")
    assert head[b"x-up"] == b"1" and head[b"content-type"] == b"text/x"
    assert b"connection" not in head
    seen = backend.since(mark)[0]
    assert seen.version == b"HTTP/1.0" and seen.target == b"/p/hdr"
    assert seen.header(b"host") == b"127.0.0.1:%d" % backend.port
    assert seen.header(b"x-client") == b"yes"
    assert seen.header(b"cookie") == b"a=1; b=2"


def test_repeated_header_lists_reach_the_backend_as_sent(ngate, backend):
    """The same header list again (the client's HPACK block then all indexes: decoded once
    while its table is unchanged, parsed once: request.py's _PARSED) and lists that differ by
    one value: each request gets its own headers, cookies joined each time."""
    mark = backend.mark()
    values = [b"one", b"one", b"one", b"two", b"one", b"three"]
    with H2Client(ngate.port) as c:
        for v in values:
            sid = c.request("/p/hdr", headers=[(b"x-client", v), (b"cookie", b"a=1"),
                                               (b"cookie", b"b=2")])
            assert c.response(sid)[0] == 200
    seen = backend.since(mark)
    assert [r.header(b"x-client") for r in seen] == values
    assert {r.header(b"cookie") for r in seen} == {b"a=1; b=2"}


def test_chunked_upstream_response(ngate):
    with H2Client(ngate.port) as c:
        status, head, body = c.response(c.request("/p/chunked"))
    assert (status, body) == (200, b"abcd")
    assert b"transfer-encoding" not in head


def test_request_body_reaches_backend_with_length(ngate, backend):
    mark = backend.mark()
    with H2Client(ngate.port) as c:
        status, _, _ = c.response(c.request("/upload", method="POST", body=b"z" * 5000))
    assert status == 200
    seen = backend.since(mark)[0]
    assert seen.body == b"z" * 5000 and seen.header(b"content-length") == b"5000"


def test_client_max_body_size(ngate):
    with H2Client(ngate.port) as c:
        declared = c.response(c.request("/p/x", method="POST", body=b"z" * 2000,
                                        headers=[(b"content-length", b"2000")]))[0]
        undeclared = c.response(c.request("/p/x", method="POST", body=b"z" * 2000))[0]
    assert declared == 413 and undeclared == 413


def test_slow_stream_does_not_hold_its_neighbour(ngate):
    """Stream A's window stays shut after 64 KiB; stream B on the same connection gets all of
    its 1 MiB: flow control is per stream, and A's upstream is paused, not the connection."""
    with H2Client(ngate.port) as c:
        a = c.request("/big")
        b = c.request("/big")
        c.auto_ack = {b}
        assert c.response(b, timeout=10)[2] == BIG
        assert a not in c.ended and len(c.bodies.get(a, b"")) <= 65535
        c.auto_ack = None
        c.conn.increment_flow_control_window(1 << 20, stream_id=a)
        c.flush()
        assert c.response(a, timeout=10)[2] == BIG


@pytest.mark.parametrize("path", ["/drop", "/drop-after-error"])
def test_return_444_resets_the_stream_and_the_connection_goes_on(ngate, path):
    """nginx closes the stream with RST_STREAM (the connection stays): a 444 must never leave the
    stream open, holding the client and a graceful stop (nginx's ticket #274)."""
    with H2Client(ngate.port) as c:
        sid = c.request(path)
        c.pump(lambda: sid in c.resets, timeout=5)
        assert sid in c.resets
        assert c.response(c.request("/"))[0] == 200
    wait_log(ngate, rf"GET {path} HTTP/2\.0\|444\|")


def test_return_in_one_step_or_as_the_window_opens(ngate):
    """A `return` leaves as HEADERS + one DATA with END_STREAM (a HEAD as HEADERS with
    END_STREAM) and is logged; with a 4-byte stream window the same body is queued and sent
    as the client opens the window, 4 bytes a frame, and logged once it is out."""
    body = b"plain h2c HTTP/2.0\n"
    with H2Client(ngate.port) as c:
        sid = c.request("/one")
        assert c.response(sid) == (200, c.response(sid)[1], body)
        frames = [e for e in c.events if getattr(e, "stream_id", None) == sid
                  and isinstance(e, h2.events.DataReceived)]
        assert len(frames) == 1 and frames[0].stream_ended is not None
        head = c.request("/one-head", method="HEAD")
        status, hdrs, got = c.response(head)
        assert (status, got, hdrs[b"content-length"]) == (200, b"", b"%d" % len(body))
        assert head in c.ended
    wait_log(ngate, r"GET /one HTTP/2\.0\|200\|HTTP/2\.0\|h2c\|19\|")
    wait_log(ngate, r"HEAD /one-head HTTP/2\.0\|200\|HTTP/2\.0\|h2c\|0\|")
    with H2Client(ngate.port, window=4) as c:
        sid = c.request("/small-window")
        assert c.response(sid)[::2] == (200, body)
        frames = [e for e in c.events if getattr(e, "stream_id", None) == sid
                  and isinstance(e, h2.events.DataReceived)]
        assert len(frames) == 5 and max(len(e.data) for e in frames) == 4
    wait_log(ngate, r"GET /small-window HTTP/2\.0\|200\|HTTP/2\.0\|h2c\|19\|")


GENERATED = {   # path: (status, content-type, content-length, body, server)
    "/gen/ok": (201, b"text/plain", b"8", b"created\n", b"ngate/"),
    "/gen/longer": (201, b"text/plain", b"9", b"created!\n", b"ngate/"),
    "/gen/ok-bare": (201, b"text/plain", b"8", b"created\n", b"ngate"),
    "/gen/bare": (200, b"application/x-bare", b"1", b"b", b"ngate"),
    "/gen/missing": (404, b"text/html", None, None, b"ngate/"),
    "/gen/empty": (204, None, None, b"", b"ngate/"),
}


def test_generated_responses_keep_their_own_heads(ngate):
    """Responses ngate makes (a `return`, a status page) leave as HPACK blocks kept for the
    second (head.response_block): each status, server_tokens, Content-Type and length gets its
    own head, the same each time it repeats on a connection and on another one, and a HEAD of
    the same location the same head without DATA."""
    seen = {}
    for _ in range(2):
        with H2Client(ngate.port) as c:
            for _ in range(2):
                for path, (status, ctype, length, body, server) in GENERATED.items():
                    got_status, hdrs, got = c.response(c.request(path))
                    assert got_status == status, path
                    assert hdrs.get(b"content-type") == ctype, path
                    assert hdrs[b"server"].startswith(server) and \
                        (server != b"ngate" or hdrs[b"server"] == b"ngate"), path
                    if length is not None:
                        assert hdrs[b"content-length"] == length, path
                    if body is not None:
                        assert got == body, path
                    else:
                        assert got.startswith(b"<html>") and b"404 Not Found" in got
                        assert hdrs[b"content-length"] == b"%d" % len(got)
                    assert b"date" in hdrs and b"connection" not in hdrs
                    head = {k: v for k, v in hdrs.items() if k != b"date"}
                    assert seen.setdefault(path, head) == head, path
                sid = c.request("/gen/ok", method="HEAD")
                status, hdrs, got = c.response(sid)
                assert (status, got, hdrs[b"content-length"]) == (201, b"", b"8")
                assert sid in c.ended and not c.bodies.get(sid)


def test_header_block_in_continuation_frames(ngate):
    """A request whose header block spans HEADERS and CONTINUATION frames (the client's frame
    size is 16384) is answered; a second one on the same connection, after it went idle, too."""
    fields = [(b"x-big-%d" % i, os.urandom(2500).hex().encode()) for i in range(6)]
    block = hpack.Encoder().encode([(b":method", b"GET"), (b":path", b"/cont"),
                                    (b":scheme", b"http"), (b":authority", b"x"), *fields])
    assert len(block) > 16384
    with H2Client(ngate.port) as c:
        for _ in range(2):
            sid = c.request("/cont", headers=fields)
            assert c.response(sid)[::2] == (200, b"plain h2c HTTP/2.0\n")
    wait_log(ngate, r"GET /cont HTTP/2\.0\|200\|HTTP/2\.0\|h2c\|")


def test_zero_window_stall_times_out(ngate):
    with H2Client(ngate.port) as c:
        c.auto_ack = set()
        sid = c.request("/big")
        c.pump(lambda: sid in c.resets, timeout=8)
        assert sid in c.resets
    wait_log(ngate, r"client timed out \(110: Connection timed out\) while sending to client")


def test_client_reading_nothing_times_out(ngate):
    """Windows wide open and a client that reads nothing: once the socket's buffers are full,
    send_timeout (2s) closes the connection, as nginx's connection write timer (h2.t "large
    response - send timeout"): a PING sent afterwards gets no answer."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    window = struct.pack(">HI", 4, 2 ** 31 - 1)
    sock = socket.create_connection(("127.0.0.1", ngate.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.sendall(preface + raw_frame(4, 0, 0, window)
                 + raw_frame(8, 0, 0, struct.pack(">I", 2 ** 31 - 1 - 65535))
                 + raw_frame(1, 0x5, 1, hpack.Encoder().encode(
                     [(b":method", b"GET"), (b":path", b"/huge"), (b":scheme", b"http"),
                      (b":authority", b"x")])))
    wait_log(ngate, r"GET /huge HTTP/2\.0\|", timeout=10)     # logged as the connection ends
    sock.sendall(raw_frame(6, 0, 0, b"SEE-THIS"))
    data = b""
    sock.settimeout(5)
    try:
        while chunk := sock.recv(1 << 20):
            data += chunk
    except OSError:
        pass
    sock.close()
    assert b"SEE-THIS" not in data
    assert len(data) < len(HUGE)


def raw_frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", sid) \
        + payload


def test_client_reset_is_499_and_aborts_upstream(ngate):
    with H2Client(ngate.port) as c:
        sid = c.request("/p/slow")
        time.sleep(0.5)
        c.conn.reset_stream(sid)
        c.flush()
        wait_log(ngate, r"GET /p/slow HTTP/2.0\|499\|")
        # the connection goes on
        assert c.response(c.request("/after"))[0] == 200
    assert "client prematurely closed connection" in ngate.error_log()


def test_nghttp_many_streams(ngate):
    paths = [f"http://127.0.0.1:{ngate.port}/n{i}" for i in range(20)]
    r = subprocess.run(["nghttp", "-n", "-s", *paths], capture_output=True, timeout=30)
    assert r.returncode == 0, r
    assert r.stdout.count(b" 200 ") == 20 or len(re.findall(rb"\s200\s", r.stdout)) == 20, r.stdout


def test_h2load(ngate):
    r = subprocess.run(["h2load", "-n", "200", "-c", "2", "-m", "10",
                        f"http://127.0.0.1:{ngate.port}/load"], capture_output=True, timeout=60)
    assert b"200 succeeded, 0 failed" in r.stdout and b"status codes: 200 2xx" in r.stdout, r.stdout


def test_response_filters_over_http2(ngate):
    """The filter stage (sub_filter here) rewrites a proxied body on a stream as on HTTP/1.1."""
    with H2Client(ngate.port) as c:
        status, head, body = c.response(c.request("/sf/x"))
    assert (status, body) == (200, b"ok BACK\n")


def _frames_until_closed(c: H2Client) -> list:
    """(type, flags, stream id, payload) of the raw frames the server sends until it closes
    (read past the h2 library, which takes no frame after a GOAWAY)."""
    data = bytearray()
    c.sock.settimeout(5)
    while True:
        chunk = c.sock.recv(65536)
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 9:
        n = int.from_bytes(data[:3], "big")
        frames.append((data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7fffffff,
                       bytes(data[9:9 + n])))
        del data[:9 + n]
    return frames


def test_keepalive_requests_and_time_end_a_connection_with_goaway(ngate):
    """nginx's keep-alive rules on HTTP/2: GOAWAY names the keepalive_requests-th stream as the
    last one, which is answered, and the connection closes; once keepalive_time is over, the
    next stream is the last one."""
    port = ngate.params["ka_port"]
    for before, wait in ((2, 0), (1, 1.3)):
        with H2Client(port) as c:
            first = [c.request("/a") for _ in range(before)]
            assert [c.response(sid)[::2] for sid in first] == [(200, b"ka\n")] * before
            if wait:
                c.pump(lambda: False, wait)         # keepalive_time (1s) goes by
            assert c.goaway is None
            last = c.request("/b")
            frames = _frames_until_closed(c)
        goaway = [f for f in frames if f[0] == 7]
        assert [(f[2], f[3][:8]) for f in goaway] == [(0, struct.pack(">II", last, 0))]
        answer = [f[:3] for f in frames if f[2] == last]
        assert answer == [(1, 4, last), (0, 1, last)], frames      # HEADERS, DATA END_STREAM
