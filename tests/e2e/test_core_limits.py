"""Limits and timeouts around bodies, on nginx and ngate (checked against Debian's nginx 1.22):

- client_body_timeout: a client that stops sending its body gets nothing; the connection closes,
  the access log says 408, the error log says nothing, an upstream already fed is dropped.
- send_timeout: a client that stops reading is logged "client timed out (110: Connection timed
  out) while sending to client" and disconnected; the upstream is not left hanging.
- a client that closes mid-response: "epoll_wait() reported that client prematurely closed
  connection, so upstream connection is closed too ..." and the upstream connection is not pooled.
- slow clients and slow backends are served whole (the upstream read timeout does not run while
  the client is the one holding things up).
- Expect: 100-continue with a Content-Length over client_max_body_size: 413, no 100 Continue.
- chunked bodies read whole (proxy_request_buffering on) spill to a temp file above
  client_body_buffer_size ([warn] "a client request body is buffered to a temporary file").

Differences by design: nginx reads a Content-Length body whole before connecting upstream,
ngate streams it (the backend sees the same bytes); nginx buffers a fast upstream's response to a
temp file while the client is slow, ngate pauses the upstream instead.
"""
from __future__ import annotations

import re
import socket
import time

from tests.harness.client import Connection, build_request
from tests.harness.stream_backend import StreamBackend

CONF = """
http {
    client_body_timeout 1s;
    send_timeout 1s;
    client_max_body_size 1k;
    upstream pooled { server 127.0.0.1:{backend_port}; keepalive 4; }
    server {
        listen 127.0.0.1:{port};
        location / { proxy_pass http://127.0.0.1:{backend_port}; }
        location /nb/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_request_buffering off;
            proxy_http_version 1.1;
        }
        location /pooled/ {
            proxy_pass http://pooled;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /slow/ {
            proxy_pass http://pooled;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 1s;
            send_timeout 30s;
        }
        location /spool/ {
            proxy_pass http://127.0.0.1:{backend_port};
            client_max_body_size 10m;
            client_body_buffer_size 4k;
        }
    }
}
"""


def start(start_proxy, **params):
    backend = StreamBackend()
    return start_proxy(CONF, backend_port=backend.port, **params), backend


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, str]:
    sock.settimeout(timeout)
    got = bytearray()
    try:
        while data := sock.recv(1 << 20):
            got += data
        return bytes(got), "eof"
    except ConnectionResetError:
        return bytes(got), "reset"
    except socket.timeout:
        return bytes(got), "timeout"


def wait_log(read, text: str, timeout: float = 3.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = read()
        if text in log or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


# ---------------------------------------------------------------- client_body_timeout

def test_client_body_timeout_closes_without_a_response(start_proxy):
    proxy, backend = start(start_proxy)
    cases = [(b"/a", b"Content-Length: 100\r\n\r\n0123456789"),
             (b"/a", b"Transfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n"),
             (b"/nb/a", b"Content-Length: 100\r\n\r\n0123456789"),
             (b"/nb/a", b"Transfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")]
    for path, rest in cases:
        with socket.create_connection(("127.0.0.1", proxy.port)) as s:
            s.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + rest)
            got, how = read_until_closed(s)
        assert (got, how) == (b"", "eof"), (path, rest)
    deadline = time.monotonic() + 3
    while len(log := proxy.access_log().splitlines()) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [line.split('"')[2].split()[0] for line in log] == ["408"] * 4
    assert "client timed out" not in proxy.error_log()      # nginx does not log it
    # streamed bodies (all of ngate's, nginx's with request buffering off) were cut upstream
    time.sleep(0.3)
    assert not any(e[0] == "body" for e in backend.events)
    assert backend.events.count(("accept",)) == backend.events.count(("closed",))


