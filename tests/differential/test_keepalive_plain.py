"""keepalive_disable, keepalive_timeout 0, keepalive_requests and keepalive_time on ngate's own
plain responses (`return` without add_header: http/respond.py send_response's plain head, its
keep-alive test by LocConf.ka_full): nginx and ngate side by side."""
import time

import pytest

from tests.harness.client import Connection, build_request

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;

        location / {
            return 200 "ok\\n";
        }
        location /safari {
            keepalive_disable safari;
            return 200 "safari\\n";
        }
        location /none {
            keepalive_disable none;
            return 200 "none\\n";
        }
        location /zero {
            keepalive_timeout 0;
            return 200 "zero\\n";
        }
        location /two {
            keepalive_requests 2;
            return 200 "two\\n";
        }
        location /time {
            keepalive_time 1s;
            return 204;
        }
    }
}
"""

MSIE5 = b"Mozilla/4.0 (compatible; MSIE 5.0; Windows 98)"
SAFARI = b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_6) Safari/7534.48.3"


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF)


@pytest.mark.parametrize("target, method, agent, expected", [
    ("/", "POST", MSIE5, b"close"),
    ("/", "GET", MSIE5, b"keep-alive"),
    ("/", "HEAD", MSIE5, b"keep-alive"),
    ("/", "POST", b"curl/8", b"keep-alive"),
    ("/none", "POST", MSIE5, b"keep-alive"),
    ("/safari", "GET", SAFARI, b"close"),
    ("/safari", "HEAD", SAFARI, b"close"),
    ("/safari", "GET", b"curl/8", b"keep-alive"),
    ("/safari", "POST", MSIE5, b"keep-alive"),     # (safari alone: no msie6)
    ("/", "GET", SAFARI, b"keep-alive"),
    ("/zero", "GET", b"curl/8", b"close"),
    ("/zero", "POST", b"curl/8", b"close"),
])
def test_keepalive_disable_and_timeout_zero(diff, target, method, agent, expected):
    body = b"x" if method == "POST" else None
    resp = diff.check_request(method, target, headers=[(b"User-Agent", agent)],
                              body=body).response
    assert resp.header("connection") == expected


def _requests(target: str, n: int, pause: float = 0.0):
    def script(port):
        out = []
        with Connection(port, timeout=3) as conn:
            for _ in range(n):
                conn.send(build_request("GET", target))
                try:
                    out.append(conn.read_response())
                except Exception as exc:   # closed by the server
                    out.append(type(exc).__name__)
                    break
                time.sleep(pause)
        return out
    return script


def test_keepalive_requests_on_a_plain_head(diff):
    out = diff.check(_requests("/two", 3))
    assert [r.header("connection") for r in out.result[:2]] == [b"keep-alive", b"close"]
    assert len(out.result) == 2 or not hasattr(out.result[2], "status")


def test_keepalive_time_on_a_plain_head(diff):
    out = diff.check(_requests("/time", 2, pause=1.3))
    assert [r.header("connection") for r in out.result] == [b"keep-alive", b"close"]
