"""keepalive_time, keepalive_disable and $connection_time, and which location's
keepalive_timeout holds a connection between requests: nginx and ngate side by side."""
import time

import pytest

from tests.harness.client import Connection, build_request

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        keepalive_timeout 1;
        add_header X-Conn-Time-Zero $connection_requests:$zero;

        location / {
            set $zero 0;
            if ($connection_time !~ ^0\\.) { set $zero no; }
            return 200 "ok\\n";
        }
        location /time {
            keepalive_timeout 75s;
            keepalive_time 1s;
            set $zero 0;
            if ($connection_time !~ ^0\\.) { set $zero no; }
            return 200 "time\\n";
        }
        location /safari {
            keepalive_disable safari;
            return 200 "safari\\n";
        }
        location /header {
            keepalive_timeout 30s 9;
            return 200 "header\n";
        }
        location /none {
            keepalive_disable none;
            return 200 "none\\n";
        }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF)


def _two_requests_with_pause(target: str, pause: float):
    def script(port):
        with Connection(port, timeout=3) as conn:
            conn.send(build_request("GET", target))
            first = conn.read_response()
            time.sleep(pause)
            conn.send(build_request("GET", target))
            try:
                second = conn.read_response()
            except Exception as exc:   # closed by the server
                second = type(exc).__name__
            return [first, second]
    return script


def test_keepalive_time_ends_an_old_connection(diff):
    out = diff.check(_two_requests_with_pause("/time", 1.3))
    first, second = out.result
    assert first.header("connection") == b"keep-alive"
    assert first.header("x-conn-time-zero") == b"1:0"
    # the location's keepalive_timeout (75s), not the server's 1s, held the connection
    assert second.header("connection") == b"close"
    assert second.header("x-conn-time-zero") == b"2:no"


def test_server_keepalive_timeout_after_a_request_of_its_location(diff):
    out = diff.check(_two_requests_with_pause("/", 1.6))
    assert out.result[0].header("connection") == b"keep-alive"
    assert not hasattr(out.result[1], "status")


@pytest.mark.parametrize("target, method, agent, expected", [
    ("/", "POST", b"Mozilla/4.0 (compatible; MSIE 5.0; Windows 98)", b"close"),
    ("/", "GET", b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", b"keep-alive"),
    ("/", "POST", b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", b"keep-alive"),
    ("/", "POST", b"Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1)", b"keep-alive"),
    ("/", "POST", b"Opera/9.0 (compatible; MSIE 5.0)", b"keep-alive"),
    ("/none", "POST", b"Mozilla/4.0 (compatible; MSIE 5.0)", b"keep-alive"),
    ("/safari", "GET", b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_6) Safari/7534.48.3",
     b"close"),
    ("/safari", "GET", b"Mozilla/5.0 (Macintosh; Intel Mac OS X) Chrome/99 Safari/537.36", b"keep-alive"),
    ("/", "GET", b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_6) Safari/7534.48.3", b"keep-alive"),
])
def test_keepalive_disable(diff, target, method, agent, expected):
    body = b"x" if method == "POST" else None
    resp = diff.check_request(method, target, headers=[(b"User-Agent", agent)],
                              body=body).response
    assert resp.header("connection") == expected


def test_keep_alive_header_from_the_second_argument(diff):
    resp = diff.check_request("GET", "/header").response
    assert resp.header("keep-alive") == b"timeout=9"
    assert diff.check_request("GET", "/header", version="HTTP/1.0").response \
        .header("keep-alive") is None
