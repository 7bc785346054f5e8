"""Requests nginx rejects or tolerates, answered the same way (status, headers, body, closing)."""
import pytest

from tests.harness.client import Connection, ProtocolError

CONF = """
http {
    client_max_body_size 16;
    large_client_header_buffers 4 1k;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        location / {
            proxy_pass http://127.0.0.1:{backend_port};
        }
    }
}
"""

H = b"Host: example.test\r\n"


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF)


FOLLOW_UP = b"GET /after HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"


def answer_and_close(raw: bytes):
    """The script: send raw bytes, read one answer, then whether the connection still serves."""
    def script(port):
        with Connection(port) as conn:
            conn.send(raw)
            first = conn.read_response()
            return [first, follow_up(conn)]
    return script


def follow_up(conn: Connection):
    try:
        conn.send(FOLLOW_UP)
        return conn.read_response()
    except (ProtocolError, OSError):
        return "closed"


CASES = {
    "bad_request_line": b"GARBAGE\r\n\r\n",
    "bad_method_chars": b"G(T / HTTP/1.1\r\n" + H + b"\r\n",
    "bad_version": b"GET / HTTP/9.9\r\n" + H + b"\r\n",
    "http2_preface_like": b"GET / HTTP/2.0\r\n" + H + b"\r\n",
    "no_host_http11": b"GET / HTTP/1.1\r\n\r\n",
    "two_hosts": b"GET / HTTP/1.1\r\n" + H + H + b"\r\n",
    "cl_and_te": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n0\r\n\r\n",
    "duplicate_cl": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "conflicting_cl": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "negative_cl": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n",
    "bad_chunk_size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "unknown_transfer_coding": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n",
    "te_http10": b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "header_too_large": b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 2000 + b"\r\n\r\n",
    "uri_too_long": b"GET /" + b"u" * 2000 + b" HTTP/1.1\r\n" + H + b"\r\n",
    "body_too_large": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 17\r\n\r\n" + b"b" * 17,
    "body_too_large_chunked": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                              b"11\r\n" + b"b" * 17 + b"\r\n0\r\n\r\n",
    "header_without_colon": b"GET / HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n",
    "space_before_colon": b"GET / HTTP/1.1\r\n" + H + b"X-Space : v\r\n\r\n",
    "bare_cr_line_end": b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\rX-B: 2\r\n\r\n",
    "obs_fold": b"GET / HTTP/1.1\r\n" + H + b"X-Fold: a\r\n  b\r\n\r\n",
    "nul_in_header": b"GET / HTTP/1.1\r\n" + H + b"X-Nul: a\x00b\r\n\r\n",
    "dotdot_above_root": b"GET /../etc/passwd HTTP/1.1\r\n" + H + b"\r\n",
    "absolute_form": b"GET http://other.test/abs?x=1 HTTP/1.1\r\n" + H + b"\r\n",
}


# nginx's status for the cases the brief names (the rest are compared with nginx only)
EXPECTED_STATUS = {"cl_and_te": 400, "duplicate_cl": 400, "bad_chunk_size": 400, "bad_version": 505,
                   "unknown_transfer_coding": 501, "header_too_large": 400, "uri_too_long": 414,
                   "body_too_large": 413, "body_too_large_chunked": 413, "bad_request_line": 400}


@pytest.mark.parametrize("name", [n for n in CASES if n != "header_without_colon"])
def test_malformed_or_edge_request(diff, name):
    out = diff.check(answer_and_close(CASES[name]))
    if name in EXPECTED_STATUS:
        assert out.result[0].status == EXPECTED_STATUS[name]
        assert out.result[1] == "closed"


# Documented ngate differences (README, "Differences from nginx"): ngate is stricter where nginx's
# leniency is a request-smuggling shape. name -> status ngate answers (then closes).
DOCUMENTED_DIFFERENCES = {
    # nginx forwards "NoColonHere:" with an empty value; llhttp (and ngate) refuse the line
    "header_without_colon": 400,
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED_DIFFERENCES))
def test_documented_differences(diff, name):
    out = diff.run("ngate", answer_and_close(CASES[name]))
    assert out.result[0].status == DOCUMENTED_DIFFERENCES[name]
    assert out.result[1] == "closed"


def test_bare_lf_line_endings_are_accepted(diff):
    out = diff.check(answer_and_close(b"GET /lf HTTP/1.1\nHost: example.test\nX-A: 1\n\n"))
    assert out.result[0].status == 200
    assert out.requests()[0].header(b"x-a") == b"1"
