"""A cached response's status line, against Debian's nginx: a hit gives the client the status
line the miss gave (nginx stores the upstream's head and parses it again on a hit), including
the lines nginx copies as sent: an HTTP upstream's `HTTP/1.1 404` (no reason) or `200 ` (a
trailing space), a FastCGI `Status: 299` or `Status: 404` without a reason."""
import socket
import struct

import pytest

from ngate.fastcgi import records as fcgi
from tests.harness.backend import Backend, Reply
from tests.harness.fastcgi_server import FakeFastCGI
from tests.harness.processes import ProxyProcess, fresh_prefix, require_kind

CONF = """
user root;
http {
    fastcgi_cache_path {prefix}/fc keys_zone=fc:1m;
    proxy_cache_path {prefix}/pc keys_zone=pc:1m;
    server {
        listen 127.0.0.1:{port};
        fastcgi_param REQUEST_URI $request_uri;
        location /f/ {
            fastcgi_pass 127.0.0.1:{fcgi_port};
            fastcgi_cache fc;
            fastcgi_cache_valid any 1m;
            fastcgi_cache_key $request_uri;
        }
        location /p/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache pc;
            proxy_cache_valid any 1m;
        }
    }
}
"""

CGI = {
    "bare": b"Status: 404\r\nContent-Type: text/plain\r\n\r\nnf\n",
    "odd": b"Status: 299\r\n\r\nodd\n",
    "named": b"Status: 404 Gone Away\r\n\r\nx\n",
    "std": b"Status: 404 Not Found\r\n\r\nx\n",
    "none": b"Content-Type: text/plain\r\n\r\nplain\n",
}
HTTP = {
    "bare": b"HTTP/1.1 404\r\nContent-Length: 3\r\n\r\nnf\n",
    "space": b"HTTP/1.1 200 \r\nContent-Length: 3\r\n\r\nok\n",
    "named": b"HTTP/1.1 404 Gone Away\r\nContent-Length: 2\r\n\r\nx\n",
    "std": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
}


def answer(conn, req):
    name = dict(req["params"])[b"REQUEST_URI"].rsplit(b"/", 1)[1].decode()
    conn.sendall(fcgi.record(fcgi.STDOUT, CGI[name])
                 + fcgi.record(fcgi.END_REQUEST, struct.pack(">IB3x", 0, 0)))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    fake = FakeFastCGI()
    fake.answer = answer
    backend = Backend("status-lines").start()
    for name, raw in HTTP.items():
        backend.route(f"/p/{name}", Reply(raw=raw))
    base = tmp_path_factory.mktemp("cache-status-line")
    procs = {}
    try:
        for kind in ("nginx", "ngate"):
            require_kind(kind)
            procs[kind] = ProxyProcess(kind, CONF, fresh_prefix(base, kind), fcgi_port=fake.port,
                                       backend_port=backend.port).start()
        yield procs
    finally:
        for p in procs.values():
            p.stop()
        backend.stop()
        fake.close()


def status_line(port: int, target: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            got = s.recv(4096)
            if not got:
                break
            data += got
    return data.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("target", [f"/f/{n}" for n in CGI] + [f"/p/{n}" for n in HTTP])
def test_a_hit_repeats_the_miss_status_line(pair, target):
    lines = {kind: [status_line(p.port, target) for _ in range(3)] for kind, p in pair.items()}
    assert lines["ngate"] == lines["nginx"]
    assert len(set(lines["ngate"])) == 1
