"""Issue 10's request-side shapes, against Debian's nginx on the same config (real sockets).

Trailers never become headers or variables; an error while a body is read ends the request and
frees the connection; heads cut anywhere between TCP segments parse; LF-only chunked bodies and
HTTP/0.9 are served; and ordinary traffic nginx accepts or refuses gets the same answer.
"""
from __future__ import annotations

import socket
import time

import pytest

from tests.harness.client import Connection, ProtocolError
from tests.harness.differential import SIGNATURE_RE

CONF = """
http {
    large_client_header_buffers 4 8k;
    server {
        listen 127.0.0.1:{port};
        server_name x;
        location / {
            if ($http_x_admin) { return 403; }
            proxy_set_header X-User $http_x_user;
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /nb/ {
            proxy_request_buffering off;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /var/ {
            return 200 "user=$http_x_user host=$host\n";
        }
    }
}
"""

CHUNKED = b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
FOLLOW_UP = b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF)


def then_follow_up(*pieces: bytes):
    """Send the pieces (a short pause between them, so that they are separate segments), read
    one answer, then whether the connection still serves a follow-up request."""
    def script(port):
        with Connection(port) as conn:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i, p in enumerate(pieces):
                if i:
                    time.sleep(0.02)
                conn.send(p)
            first = conn.read_response()
            try:
                conn.send(FOLLOW_UP)
                return [first, conn.read_response()]
            except (ProtocolError, OSError):
                return [first, "closed"]
    return script


def raw_until_close(data: bytes):
    """Everything the server writes until it closes (HTTP/0.9 answers have no head)."""
    def script(port):
        with Connection(port) as conn:
            conn.send(data)
            assert conn.closed_by_peer(3.0)
            return SIGNATURE_RE.sub(b"<hr><center>SERVER</center>", conn.buf)
    return script


# ---------------------------------------------------------------- 1. trailers

TRAILERS = b"1\r\na\r\n0\r\nX-Admin: 1\r\nX-User: root\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"


@pytest.mark.parametrize("split", [False, True])
def test_trailers_never_become_headers(diff, split):
    head = CHUNKED % b"/"
    pieces = (head, b"1\r\na\r\n", b"0\r\nX-Admin: 1\r\n", TRAILERS[10:]) if split else (head + TRAILERS,)
    out = diff.check(then_follow_up(*pieces))
    assert out.result[0].status == 200
    sent = out.requests()[0]
    assert sent.body == b"a" and sent.header(b"content-length") == b"1"
    names = sent.header_names()
    assert b"x-admin" not in names and b"x-user" not in names and b"x-forwarded-for" not in names


def test_trailers_never_become_variables(diff):
    out = diff.check(then_follow_up(CHUNKED % b"/var/" + b"1\r\na\r\n0\r\nX-User: root\r\nHost: evil\r\n\r\n"))
    assert out.result[0].body == b"user= host=x\n"


# ---------------------------------------------------------------- 2. errors while a body is read

@pytest.mark.parametrize("path", [b"/", b"/nb/"])
@pytest.mark.parametrize("body", [
    b"1\r\na\r\n0\r\nHost: y\r\n\r\n",          # nginx discards trailers: 200
    b"1\r\na\r\nzz\r\n",                         # a bad chunk size after a good chunk: 400
    b"1\r\naXX",                                 # no CRLF after the chunk data: 400
])
def test_body_errors_end_the_request(diff, path, body):
    out = diff.check(then_follow_up(CHUNKED % path, body))
    assert out.result[0].status in (200, 400)
    if out.result[0].status == 400:
        assert out.result[1] == "closed"


BAD_BODY_CONF = """
worker_processes 1;
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 16; }
http {
    client_body_timeout 60s;
    server {
        listen 127.0.0.1:{port};
        location / {
            proxy_request_buffering off;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:{backend_port};
        }
    }
}
"""


