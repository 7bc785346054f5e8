"""The downstream connection's framing, driven with bytes on a fake transport (no sockets): the
same request bytes cut into two reads at every offset give the same answers as one read, a bare
CR is refused wherever it falls, and a body error ends the request and closes the connection.
(tests/differential/test_hostile_requests.py checks the same against nginx over real sockets.)"""
from __future__ import annotations

import uvloop

from tests.harness.fake_transport import FakeTransport
from ngate.server.connection import HttpConnection
from ngate.server.runtime import WorkerRuntime
from tests.unit._config_helpers import load_http

BIG_HEAD = (b"GET /split?q=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
            b"Accept: text/html\r\nCookie: " + b"c" * 700 + b"\r\nX-Last: 1\r\n\r\n")
CHUNKED = (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n2;x\r\nde\r\n0\r\nX-User: root\r\nHost: evil\r\n\r\n")


class Server:
    def __init__(self, tmp_path) -> None:
        config = load_http(tmp_path, f"""
            access_log off;
            error_log {tmp_path}/logs/error.log;
            server {{
                listen 127.0.0.1:8080;
                location / {{ return 200 "uri=$request_uri user=$http_x_user host=$host len=$content_length\\n"; }}
            }}
        """)
        self.loop = uvloop.new_event_loop()
        self.runtime = WorkerRuntime(config, {}, self.loop)

    def answer(self, *reads: bytes) -> tuple[bytes, bool]:
        """Feed the reads to a fresh connection: (all it wrote, whether it closed)."""
        conn = HttpConnection(self.runtime, next(iter(self.runtime.listens.values())))
        t = FakeTransport()
        t.can_write_eof = lambda: False
        t.get_write_buffer_size = lambda: 0

        async def run() -> None:
            conn.connection_made(t)
            for data in reads:
                conn.data_received(data)

        self.loop.run_until_complete(run())
        conn.connection_lost(None)      # the worker counts its connections
        return b"".join(t.written), t.closed

    def close(self) -> None:
        self.loop.close()


def test_head_cut_at_every_offset(tmp_path):
    srv = Server(tmp_path)
    whole, _ = srv.answer(BIG_HEAD)
    assert whole.startswith(b"HTTP/1.1 200 ") and b"uri=/split?q=1 " in whole
    for i in range(1, len(BIG_HEAD)):
        out, closed = srv.answer(BIG_HEAD[:i], BIG_HEAD[i:])
        assert out.split(b"\r\n", 1)[0] == b"HTTP/1.1 200 OK" and not closed, i
        assert out.split(b"\r\n\r\n", 1)[1] == whole.split(b"\r\n\r\n", 1)[1], i
    srv.close()


def test_chunked_body_cut_at_every_offset_drops_trailers(tmp_path):
    srv = Server(tmp_path)
    for i in range(1, len(CHUNKED)):
        out, closed = srv.answer(CHUNKED[:i], CHUNKED[i:] + b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
        assert out.count(b"HTTP/1.1 200 OK") == 2 and not closed, (i, out)
        assert b"user= host=t" in out and b"uri=/next" in out, (i, out)
    srv.close()


def test_bare_cr_refused_wherever_it_is_cut(tmp_path):
    srv = Server(tmp_path)
    raw = b"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n"
    for i in range(1, len(raw)):
        out, closed = srv.answer(raw[:i], raw[i:])
        assert out.startswith(b"HTTP/1.1 400 ") and closed, (i, out)
    srv.close()


def test_body_error_ends_the_request_and_closes(tmp_path):
    srv = Server(tmp_path)
    head = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    out, closed = srv.answer(head + b"1\r\na\r\nzz\r\n", b"GET /more HTTP/1.1\r\nHost: t\r\n\r\n")
    assert closed and b"/more" not in out
    srv.close()
