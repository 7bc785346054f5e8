"""Chunked upstream response bodies read as nginx reads them (ngx_http_parse_chunked): chunk lines
ending in a bare LF (which llhttp refuses), extensions, trailers, bytes after the last chunk, bad
chunks, buffered or not, a kept-alive upstream connection reused after such a body, and
$upstream_response_length of a chunked body."""
import pytest

from tests.harness.backend import Reply
from tests.harness.client import Connection, build_request, exchange
from tests.harness.processes import wait_for

CONF = """
http {
    log_format lengths "$request_uri $upstream_response_length $body_bytes_sent";
    access_log {prefix}/logs/access.log lengths;
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


@pytest.mark.parametrize("prefix", ["/", "/nobuffering/"])
@pytest.mark.parametrize("name", ["lf", "mixed"])
def test_upstream_response_length_counts_the_chunked_body_as_read(diff, prefix, name):
    # nginx adds every byte read after the head, chunk framing included: the pipe's read_length
    # with proxy_buffering on, each recv() in the non-buffered filter with it off
    raw = {"lf": LF_ONLY, "mixed": MIXED}[name]
    as_read = len(raw.partition(b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n")[2])
    for kind, proc in diff.procs.items():
        target = f"{prefix}{name}?{kind}"
        assert exchange(proc.port, build_request("GET", target))[0].status == 200
        line = wait_for(lambda: next((ln for ln in proc.access_log().splitlines()
                                      if ln.startswith(target + " ")), None), "the log line")
        assert line.split()[1] == str(as_read), (kind, line)
