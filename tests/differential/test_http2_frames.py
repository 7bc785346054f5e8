"""HTTP/2 frame-level behaviour against nginx 1.22 (Debian's /usr/sbin/nginx): the same raw
frames go to both servers and both must answer alike. These are the cases where the h2 library's
own rules differ from nginx's (ngate/http2/compression.py, fields.py, priority.py, the _H2 and
_FrameBuffer hooks of connection.py): HPACK faults and sizes, header checks, Huffman padding,
unknown frames, PUSH_PROMISE, reused stream ids, header timeouts, flow-control violations on one
stream, Content-Length mismatches, priorities ordering DATA, END_STREAM on the last DATA frame."""
from __future__ import annotations

import socket
import struct
import time

import hpack
import pytest
from h2.errors import ErrorCodes

from tests.harness.backend import Backend
from tests.harness.paths import readable_tmpdir
from tests.harness.processes import ProxyProcess, free_port

CONF = """
error_log {prefix}/logs/error.log info;
events {}
http {
    access_log {prefix}/logs/access.log;
    client_header_timeout 1s;
    limit_req_zone $binary_remote_addr zone=req:1m rate=20r/m;
    server {
        listen 127.0.0.1:{port} http2;
        large_client_header_buffers 4 512;
        http2_body_preread_size 10;
        root {prefix}/html;
        location / { add_header X-Foo $http_x_foo; return 200 "ok"; }
        location /chunk { http2_chunk_size 1; return 200 "body"; }
        location /p/ { proxy_pass http://127.0.0.1:{backend}/; }
        location /req { limit_req zone=req burst=5; proxy_pass http://127.0.0.1:{backend}/; }
        location /t1.html { }
        location /t2.html { }
    }
    server {
        listen 127.0.0.1:{port2} http2;
        ignore_invalid_headers off;
        location / { add_header X-Foo $http_x_foo always; return 200 "ok"; }
    }
}
"""

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REQ = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"localhost")]


@pytest.fixture(scope="module")
def backend():
    with Backend() as b:
        yield b


