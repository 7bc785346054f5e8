"""Request bodies larger than what ngate holds while it connects upstream (64 KiB) arrive whole,
with Content-Length or chunked, to a fresh or a pooled upstream connection (nginx and ngate)."""
import hashlib
import os

import pytest

from tests.harness.client import Connection, build_request

CONF = """
http {
    upstream pooled { server 127.0.0.1:{backend_port}; keepalive 4; }
    server {
        listen 127.0.0.1:{port};
        client_max_body_size 20m;
        location / { proxy_pass http://127.0.0.1:{backend_port}; }
        location /pooled/ {
            proxy_pass http://pooled;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
"""

BODY = os.urandom(4 * 1024 * 1024 + 17)


def chunked(body: bytes, size: int = 100_000) -> bytes:
    out = [b"%x\r\n%b\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(out) + b"0\r\n\r\n"


@pytest.mark.parametrize("path", ["/up", "/pooled/up"])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_large_body_reaches_backend_whole(start_proxy, backend, path, framing):
    proxy = start_proxy(CONF, backend_port=backend.port)
    with Connection(proxy.port, timeout=20) as conn:
        for _ in range(2):      # the second request may ride a pooled upstream connection
            if framing == "length":
                raw = build_request("POST", path, body=BODY)
            else:
                raw = build_request("POST", path, headers=[(b"Transfer-Encoding", b"chunked")]) + chunked(BODY)
            conn.send(raw)
            assert conn.read_response("POST").status == 200
    assert len(backend.requests) == 2
    for seen in backend.requests:
        assert len(seen.body) == len(BODY)
        assert hashlib.sha256(seen.body).digest() == hashlib.sha256(BODY).digest()
