"""HTTP/2 requests (h2c with prior knowledge, `listen ... http2`) through nginx and ngate: the
status, headers and body the client gets, and what the backend receives (HTTP/1.x), the same."""
from __future__ import annotations

import os

import pytest

from tests.harness.backend import Reply
from tests.harness.client import Response
from tests.harness.differential import Differential
from tests.harness.h2client import H2Client
from tests.harness.paths import readable_tmpdir

CONF = """
error_log {prefix}/logs/error.log info;
events {}
http {
    server {
        listen 127.0.0.1:{port} http2;
        server_name localhost;
        location / { return 200 "proto $server_protocol h2=$http2\\n"; }
        location /r { return 302 /elsewhere; }
        location /p/ {
            proxy_pass http://127.0.0.1:{backend_port}/b/;
            proxy_set_header X-Proto $server_protocol;
        }
        location /small { client_max_body_size 10; proxy_pass http://127.0.0.1:{backend_port}; }
        location /st/ { root {docroot}; }
        location /sth/ { root {docroot}; add_header X-S "s t"; expires max; }
    }
}
"""


@pytest.fixture(scope="module")
def docroot():
    with readable_tmpdir("h2-static-") as root:
        for d in ("st", "sth"):
            (root / d).mkdir()
            (root / d / "f.txt").write_bytes(b"static file\n")
            os.utime(root / d / "f.txt", (1577934245, 1577934245))
            os.chmod(root / d / "f.txt", 0o644)
            os.chmod(root / d, 0o755)
        yield root


@pytest.fixture(scope="module")
def diff(tmp_path_factory, docroot):
    d = Differential(CONF, tmp_path_factory.mktemp("diff-h2"), docroot=str(docroot))
    d.backend.route("/b/hdr", Reply(headers=[(b"Content-Type", b"text/x"), (b"X-Up", b"a"),
                                             (b"Set-Cookie", b"s=1"), (b"Set-Cookie", b"t=2")],
                                    body=b"from backend\n"))
    d.backend.route("/b/chunked", Reply(chunks=[b"one ", b"two"]))
    d.start()
    yield d
    d.stop()


def h2(path: str, method: str = "GET", headers=(), body: bytes | None = None):
    def script(port: int) -> Response:
        with H2Client(port) as c:
            sid = c.request(path, method=method, headers=headers, body=body,
                            authority="localhost")
            status, head, data = c.response(sid)
            hdrs = [(n, v) for n, v in c.heads.get(sid, []) if n != b":status"]
            return Response(b"HTTP/2", status, b"", hdrs, data)
    return script


@pytest.mark.parametrize("path", ["/", "/r", "/missing/../x?a=1"])
def test_local_answers(diff, path):
    diff.check(h2(path))


def test_proxied_headers_and_body(diff):
    diff.check(h2("/p/hdr", headers=[(b"x-client", b"1"), (b"cookie", b"a=1"),
                                     (b"cookie", b"b=2")]))


def test_proxied_chunked_response(diff):
    diff.check(h2("/p/chunked"))


def test_post_body(diff):
    diff.check(h2("/p/post", method="POST", body=b"hello body",
                  headers=[(b"content-length", b"10"), (b"content-type", b"text/plain")]))


def test_post_too_large(diff):
    diff.check(h2("/small", method="POST", body=b"x" * 20,
                  headers=[(b"content-length", b"20")]))


def test_head(diff):
    diff.check(h2("/p/hdr", method="HEAD"))


@pytest.mark.parametrize("path", ["/st/f.txt", "/sth/f.txt"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_static_file(diff, path, method):
    """A file from a root location (plain_file), plain and with add_header and expires max."""
    diff.check(h2(path, method=method))
