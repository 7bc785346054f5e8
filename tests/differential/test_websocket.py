"""Upgrade handshakes through nginx and ngate, compared byte for byte: refusals, 101 without
Upgrade, dead and slow backends, bytes right behind either side's handshake."""
import pytest

from tests.harness.backend import Reply
from tests.harness.client import Connection, build_request

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;

        location /wss {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
            proxy_set_header X-Real-IP $remote_addr;
            proxy_read_timeout 1s;
        }
        location /plain {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
        }
        location /down {
            proxy_pass http://127.0.0.1:{dead_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
        }
    }
}
"""

UPGRADE = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
           (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="), (b"Sec-WebSocket-Version", b"13")]
SWITCH = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
          (b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]


@pytest.fixture(scope="module")
def diff(differential):
    d = differential(CONF)
    b = d.backend
    b.route("/plain/refuse", Reply(status=426, reason="Upgrade Required",
                                   headers=[(b"Content-Type", b"text/plain")], body=b"upgrade!\n"))
    b.route("/wss/bad", Reply(status=400, body=b"bad handshake\n"))
    b.route("/wss/426", Reply(status=426, reason="Upgrade Required", body=b"426\n",
                              headers=[(b"Upgrade", b"websocket"), (b"Content-Type", b"text/plain")]))
    b.route("/wss/switch", Reply(status=101, body=b"", headers=SWITCH))
    b.route("/wss/slow", Reply(status=101, body=b"", headers=SWITCH, delay=3))
    b.route("/wss/greet", Reply(status=101, raw=b"HTTP/1.1 101 Switching Protocols\r\n"
                                b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x07welcome"))
    return d


def _handshake_then(target: str, then: bytes = b"", read: int = 0, headers=UPGRADE):
    """Send a handshake (+ `then`), read the answer and `read` tunnelled bytes."""
    def script(port):
        with Connection(port) as conn:
            conn.send(build_request("GET", target, headers=headers))
            resp = conn.read_response()
            out = [resp]
            if then:
                conn.send(then)
            if read:
                out.append(conn.read_exactly(read))
            return out
    return script


def test_location_without_upgrade_headers_passes_the_refusal(diff):
    out = diff.check(_handshake_then("/plain/refuse"))
    assert out.result[0].status == 426
    seen = out.requests()[0]
    assert seen.header(b"upgrade") is None and seen.header(b"connection") == b"close"


@pytest.mark.parametrize("target,status", [("/wss/bad", 400), ("/wss/426", 426)])
def test_backend_refusal_is_an_ordinary_response(diff, target, status):
    def script(port):
        with Connection(port) as conn:
            conn.send(build_request("GET", target, headers=UPGRADE))
            first = conn.read_response()
            conn.send(build_request("GET", "/wss/after"))
            return [first, conn.read_response()]
    out = diff.check(script)
    assert out.result[0].status == status and out.result[1].status == 200


def test_101_to_a_request_without_upgrade_is_no_tunnel(diff):
    def script(port):
        with Connection(port) as conn:
            conn.send(build_request("GET", "/wss/switch"))
            resp = conn.read_response()
            conn.send(b"not tunnelled")
            return [resp, conn.closed_by_peer(3), conn.buf]
    out = diff.check(script)
    assert out.result[0].status == 101 and out.result[1] is True


def test_101_tunnel(diff):
    out = diff.check(_handshake_then("/wss/switch", then=b"ping bytes", read=10))
    assert out.result[0].status == 101 and out.result[1] == b"ping bytes"


def test_frame_sent_right_after_the_101(diff):
    out = diff.check(_handshake_then("/wss/greet", read=9))
    assert out.result[1] == b"\x81\x07welcome"


def test_backend_down_is_502(diff):
    out = diff.check(_handshake_then("/down/x"))
    assert out.result[0].status == 502


def test_backend_timing_out_during_the_handshake_is_504(diff):
    out = diff.check(_handshake_then("/wss/slow"))
    assert out.result[0].status == 504