@pytest.fixture(scope="module", params=["ngate", "nginx"])
def server(request, backend):
    with readable_tmpdir() as prefix:
        html = prefix / "html"
        html.mkdir()
        (html / "t1.html").write_bytes(b"".join(b"X%04dXXX" % i for i in range(1, 8203)))
        (html / "t2.html").write_bytes(b"SEE-THIS")
        for p in (html, html / "t1.html", html / "t2.html"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        with ProxyProcess(request.param, CONF, prefix, backend=backend.port,
                          port2=free_port()) as p:
            yield p


def frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", sid) \
        + payload


class Raw:
    """A client of raw frames: SETTINGS acknowledged, frames read back as (type, flags, sid,
    payload)."""

    def __init__(self, port: int, ack: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.sock.sendall(PREFACE + frame(4, 0, 0))
        self.buf = b""
        self.frames: list = []
        self.heads: dict = {}
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 20
        if ack:
            self.until(lambda f: f[0] == 4 and not f[1] & 1)
            self.send(frame(4, 1, 0))
        self.enc = hpack.Encoder()

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def headers(self, sid: int, headers, end: bool = True, flags: int = 0, block=None) -> None:
        block = self.enc.encode(headers) if block is None else block
        self.send(frame(1, 0x4 | (0x1 if end else 0) | flags, sid, block))

    def until(self, done, timeout: float = 3.0):
        """Frames read until one satisfies done(frame) (that frame) or timeout/close (None)."""
        deadline = time.monotonic() + timeout
        while True:
            while len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + n:
                    break
                f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
                     self.buf[9:9 + n])
                self.buf = self.buf[9 + n:]
                if f[0] == 1:           # every header block, in order: the HPACK table
                    self.heads[f[2]] = dict(self.dec.decode(f[3], raw=True))
                self.frames.append(f)
                if done(f):
                    return f
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self.buf += data

    def goaway(self):
        f = self.until(lambda f: f[0] == 7)
        return None if f is None else struct.unpack(">II", f[3][:8])

    def rst(self, sid: int):
        f = self.until(lambda f: f[0] == 3 and f[2] == sid)
        return None if f is None else struct.unpack(">I", f[3])[0]

    def status(self, sid: int):
        if sid not in self.heads:
            self.until(lambda f: f[0] == 1 and f[2] == sid)
        return self.heads.get(sid, {}).get(b":status")

    def close(self) -> None:
        self.sock.close()


def huff_long_padding(text: bytes) -> bytes:
    """nginx-tests' Huffman: a whole byte of padding when the code ends on a byte boundary."""
    from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
    bits = "".join(format(REQUEST_CODES[c], "0%db" % REQUEST_CODES_LENGTH[c]) for c in text)
    bits += "1" * (8 - len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def test_huffman_with_long_padding(server):
    value = huff_long_padding(b"localhost")
    assert value.endswith(b"\xff") and len(value) == 7       # 6 bytes of code, 8 bits of padding
    block = b"\x82\x86\x84" + b"\x41" + bytes([0x80 | len(value)]) + value   # :authority
    c = Raw(server.port)
    c.headers(1, None, block=block)
    assert c.status(1) == b"200"


@pytest.mark.parametrize("block", [b"\xbf\x7f", b"\x82\x86\x84\x80"], ids=["index", "zero"])
def test_bad_index_is_compression_error(server, block):
    c = Raw(server.port)
    c.headers(1, None, block=block)
    assert c.goaway() == (1, ErrorCodes.COMPRESSION_ERROR)


def test_table_size_update_above_4096(server):
    c = Raw(server.port)
    c.headers(1, None, block=b"\x3f\xe2\x1f" + hpack.Encoder().encode(REQ))   # 4097
    assert c.goaway() == (1, ErrorCodes.COMPRESSION_ERROR)


def test_too_long_integer_in_a_frame_still_arriving(server):
    c = Raw(server.port)
    c.send(struct.pack(">I", 6)[1:] + b"\x01\x05" + struct.pack(">I", 1) + b"\x42\xff\xff\xff\xff")
    assert c.goaway()[1] == ErrorCodes.COMPRESSION_ERROR


@pytest.mark.parametrize("size, ok", [(512, True), (513, False)])
def test_field_size_is_one_header_buffer(server, size, ok):
    c = Raw(server.port)
    c.headers(1, None, block=hpack.Encoder().encode(REQ + [(b"x" * size, b"v")], huffman=False))
    if ok:
        assert c.status(1) == b"200"
    else:
        assert c.goaway()[1] == ErrorCodes.ENHANCE_YOUR_CALM


def test_header_list_size_is_all_buffers(server):
    c = Raw(server.port)
    c.headers(1, REQ + [(b"x-a", b"a" * 500)] * 4)          # > 4 * 512 decoded
    assert c.goaway()[1] == ErrorCodes.ENHANCE_YOUR_CALM


@pytest.mark.parametrize("name, value", [(b"X-Upper", b"v"), (b"x-foo", b"a\r\nb")])
def test_invalid_field_resets_the_stream(server, name, value):
    c = Raw(server.port)
    c.headers(1, REQ + [(name, value)])
    assert c.rst(1) == ErrorCodes.PROTOCOL_ERROR
    c.headers(3, REQ)
    assert c.status(3) == b"200"            # the connection lives on


@pytest.mark.parametrize("headers", [
    [(b":method", b"GET"), (b":path", b"/"), (b":authority", b"localhost")],
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":path", b"/")],
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"x")],
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":bogus", b"1")],
], ids=["no-scheme", "dup-path", "bad-path", "unknown-pseudo"])
def test_bad_pseudo_headers_are_400(server, headers):
    c = Raw(server.port)
    c.headers(1, headers)
    assert c.status(1) == b"400"


def test_underscore_kept_without_ignore_invalid_headers(server):
    c = Raw(server.params["port2"])
    c.headers(1, REQ + [(b"x_foo", b"bar")])
    assert c.status(1) == b"200"
    assert c.heads[1].get(b"x-foo") == b"bar"


def test_unknown_frame_type_is_skipped(server):
    c = Raw(server.port)
    c.send(frame(0xa, 0, 0, b"payload") + frame(6, 0, 0, b"SEE-THIS"))
    f = c.until(lambda f: f[0] == 6 and f[1] & 1)
    assert f is not None and f[3] == b"SEE-THIS"