def test_refused_bodies_free_their_connections(differential):
    """40 requests whose bodies go wrong on a worker with 16 connections: each is answered and
    closed by the server (no CLOSE_WAIT, no body timer left), and a normal request still works."""
    pair = differential(BAD_BODY_CONF)

    def script(port):
        closed = 0
        for i in range(40):
            with Connection(port) as conn:
                conn.send(CHUNKED % b"/" + b"1\r\na\r\n")
                time.sleep(0.1)  # the head read and sent upstream first, even on a loaded machine
                conn.send(b"0\r\nHost: y\r\n\r\n" if i % 2 else b"zz\r\n")
                conn.read_response()
                if i % 2 == 0:
                    closed += conn.closed_by_peer(3.0)
        with Connection(port) as conn:
            conn.send(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return [closed, conn.read_response().status]

    out = pair.check(script)
    assert out.result == [20, 200]


# ---------------------------------------------------------------- 4. heads cut between segments

BIG_HEAD = (b"GET /split?q=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
            b"Accept: text/html,application/xhtml+xml\r\nCookie: " + b"c" * 664 + b"\r\n"
            b"X-Last: 1\r\n\r\n")


def test_big_head_split_at_every_offset(diff):
    assert 780 < len(BIG_HEAD) < 820

    def script(port):
        statuses = []
        for i in range(1, len(BIG_HEAD)):
            with Connection(port) as conn:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.send(BIG_HEAD[:i])
                time.sleep(0.001)
                conn.send(BIG_HEAD[i:])
                statuses.append(conn.read_response().status)
        return sorted(set(statuses)), len(statuses)

    out = diff.check(script)
    assert out.result == ([200], len(BIG_HEAD) - 1)


@pytest.mark.parametrize("cut", [16, 15, 26, 27])
def test_crlf_split_between_segments(diff, cut):
    head = b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n"
    out = diff.check(then_follow_up(head[:cut], head[cut:]))
    assert out.result[0].status == 200 and out.result[1] != "closed"


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\rHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\rX",
])
def test_bare_cr_in_a_pipelined_head(diff, raw):
    def script(port):
        with Connection(port) as conn:
            conn.send(raw)
            first = conn.read_response()
            second = conn.read_response()
            return [first, second, conn.closed_by_peer(3.0)]
    out = diff.check(script)
    assert [out.result[0].status, out.result[1].status, out.result[2]] == [200, 400, True]
    assert [r.target for r in out.requests()] == [b"/"]


def test_bare_cr_split_from_what_follows(diff):
    out = diff.check(then_follow_up(b"GET /2 HTTP/1.1\r\nHost: x\r", b"X: y\r\n\r\n"))
    assert out.result == [out.result[0], "closed"] and out.result[0].status == 400
    assert out.requests() == []


# ---------------------------------------------------------------- 5. LF-only chunked, HTTP/0.9

@pytest.mark.parametrize("raw", [
    b"POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n1\na\n0\n\n",
    CHUNKED % b"/" + b"1\na\n0\n\n",
])
def test_lf_only_chunked_body(diff, raw):
    out = diff.check(then_follow_up(raw))
    assert out.result[0].status == 200 and out.requests()[0].body == b"a"


@pytest.mark.parametrize("raw", [b"GET /\r\n", b"GET /nine\n", b"GET /\r\nHost: x\r\n\r\n",
                                 b"POST /\r\n", b"HEAD /\r\n", b"GET /var/\r\n"])
def test_http09(diff, raw):
    out = diff.check(raw_until_close(raw))
    assert not out.result.startswith(b"HTTP/")


# ---------------------------------------------------------------- 7. ordinary traffic

G = b"GET / HTTP/1.1\r\nHost: x\r\n"


def many(n: int) -> bytes:
    return G + b"".join(b"X-H%d: v\r\n" % i for i in range(n)) + b"\r\n"


ORDINARY = {   # name -> (request, nginx's status)
    "trace": (b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    "te_tab_chunked": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\r\n1\r\na\r\n0\r\n\r\n", 501),
    "te_trailing_space": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked  \r\n\r\n1\r\na\r\n0\r\n\r\n", 200),
    "999_header_lines": (many(999), 200),
    "1000_header_lines": (many(1000), 400),
    "3000_header_lines": (many(3000), 400),
    "cl_trailing_spaces": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1  \r\n\r\na", 200),
    "cl_trailing_tab": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\t\r\n\r\na", 400),
    "chunk_size_space": (CHUNKED % b"/" + b"1 \r\na\r\n0\r\n\r\n", 200),
    "control_bytes_in_value": (G + b"X-A: a\x01b\x7fc\r\n\r\n", 200),
    "tabs_in_value": (G + b"X-A:\tv\t\r\nX-B: \tw \r\n\r\n", 200),
    "host_with_tab": (b"GET / HTTP/1.1\r\nHost:\tx\r\n\r\n", 400),
    "utf8_uri": (b"GET /\xc3\xa9t\xc3\xa9?q=\xe2\x82\xac HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    "http_1_2": (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 200),
    "http_1_10": (b"GET / HTTP/1.10\r\nHost: x\r\n\r\n", 200),
    "http_1_1000": (b"GET / HTTP/1.1000\r\nHost: x\r\n\r\n", 400),
    "http_2_0": (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    "method_underscore": (b"MY_METHOD / HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    "method_300_chars": (b"M" * 300 + b" / HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    "ftp_target": (b"GET ftp://x/file HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    "leading_empty_lines": (b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 200),
}


@pytest.mark.parametrize("name", list(ORDINARY))
def test_ordinary_traffic(diff, name):
    raw, status = ORDINARY[name]
    out = diff.check(then_follow_up(raw))
    assert out.result[0].status == status
