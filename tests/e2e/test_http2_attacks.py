"""The known HTTP/2 attacks against ngate's HTTP/2 connection (ngate/http2/connection.py), each
with a frame-level client: rapid reset (CVE-2023-44487), CONTINUATION flood (CVE-2024-27316),
HPACK bomb and oversized fields, PING/SETTINGS/empty DATA floods, streams past the limit; and
GOAWAY on graceful stop with the stream in flight finishing."""
from __future__ import annotations

import re
import signal
import time

import hpack
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import (ContinuationFrame, DataFrame, HeadersFrame, PingFrame,
                              SettingsFrame)

from tests.harness.backend import Backend, Reply
from tests.harness.h2client import H2Client
from tests.harness.processes import ProxyProcess

CONF = """
error_log {prefix}/logs/error.log info;
events {}
http {
    access_log {prefix}/logs/access.log;
    server {
        listen 127.0.0.1:{port} http2;
        http2_max_concurrent_streams 8;
        large_client_header_buffers 4 4k;
        location / { return 200 "ok\\n"; }
        location /slow { proxy_pass http://127.0.0.1:{backend}; }
    }
}
"""

REQ = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"x")]


@pytest.fixture(scope="module")
def backend():
    with Backend() as b:
        b.route("/slow", Reply(body=b"late\n", delay=1.5))
        yield b


@pytest.fixture
def ngate(tmp_path, backend):
    with ProxyProcess("ngate", CONF, tmp_path, backend=backend.port) as p:
        yield p


def goaway_code(c: H2Client, timeout: float = 5.0):
    c.pump(lambda: c.goaway is not None, timeout)
    return c.goaway.error_code if c.goaway is not None else None


def logged(p, text: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in p.error_log():
            return True
        time.sleep(0.05)
    return False


def test_rapid_reset_gets_goaway(ngate):
    with H2Client(ngate.port) as c:
        for _ in range(200):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, [(b":method", b"GET"), (b":path", b"/slow"),
                                      (b":scheme", b"http"), (b":authority", b"x")])
            c.conn.reset_stream(sid)
            if not c.send_raw(c.conn.data_to_send()):
                break
        assert goaway_code(c) == ErrorCodes.ENHANCE_YOUR_CALM
    assert logged(ngate, "client sent too many RST_STREAM frames (rapid reset)")


def test_streams_past_the_limit_are_refused(ngate):
    with H2Client(ngate.port) as c:
        sids = [c.request("/slow") for _ in range(10)]
        c.pump(lambda: len(c.resets) >= 2, timeout=5)
        assert [c.resets.get(s) for s in sids[8:]] == [ErrorCodes.REFUSED_STREAM] * 2
        assert all(c.response(s)[0] == 200 for s in sids[:8])


def _header_block(enc, headers) -> bytes:
    return enc.encode(headers)


def test_continuation_flood(ngate):
    with H2Client(ngate.port) as c:
        c.pump(lambda: False, timeout=0.2)
        block = hpack.Encoder().encode(REQ)
        frames = [HeadersFrame(1, data=block).serialize()]     # no END_HEADERS
        frames += [ContinuationFrame(1, data=b"").serialize() for _ in range(500)]
        c.send_raw(b"".join(frames))
        assert goaway_code(c) == ErrorCodes.ENHANCE_YOUR_CALM
    assert logged(ngate, "client sent too many CONTINUATION frames")


def test_hpack_bomb(ngate):
    """One 4 KiB header in the dynamic table, then referenced 100 times: 400 KiB decoded from a
    few hundred bytes. The decoder stops at the size of all large_client_header_buffers (16k
    here), as nginx 1.22. Stream 1 waits on the slow backend: frames are handled as they come
    (as nginx), and an answer on stream 1, which this client library did not open, would end
    its connection before the GOAWAY is read."""
    with H2Client(ngate.port) as c:
        enc = hpack.Encoder()
        slow = [(n, b"/slow" if n == b":path" else v) for n, v in REQ]
        first = enc.encode(slow + [(b"x-bomb", b"b" * 4000)])
        c.send_raw(HeadersFrame(1, data=first, flags=["END_HEADERS", "END_STREAM"]).serialize())
        refs = enc.encode(REQ + [(b"x-bomb", b"b" * 4000)] * 100)
        assert len(refs) < 300
        c.send_raw(HeadersFrame(3, data=refs, flags=["END_HEADERS", "END_STREAM"]).serialize())
        assert goaway_code(c) == ErrorCodes.ENHANCE_YOUR_CALM
    assert logged(ngate, "client sent too large header")


def test_oversized_field(ngate):
    with H2Client(ngate.port) as c:
        c.request("/", headers=[(b"x-big", b"v" * 5000)])
        assert goaway_code(c) == ErrorCodes.ENHANCE_YOUR_CALM
    assert logged(ngate, "client sent too large header field")


@pytest.mark.parametrize("frame", [
    PingFrame(0, opaque_data=b"12345678"),
    SettingsFrame(0, settings={}),
], ids=["ping", "settings"])
def test_control_frame_flood(ngate, frame):
    """Frames that ask for an answer and make no progress: nginx's "http2 flood detected"."""
    with H2Client(ngate.port) as c:
        raw = frame.serialize() * 1000
        for _ in range(30):
            if not c.send_raw(raw):
                break
        c.pump(lambda: c.closed, timeout=5)
        assert c.closed
    assert logged(ngate, "http2 flood detected")


def test_empty_data_flood(ngate):
    with H2Client(ngate.port) as c:
        sid = c.request("/slow", method="POST", end=False)
        raw = DataFrame(sid, data=b"").serialize() * 1000
        for _ in range(30):
            if not c.send_raw(raw):
                break
        c.pump(lambda: c.closed, timeout=5)
        assert c.closed
    assert logged(ngate, "http2 flood detected")


def test_graceful_stop_sends_goaway_and_finishes_streams(ngate, backend):
    """SIGQUIT: every HTTP/2 connection gets GOAWAY NO_ERROR (an idle one is closed), a stream
    in flight on another connection still gets its whole response (curl sees it)."""
    import subprocess
    with H2Client(ngate.port) as idle:
        idle.pump(lambda: False, timeout=0.2)
        mark = backend.mark()
        busy = subprocess.Popen(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge",
                                 f"http://127.0.0.1:{ngate.port}/slow"], stdout=subprocess.PIPE)
        deadline = time.monotonic() + 10   # the stream is in flight once the backend has it
        while not backend.since(mark) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert backend.since(mark), "curl's request never reached the backend"
        ngate.proc.send_signal(signal.SIGQUIT)
        assert goaway_code(idle) == ErrorCodes.NO_ERROR
        out, _ = busy.communicate(timeout=15)
    assert out == b"late\n"


def test_incomplete_frame_gets_recv_timeout(tmp_path, backend):
    conf = CONF.replace("http2_max_concurrent_streams 8;",
                        "http2_max_concurrent_streams 8; http2_recv_timeout 1s;")
    with ProxyProcess("ngate", conf, tmp_path, backend=backend.port) as p:
        with H2Client(p.port) as c:
            c.pump(lambda: False, timeout=0.2)
            c.send_raw(PingFrame(0, opaque_data=b"12345678").serialize()[:12])   # a frame without its end
            c.pump(lambda: c.closed, timeout=8)
            assert c.closed
        assert logged(p, "client timed out (110: Connection timed out) while processing HTTP/2")
