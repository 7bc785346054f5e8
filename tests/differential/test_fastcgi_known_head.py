"""A FastCGI application's repeated response head, through nginx and ngate: the client gets the
same bytes the first time (ngate parses the CGI head), the second (it learns it) and after
(fastcgi/known.py: the parse and, for a plain location, the client's head pre-rendered).

Each head is asked for four times on one keep-alive connection (`keepalive_requests 4`: the
fourth answer closes it, so the known head's Connection line is checked too), by HTTP/1.1 GET,
HEAD and HTTP/1.0 clients, in a plain location and in locations where the head is not plain
(add_header, chunked_transfer_encoding off, fastcgi_hide_header)."""
import re
import struct

import pytest

from ngate.fastcgi import records as fcgi
from tests.harness.client import Connection
from tests.harness.fastcgi_server import FakeFastCGI
from tests.harness.processes import ProxyProcess, fresh_prefix, require_kind

CONF = """
http {
    keepalive_requests 4;
    upstream keep { server 127.0.0.1:{fcgi_port}; keepalive 2; }
    server {
        listen 127.0.0.1:{port};
        fastcgi_param REQUEST_URI $request_uri;
        location /p/ { fastcgi_pass 127.0.0.1:{fcgi_port}; }
        location /k/ { fastcgi_pass keep; fastcgi_keep_conn on; }
        location /add/ { fastcgi_pass 127.0.0.1:{fcgi_port}; add_header X-Added $uri; }
        location /nochunk/ { fastcgi_pass 127.0.0.1:{fcgi_port}; chunked_transfer_encoding off; }
        location /hide/ { fastcgi_pass 127.0.0.1:{fcgi_port}; fastcgi_hide_header X-Secret; }
        location /tokens/ { fastcgi_pass 127.0.0.1:{fcgi_port}; server_tokens off; }
    }
}
"""

HEADS = {     # the last path segment -> the application's STDOUT
    "php": b"Content-type: text/html; charset=UTF-8\r\n\r\nok\n",
    "status": b"Status: 404 Not Found\r\nX-Secret: s\r\nContent-Type: text/plain\r\n\r\nnf\n",
    "rawstatus": b"Status: 299\r\nX-A: 1\r\n\r\nodd\n",
    "length": b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nfive\n",
    "location": b"Location: /elsewhere\r\nContent-Type: text/html\r\n\r\nmoved\n",
    "cookies": b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nCache-Control: no-store\r\n\r\nc\n",
    "barelf": b"Content-Type: text/plain\nX-Lf: 1\n\nlf\n",
    "accel": b"X-Accel-Buffering: no\r\nContent-Type: text/plain\r\n\r\nab\n",
    "nocontent": b"Status: 204 No Content\r\nX-A: 1\r\n\r\n",
}


def answer(conn, req):
    params = dict(req["params"])
    name = params[b"REQUEST_URI"].rsplit(b"/", 1)[1].decode()
    conn.sendall(fcgi.record(fcgi.STDOUT, HEADS[name])
                 + fcgi.record(fcgi.END_REQUEST, struct.pack(">IB3x", 0, 0)))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    fake = FakeFastCGI()
    fake.answer = answer
    base = tmp_path_factory.mktemp("fcgi-known")
    procs = {}
    try:
        for kind in ("nginx", "ngate"):
            require_kind(kind)
            procs[kind] = ProxyProcess(kind, CONF, fresh_prefix(base, kind),
                                       fcgi_port=fake.port).start()
        yield procs
    finally:
        for p in procs.values():
            p.stop()
        fake.close()


_DATE = re.compile(rb"\r\nDate: [^\r]*")
_SERVER = re.compile(rb"\r\nServer: [^\r]*")


def four_times(port: int, target: str, method: str, version: str) -> list[bytes]:
    """The raw responses (Date and Server values replaced) to four requests on one connection
    (HTTP/1.0, or after a response that closed it: a new one)."""
    raw = (f"{method} {target} HTTP/{version}\r\nHost: t\r\n\r\n").encode()
    out = []
    conn = None
    for _ in range(4):
        if conn is None:
            conn = Connection(port)
        conn.send(raw)
        r = conn.read_response(method)
        out.append(_SERVER.sub(b"\r\nServer: {server}", _DATE.sub(b"\r\nDate: {date}", r.raw)))
        if version == "1.0" or r.header("connection") == b"close":
            conn.close()
            conn = None
    if conn is not None:
        assert conn.closed_by_peer()        # keepalive_requests 4
        conn.close()
    return out


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("location", ["/p/", "/k/", "/add/", "/nochunk/", "/hide/", "/tokens/"])
def test_a_repeated_head_gives_the_same_bytes(pair, head, location):
    for method, version in (("GET", "1.1"), ("HEAD", "1.1"), ("GET", "1.0")):
        target = location + head
        got = {kind: four_times(p.port, target, method, version) for kind, p in pair.items()}
        assert got["ngate"] == got["nginx"], (method, version)
        if method == "GET" and version == "1.1" and b"keep-alive" in got["nginx"][0]:
            # the keep-alive and close answers differ only in their Connection line
            assert got["nginx"][0] == got["nginx"][1] == got["nginx"][2]
            assert got["nginx"][3].replace(b"Connection: close", b"Connection: keep-alive") \
                == got["nginx"][0]