def test_body_timeout_rearmed_by_progress(start_proxy):
    """A body trickling in slower than the whole timeout but faster than it per read is fine."""
    proxy, backend = start(start_proxy)
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(b"POST /nb/a HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        for b in b"01234567":
            time.sleep(0.3)
            s.sendall(bytes([b]))
        s.settimeout(5)
        assert s.recv(1000).startswith(b"HTTP/1.1 200 OK")
    assert ("body", 8) in backend.events


# ---------------------------------------------------------------- Expect: 100-continue

def test_expect_continue_over_the_limit_gets_413_without_continue(start_proxy):
    proxy, _ = start(start_proxy)
    for version in (b"1.1", b"1.0"):
        with socket.create_connection(("127.0.0.1", proxy.port)) as s:
            s.sendall(b"POST /a HTTP/" + version + b"\r\nHost: x\r\nContent-Length: 5000\r\n"
                      b"Expect: 100-continue\r\n\r\n")
            s.settimeout(3)
            head = s.recv(1000)
        assert head.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n"), head
        assert b"100 Continue" not in head
    assert "client intended to send too large body: 5000 bytes" in proxy.error_log()


def test_expect_continue_within_the_limit_gets_100_then_the_response(start_proxy):
    proxy, backend = start(start_proxy)
    for te in (b"Content-Length: 5", b"Transfer-Encoding: chunked"):
        with Connection(proxy.port) as conn:
            conn.send(b"POST /a HTTP/1.1\r\nHost: x\r\n" + te + b"\r\nExpect: 100-continue\r\n\r\n")
            assert conn.read_response("POST", interim=True).status == 100
            conn.send(b"hello" if te.startswith(b"Content") else b"5\r\nhello\r\n0\r\n\r\n")
            resp = conn.read_response("POST")
        assert (resp.status, resp.body) == (200, b"5")


# ---------------------------------------------------------------- send_timeout

def test_send_timeout_disconnects_a_client_that_stops_reading(start_proxy):
    proxy, backend = start(start_proxy)
    total = 50 << 20
    s = socket.create_connection(("127.0.0.1", proxy.port))
    s.sendall(b"GET /pooled/big?%d HTTP/1.1\r\nHost: x\r\n\r\n" % total)
    assert s.recv(100).startswith(b"HTTP/1.1 200 OK")
    log = wait_log(proxy.error_log, "while sending to client", 5)
    got, how = read_until_closed(s)
    s.close()
    assert how in ("eof", "reset") and len(got) < total
    assert "client timed out (110: Connection timed out) while sending to client, client: " \
           "127.0.0.1, server: , request: \"GET /pooled/big?52428800 HTTP/1.1\", upstream: " in log
    # ngate stops the upstream (it streams); nginx had buffered all of it to a temp file
    backend.wait_for("closed" if proxy.kind == "ngate" else "sent")


# ---------------------------------------------------------------- client gone mid-response

def test_client_closing_mid_response_is_logged_and_upstream_not_pooled(start_proxy):
    proxy, backend = start(start_proxy)
    s = socket.create_connection(("127.0.0.1", proxy.port))
    s.sendall(b"GET /pooled/big?%d HTTP/1.1\r\nHost: x\r\n\r\n" % (200 << 20))
    s.recv(100000)
    s.close()       # unread data: a reset
    log = wait_log(proxy.error_log, '"GET /pooled/big?209715200 HTTP/1.1", upstream: ', 10)
    context = ', client: 127.0.0.1, server: , request: "GET /pooled/big?209715200 HTTP/1.1"'
    # nginx says one of these, depending on which of its events notices first
    errno = r"\((104: Connection reset by peer|32: Broken pipe)\)"
    assert re.search(re.escape("epoll_wait() reported that client prematurely closed connection, "
                               "so upstream connection is closed too") + f"( {errno})?"
                     + re.escape(" while reading upstream" + context)
                     + r"|writev\(\) failed " + errno
                     + re.escape(" while sending to client" + context), log), log[-700:]
    backend.wait_for("closed")
    with Connection(proxy.port) as conn:
        conn.send(build_request("GET", "/pooled/small?10"))
        assert conn.read_response().body == b"x" * 10
    assert backend.events.count(("accept",)) == 2     # the first connection was not reused


# ---------------------------------------------------------------- slow peers

def test_slow_client_is_served_whole(start_proxy):
    """The client reads 64 KiB every 0.1 s for 3 s (longer than proxy_read_timeout 1s), then
    the rest: the upstream read timeout must not fire while the client holds things up.
    send_timeout is long (30s): on a loaded machine the client's pace drops, and a few times
    slower both nginx and ngate rightly time it out after a 3s send_timeout (the socket is
    only writable again once a third of its send buffer is free)."""
    proxy, backend = start(start_proxy)
    total = 8 << 20
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /slow/big?%d HTTP/1.1\r\nHost: x\r\n\r\n" % total)
        got = bytearray()
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:
            got += s.recv(65536)
            time.sleep(0.1)
        s.settimeout(5)
        head_end = got.find(b"\r\n\r\n") + 4
        while len(got) - head_end < total:
            data = s.recv(1 << 20)
            if not data:
                break
            got += data
    assert got.startswith(b"HTTP/1.1 200 OK") and got[head_end:] == b"x" * total
    assert "timed out" not in proxy.error_log()


def test_slow_backend_within_read_timeout_is_served_whole(start_proxy):
    proxy, backend = start(start_proxy)
    with Connection(proxy.port, timeout=10) as conn:
        conn.send(build_request("GET", "/slow/drip/x?8"))
        resp = conn.read_response()
    assert (resp.status, resp.body) == (200, b"x" * 8)


# ---------------------------------------------------------------- client_body_buffer_size

def test_chunked_body_over_client_body_buffer_size_goes_through_a_temp_file(start_proxy):
    proxy, backend = start(start_proxy)
    body = bytes(range(256)) * 4096     # 1 MiB
    chunks = b"".join(b"%x\r\n%b\r\n" % (len(body[i:i + 50000]), body[i:i + 50000])
                      for i in range(0, len(body), 50000)) + b"0\r\n\r\n"
    with Connection(proxy.port, timeout=10) as conn:
        conn.send(build_request("POST", "/spool/up", headers=[(b"Transfer-Encoding", b"chunked")])
                  + chunks)
        assert conn.read_response("POST").body == b"%d" % len(body)
        conn.send(build_request("POST", "/spool/up", headers=[(b"Transfer-Encoding", b"chunked")])
                  + b"10\r\n" + b"y" * 16 + b"\r\n0\r\n\r\n")
        assert conn.read_response("POST").body == b"16"
    log = proxy.error_log()
    assert log.count("[warn]") == 1 and "a client request body is buffered to a temporary file " in log


# ---------------------------------------------------------------- client_header_timeout

HEADER_CONF = CONF.replace("    client_body_timeout 1s;\n",
                           "    client_body_timeout 1s;\n    client_header_timeout 1s;\n") \
    .replace("        location /slow/ {",
             "        location /hdr/ { proxy_pass http://127.0.0.1:{backend_port}/; }\n"
             "        location /slow/ {")


def test_client_header_timeout_does_not_cut_a_request_that_outlasts_it(start_proxy):
    """client_header_timeout runs from the accept (and from a head's first bytes) until the
    head is complete: a response that takes longer than it (a slow backend, 3 s) is served
    whole, and the connection goes on to its next request, for a first request whose head
    arrived whole and for one that arrived in two pieces (server/lifecycle.py leaves the armed
    timer to the response's re-arm: _header_timeout does nothing while a request is current)."""
    backend = StreamBackend()
    proxy = start_proxy(HEADER_CONF, backend_port=backend.port)
    for pieces in (1, 2):
        with Connection(proxy.port, timeout=10) as conn:
            req = build_request("GET", "/hdr/drip/x?15")
            if pieces == 1:
                conn.send(req)
            else:
                conn.send(req[:10])
                time.sleep(0.3)
                conn.send(req[10:])
            resp = conn.read_response()
            assert (resp.status, resp.body) == (200, b"x" * 15)
            conn.send(build_request("GET", "/hdr/drip/x?1"))
            resp = conn.read_response()
            assert (resp.status, resp.body) == (200, b"x")
    assert "timed out" not in proxy.error_log()
