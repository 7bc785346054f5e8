"""`upstream { zone ...; }` with worker_processes 2: the peers' state is shared by the workers
(max_conns, least_conn's connection counts, max_fails), against nginx and ngate.

The listen socket has `reuseport`, so the kernel spreads the connections over both workers; each
response names its worker ($pid), and each check first makes sure that both workers served
requests of the round (else the round is repeated), so without shared state the checks fail.
"""
from __future__ import annotations

import threading

import pytest

from tests.harness.backend import Backend, Reply
from tests.harness.client import Connection, build_request
from tests.harness.processes import free_port

CONF = """
worker_processes 2;
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log {prefix}/logs/access.log;
    upstream mc {
        zone mc 64k;
        server 127.0.0.1:{a_port} max_conns=1;
        server 127.0.0.1:{b_port} backup;
    }
    upstream lc {
        zone lc 64k;
        least_conn;
        server 127.0.0.1:{a_port};
        server 127.0.0.1:{b_port};
    }
    upstream mf {
        zone mf 64k;
        server 127.0.0.1:{dead_port} max_fails=1 fail_timeout=60s;
        server 127.0.0.1:{b_port};
    }
    server {
        listen 127.0.0.1:{port} reuseport;
        add_header X-Pid $pid always;
        add_header X-Addr $upstream_addr always;
        location /mc/ { proxy_pass http://mc; }
        location /lc/ { proxy_pass http://lc; }
        location /mf/ { proxy_pass http://mf; }
    }
}
"""

ROUNDS = 6          # a round lands on one worker only with probability 2 / 2**n


@pytest.fixture
def zoned(start_proxy):
    with Backend("a") as a, Backend("b") as b:
        for name, be in (("a", a), ("b", b)):
            be.route("/mc/slow", Reply(body=name.encode(), delay=1.0))
            be.route("/lc/slow", Reply(body=name.encode(), delay=1.5))
            for path in ("/lc/fast", "/mf/x"):
                be.route(path, Reply(body=name.encode()))
        yield start_proxy(CONF, a_port=a.port, b_port=b.port, dead_port=free_port())


def _at_once(port: int, target: str, n: int) -> list:
    """n requests on n connections sent together: (status, body, pid) of each."""
    conns = [Connection(port, timeout=10) for _ in range(n)]
    try:
        for c in conns:
            c.send(build_request("GET", target))
        out = [c.read_response() for c in conns]
    finally:
        for c in conns:
            c.close()
    return [(r.status, r.body, r.header("x-pid")) for r in out]


def _one(port: int, target: str):
    with Connection(port, timeout=10) as c:
        c.send(build_request("GET", target))
        return c.read_response()


def test_max_conns_holds_across_workers(zoned):
    for _ in range(ROUNDS):
        out = _at_once(zoned.port, "/mc/slow", 8)
        if len({pid for _, _, pid in out}) == 2:
            break
    else:
        pytest.fail(f"{zoned.kind}: every round landed on one worker: {out}")
    assert all(status == 200 for status, _, _ in out), out
    # one request at a time on the max_conns=1 peer, whatever worker took it: the rest on the backup
    assert sorted(body for _, body, _ in out) == [b"a"] + [b"b"] * 7, out


def test_least_conn_sees_the_other_workers_connection(zoned):
    for _ in range(ROUNDS):
        result = {}
        busy = threading.Thread(target=lambda: result.update(slow=_one(zoned.port, "/lc/slow")))
        busy.start()
        threading.Event().wait(0.5)     # the slow request reached its peer
        fast = [_one(zoned.port, "/lc/fast") for _ in range(6)]
        busy.join()
        slow = result["slow"]
        pids = {r.header("x-pid") for r in fast}
        if pids - {slow.header("x-pid")}:
            break
    else:
        pytest.fail(f"{zoned.kind}: the fast requests never reached the other worker")
    # the busy peer has one connection, the other none: every fast request goes to the other
    assert slow.status == 200 and all(r.status == 200 for r in fast)
    assert {r.body for r in fast} == {b"b" if slow.body == b"a" else b"a"}, \
        [(r.header("x-pid"), r.body) for r in fast]


def test_max_fails_is_shared(zoned):
    first = _one(zoned.port, "/mf/x")
    dead = zoned.params["dead_port"]
    b_addr = f"127.0.0.1:{zoned.params['b_port']}".encode()
    # the first request tried the dead peer, which failed once: disabled for 60 s
    assert first.status == 200 and first.header("x-addr") == f"127.0.0.1:{dead}, ".encode() + b_addr
    for _ in range(ROUNDS):
        out = [_one(zoned.port, "/mf/x") for _ in range(6)]
        if {r.header("x-pid") for r in out} - {first.header("x-pid")}:
            break
    else:
        pytest.fail(f"{zoned.kind}: the requests never reached the other worker")
    # no worker tries the disabled peer again
    assert [r.header("x-addr") for r in out] == [b_addr] * 6, \
        [(r.header("x-pid"), r.header("x-addr")) for r in out]
