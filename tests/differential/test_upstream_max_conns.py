"""upstream `server ... max_conns=`, `zone`, `random two least_conn` and upstream heads with bare
LF line ends: which backend serves concurrent requests, through nginx and ngate (one worker:
without a shared zone nginx counts per worker too)."""
import threading

import pytest

from tests.harness.backend import Reply
from tests.harness.client import Connection, build_request

CONF = """
http {
    upstream limited {
        zone limited 64k;
        server 127.0.0.1:{backend_port} max_conns=1;
        server 127.0.0.1:{backend2_port} backup;
    }
    upstream only {
        server 127.0.0.1:{backend_port} max_conns=2;
    }
    upstream twice {
        server 127.0.0.1:{backend_port} max_conns=1;
        server 127.0.0.1:{backend_port} max_conns=1;
        server 127.0.0.1:{backend2_port};
    }
    upstream two {
        random two least_conn;
        server 127.0.0.1:{backend_port};
        server 127.0.0.1:{backend2_port};
    }
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        location /limited/ { proxy_pass http://limited; }
        location /only/ { proxy_pass http://only; }
        location /twice/ { proxy_pass http://twice; }
        location /two/ { proxy_pass http://two; }
        location /lf/ { proxy_pass http://127.0.0.1:{backend_port}; }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    d = differential(CONF, backends=("backend", "backend2"))
    for name in ("backend", "backend2"):
        b = d.backends[name]
        for path in ("/limited/slow", "/only/slow", "/twice/slow", "/two/slow"):
            b.route(path, Reply(body=name.encode(), delay=0.6))
        for path in ("/limited/fast", "/only/fast", "/twice/fast", "/two/fast"):
            b.route(path, Reply(body=name.encode()))
    d.backends["backend"].route("/lf/x", Reply(
        raw=b"HTTP/1.1 200 OK\nX-Bare: lf\nContent-Length: 3\n\nok\n"))
    return d


def _concurrent(target: str, n: int):
    """n requests at once on n connections; the bodies (which backend) in sending order, and
    then one more request after all of them finished."""
    def script(port):
        conns = [Connection(port, timeout=5) for _ in range(n)]
        try:
            for c in conns:
                c.send(build_request("GET", target))
                threading.Event().wait(0.05)    # keep the order of arrival
            bodies = [c.read_response() for c in conns]
        finally:
            for c in conns:
                c.close()
        return [(r.status, r.body if r.status == 200 else b"") for r in bodies]
    return script


def test_max_conns_sends_the_second_request_to_the_backup(diff):
    out = diff.check(_concurrent("/limited/slow", 3))
    assert out.result == [(200, b"backend"), (200, b"backend2"), (200, b"backend2")]
    # the slot is given back: the primary serves again
    assert diff.check_request("GET", "/limited/fast").response.body == b"backend"


def test_max_conns_without_another_peer_is_502(diff):
    out = diff.check(_concurrent("/only/slow", 3))
    assert [s for s, _ in out.result] == [200, 200, 502]
    assert diff.check_request("GET", "/only/fast").response.status == 200


def test_equal_addresses_are_distinct_peers(diff):
    out = diff.check(_concurrent("/twice/slow", 4))
    assert sorted(b for _, b in out.result) == [b"backend", b"backend", b"backend2", b"backend2"]


def test_random_two_least_conn_avoids_the_busy_peer(diff):
    def script(port):
        with Connection(port, timeout=5) as busy:
            busy.send(build_request("GET", "/two/slow"))
            threading.Event().wait(0.5)    # the busy request reached its peer
            with Connection(port, timeout=5) as other:
                other.send(build_request("GET", "/two/fast"))
                second = other.read_response().body
            first = busy.read_response().body
        return first != second
    # the first peer is random: which backend saw what differs run to run, so each program is
    # checked on its own
    for kind in diff.procs:
        assert diff.run(kind, script).result is True, kind


def test_bare_lf_upstream_head(diff):
    resp = diff.check_request("GET", "/lf/x").response
    assert resp.header("x-bare") == b"lf" and resp.body == b"ok\n"


NEXT_CONF = """
http {
    upstream pair {
        server 127.0.0.1:{backend_port} max_fails=0;
        server 127.0.0.1:{backend2_port} max_fails=0;
    }
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        proxy_read_timeout 700ms;
        location /limited/ {
            proxy_pass http://pair;
            proxy_next_upstream_timeout 500ms;
        }
        location /unlimited/ {
            proxy_pass http://pair;
        }
    }
}
"""


@pytest.fixture(scope="module")
def next_diff(differential):
    d = differential(NEXT_CONF, backends=("backend", "backend2"))
    for path in ("/limited/x", "/unlimited/x"):
        d.backends["backend"].route(path, Reply(body=b"late", delay=1.5))
        d.backends["backend2"].route(path, Reply(body=b"backend2"))
    return d


@pytest.mark.parametrize("target, status", [("/limited/x", 504), ("/unlimited/x", 200)])
def test_proxy_next_upstream_timeout(next_diff, target, status):
    """The first peer times out after 700ms: past proxy_next_upstream_timeout, no next peer."""
    def script(port):
        with Connection(port, timeout=5) as c:
            c.send(build_request("GET", target))
            r = c.read_response()
            return (r.status, r.body if r.status == 200 else b"")
    out = next_diff.check(script)
    assert out.result[0] == status
