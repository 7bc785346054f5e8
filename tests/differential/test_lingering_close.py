"""Lingering close, nginx vs ngate: a response that ends the connection while the client is still
sending (a refused body, a bad head followed by more bytes, pipelined requests after
`Connection: close`) must reach the client whole; the client's remaining bytes are read and
dropped, never answered with a reset that breaks its send (and can destroy the response)."""
from __future__ import annotations

import socket

import pytest

from tests.harness.client import build_request

CONF = """
http {
    client_max_body_size 1k;
    server {
        listen 127.0.0.1:{port};
        location / { return 200 "ok\\n"; }
        location /quick/ { lingering_timeout 1s; return 200 "quick\\n"; }
    }
}
"""
BIG = 4 << 20       # larger than the socket buffers on both sides: the server must read it


@pytest.fixture(scope="module")
def pair(differential):
    return differential(CONF)


def send_all_then_read(port: int, head: bytes, body_len: int) -> tuple:
    """Send the head and `body_len` bytes, then read to the end: (send outcome, what came back)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        try:
            sock.sendall(b"x" * body_len)
            sent = "sent"
        except OSError as exc:
            sent = type(exc).__name__
        chunks = []
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except OSError as exc:
            chunks.append(type(exc).__name__.encode())
        reply = b"".join(chunks)
        return sent, reply.split(b"\r\n", 1)[0], reply.count(b"HTTP/1.1 ")


def test_refused_body_is_drained(pair):
    head = b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % BIG
    out = pair.check(lambda port: send_all_then_read(port, head, BIG))
    assert out.result == ("sent", b"HTTP/1.1 413 Request Entity Too Large", 1)


def test_bad_head_then_more_bytes(pair):
    head = b"GET / HTTP/1.1\r\nHost: a.test\r\nBad Header\r\n\r\n"
    out = pair.check(lambda port: send_all_then_read(port, head, BIG))
    assert out.result == ("sent", b"HTTP/1.1 400 Bad Request", 1)


def test_pipelined_after_connection_close(pair):
    head = (build_request("GET", "/quick/a", headers=[(b"Connection", b"close")])
            + build_request("GET", "/quick/b"))
    out = pair.check(lambda port: send_all_then_read(port, head, BIG))
    assert out.result == ("sent", b"HTTP/1.1 200 OK", 1)
