"""Chunked upstream response bodies read as nginx reads them (ngx_http_parse_chunked): chunk lines
ending in a bare LF (which llhttp refuses), extensions, trailers, bytes after the last chunk, bad
chunks, buffered or not, and a kept-alive upstream connection reused after such a body."""
import pytest

from tests.harness.backend import Reply
from tests.harness.client import Connection, build_request, exchange

CONF = """
http {
    upstream pool {
        server 127.0.0.1:{backend_port};
        keepalive 2;
    }
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        location / {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_read_timeout 2s;
        }
        location /nobuffering/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_read_timeout 2s;
            proxy_buffering off;
        }
        location /keep/ {
            proxy_pass http://pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
"""

LF_ONLY = (b"HTTP/1.1 200 OK\nConnection: close\nTransfer-Encoding: chunked\n\n"
           b"9\nSEE-THIS\n\n0\n\n")
MIXED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"4;name=value\nabcd\r\n3 \t\r\nefg\n0\nX-Trailer: t\n\r\n")
AFTER_LAST = (b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"3\r\nabc\r\n0\r\n\r\nEXTRA")
BAD_CHUNK = (b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"3\r\nabc\r\nzz\r\n")
KEEP = b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n5\nfirst\n0\n\n"


@pytest.fixture(scope="module")
def diff(differential):
    d = differential(CONF)
    for prefix in ("/", "/nobuffering/"):
        d.backend.route(prefix + "lf", Reply(raw=LF_ONLY))
        d.backend.route(prefix + "mixed", Reply(raw=MIXED))
        d.backend.route(prefix + "after", Reply(raw=AFTER_LAST))
        d.backend.route(prefix + "bad", Reply(raw=BAD_CHUNK))
    d.backend.route("/keep/a", Reply(raw=KEEP))
    d.backend.route("/keep/b", Reply(body=b"second\n"))
    return d


@pytest.mark.parametrize("prefix", ["/", "/nobuffering/"])
def test_bare_lf_chunks(diff, prefix):
    r = diff.check_request("GET", prefix + "lf").response
    assert r.status == 200 and r.body == b"SEE-THIS\n"


@pytest.mark.parametrize("prefix", ["/", "/nobuffering/"])
def test_extensions_spaces_and_trailers(diff, prefix):
    r = diff.check_request("GET", prefix + "mixed").response
    assert r.body == b"abcdefg" and not r.trailers


def test_data_after_final_chunk_is_dropped_and_logged(diff):
    for kind in diff.procs:
        out = diff.run(kind, lambda port: exchange(port, build_request("GET", "/after")))
        assert out.result[0].body == b"abc", kind
        assert "upstream sent data after final chunk" in out.error_log, kind


def test_invalid_chunk_is_logged_and_the_response_never_completes(diff):
    # nginx holds the head in its output buffer when the bad chunk comes in the head's read and
    # sends nothing; ngate has already streamed the head and the good chunk: neither completes
    for kind in diff.procs:
        for prefix in ("/", "/nobuffering/"):
            out = diff.run(kind, lambda port: _raw(port, prefix + "bad"))
            assert not out.result.endswith(b"\r\n0\r\n\r\n"), (kind, prefix)
            assert "upstream sent invalid chunked response while" in out.error_log, (kind, prefix)


def _raw(port: int, target: str) -> bytes:
    """All the client receives until the proxy closes the connection."""
    with Connection(port, timeout=3.0) as conn:
        conn.send(build_request("GET", target))
        data = b""
        while chunk := conn.sock.recv(65536):
            data += chunk
    return data


def test_keepalive_connection_reused_after_bare_lf_body(diff):
    def script(port):
        with Connection(port, timeout=3.0) as conn:
            conn.send(build_request("GET", "/keep/a"))
            first = conn.read_response("GET")
            conn.send(build_request("GET", "/keep/b"))
            return [first, conn.read_response("GET")]
    out = diff.check(script)
    assert [r.body for r in out.result] == [b"first", b"second\n"]
    first, second = out.requests()
    assert first.connection == second.connection