def test_client_push_promise_is_protocol_error(server):
    c = Raw(server.port)
    c.send(struct.pack(">I", 4)[1:] + b"\x05\x00" + struct.pack(">I", 1))   # header only
    assert c.goaway()[1] == ErrorCodes.PROTOCOL_ERROR


def test_reused_stream_id_is_protocol_error(server):
    c = Raw(server.port)
    c.headers(1, REQ)
    assert c.status(1) == b"200"
    c.until(lambda f: f[0] == 0 and f[2] == 1 and f[1] & 1)
    c.headers(1, REQ)
    assert c.goaway() == (1, ErrorCodes.PROTOCOL_ERROR)


def test_headers_depending_on_itself(server):
    c = Raw(server.port)
    c.headers(1, None, flags=0x20, block=struct.pack(">IB", 1, 15) + c.enc.encode(REQ))
    assert c.goaway() == (0, ErrorCodes.PROTOCOL_ERROR)


def test_header_timeout_resets_only_that_stream(server):
    c = Raw(server.port)
    block = c.enc.encode(REQ)
    whole = frame(1, 0x5, 1, block)
    c.send(whole[:12])
    assert c.rst(1) == ErrorCodes.PROTOCOL_ERROR            # after client_header_timeout 1s
    c.send(whole[12:] + frame(6, 0, 0, b"SEE-THIS"))
    f = c.until(lambda f: f[0] == 6 and f[1] & 1)
    assert f is not None and f[3] == b"SEE-THIS"


def test_last_data_frame_carries_end_stream(server):
    c = Raw(server.port)
    c.headers(1, [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/chunk"),
                  (b":authority", b"localhost")])
    c.until(lambda f: f[0] == 0 and f[2] == 1 and f[1] & 1)
    data = [(f[1], f[3]) for f in c.frames if f[0] == 0 and f[2] == 1]
    assert data == [(0, b"b"), (0, b"o"), (0, b"d"), (1, b"y")]


def test_data_past_the_stream_window_resets_that_stream(server):
    """Before the body is read (limit_req delays the request), the stream's window is the
    preread size (10): 40 bytes reset that stream only."""
    c = Raw(server.port)
    c.headers(1, [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/req"),
                  (b":authority", b"localhost")])
    c.headers(3, [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/req"),
                  (b":authority", b"localhost")], end=False)
    c.send(frame(0, 1, 3, b"TEST" * 10))                     # the preread window is 10
    assert c.rst(3) == ErrorCodes.FLOW_CONTROL_ERROR
    c.headers(5, REQ)
    assert c.status(5) == b"200"


def test_body_shorter_than_content_length_is_400(server):
    c = Raw(server.port)
    c.headers(1, [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/p/x"),
                  (b":authority", b"localhost"), (b"content-length", b"5")], end=False)
    c.send(frame(0, 1, 1, b"TEST"))
    assert c.status(1) == b"400"


def test_body_before_settings_ack_is_refused(server):
    c = Raw(server.port, ack=False)
    c.headers(1, [(b":method", b"POST")] + REQ[1:], end=False)
    assert c.rst(1) == ErrorCodes.REFUSED_STREAM


@pytest.mark.parametrize("weights, first", [((1, 256), 3), ((256, 1), 1)])
def test_priority_orders_blocked_data(server, weights, first):
    """Stream 1 takes the whole connection window, stream 3 waits behind it; PRIORITY frames
    then decide which stream's DATA goes first once the window opens."""
    c = Raw(server.port)
    c.headers(1, [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/t1.html"),
                  (b":authority", b"localhost")])
    got = 0
    while got < 65535:
        f = c.until(lambda f: f[0] == 0 and f[2] == 1)
        assert f is not None, c.frames
        got += len(f[3])
    c.headers(3, [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/t2.html"),
                  (b":authority", b"localhost")])
    c.until(lambda f: f[0] == 1 and f[2] == 3)
    c.frames.clear()
    c.send(frame(2, 0, 1, struct.pack(">IB", 0, weights[0] - 1))
           + frame(2, 0, 3, struct.pack(">IB", 0, weights[1] - 1))
           + frame(8, 0, 1, struct.pack(">I", 1 << 17)) + frame(8, 0, 3, struct.pack(">I", 1 << 17))
           + frame(8, 0, 0, struct.pack(">I", 1 << 17)))
    f = c.until(lambda f: f[0] == 0)
    assert f[2] == first
