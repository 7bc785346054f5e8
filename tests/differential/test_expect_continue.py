"""Expect: 100-continue and the body a response leaves unread, nginx vs ngate: 100 Continue when
nginx reads the body (proxy_pass, even with Content-Length: 0) or discards it (`return` with a
text, a static file), none before an error response (404, 405, 413), none to HTTP/1.0 or for
other expectation values; a chunked body already invalid when `return` discards it is a 400."""
from __future__ import annotations

import os

import pytest

from tests.harness.paths import readable_tmpdir

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name localhost;
        root {docroot};
        location / { proxy_pass http://127.0.0.1:{backend_port}/; }
        location /ret { return 200 "returned\\n"; }
        location /redir { return 302 /elsewhere; }
        location /file.txt { }
        location /missing { }
        location /small { client_max_body_size 2; proxy_pass http://127.0.0.1:{backend_port}/; }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    with readable_tmpdir("expect-") as root:
        (root / "file.txt").write_bytes(b"a file\n")
        os.chmod(root / "file.txt", 0o644)
        yield differential(CONF, docroot=str(root))


def request(method: str, target: str, expect: bytes, version: bytes = b"1.1",
            length: int = 0) -> bytes:
    return (b"%s %s HTTP/%s\r\nHost: localhost\r\nExpect: %s\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (method.encode(), target.encode(), version, expect,
                                            length)) + b"x" * length


@pytest.mark.parametrize("method,target", [
    ("POST", "/p"), ("POST", "/ret"), ("POST", "/redir"), ("GET", "/file.txt"),
    ("POST", "/file.txt"), ("GET", "/missing"), ("POST", "/small")])
@pytest.mark.parametrize("expect", [b"100-continue", b"100-Continue", b"unknown"])
def test_expect_continue(diff, method, target, expect):
    out = diff.check_raw(request(method, target, expect, length=3 if target == "/small" else 0),
                         method=method)
    interim = [i.status for i in out.response.interim]
    sent = expect.lower() == b"100-continue" and target in ("/p", "/ret", "/redir", "/file.txt") \
        and (method, target) != ("POST", "/file.txt")
    assert interim == ([100] if sent else [])


def test_no_continue_to_http10(diff):
    out = diff.check_raw(request("POST", "/p", b"100-continue", version=b"1.0"), method="POST")
    assert out.response.interim == []


@pytest.mark.parametrize("target", ["/ret", "/p"])
def test_invalid_chunked_body_with_the_head(diff, target):
    out = diff.check_raw(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                         b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"4\r\nSEE-THIS\r\n0\r\n\r\n")
    assert out.response.status == 400
