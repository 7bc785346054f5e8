"""A request body that goes wrong while it is streamed upstream (proxy_request_buffering off):
the client gets 400 and its connection closes, and the upstream connection is closed too (no
exchange left waiting for the rest of a body that will never come). Both programs."""
from __future__ import annotations

import socket

from tests.harness.client import Connection

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        location / {
            proxy_request_buffering off;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:{upstream_port};
        }
    }
}
"""


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"upstream connection closed before {marker!r}: {data!r}"
        data += chunk
    return data


def test_body_error_while_streaming_closes_both_sides(start_proxy):
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        upstream.settimeout(5)
        proc = start_proxy(CONF, upstream_port=upstream.getsockname()[1])
        with Connection(proc.port, timeout=5) as client:
            client.send(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n")
            up, _ = upstream.accept()
            with up:
                up.settimeout(5)
                assert b"hello" in read_until(up, b"hello")
                client.send(b"zz\r\n")          # not a chunk size
                assert client.read_response().status == 400
                assert client.closed_by_peer(5.0)
                rest = b""
                while chunk := up.recv(65536):  # the proxy closes its side: EOF, not a timeout
                    rest += chunk
                assert b"0\r\n\r\n" not in rest    # never told the body was complete
