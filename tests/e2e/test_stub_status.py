"""stub_status and $connections_*: nginx's text, with the counts of all workers summed
(worker_processes 2, `reuseport` spreads the connections over both). Runs on nginx and ngate.
"""
from __future__ import annotations

import re

import pytest

from tests.harness.client import Connection, build_request

CONF = """
worker_processes 2;
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log {prefix}/logs/access.log;
    server {
        listen 127.0.0.1:{port} reuseport;
        add_header X-Pid $pid;
        add_header X-Counts "$connections_active $connections_reading $connections_writing $connections_waiting";
        location / { return 200 "ok\\n"; }
        location /stub { stub_status; }
        location /srv { stub_status on; }
    }
}
"""

STATUS_RE = re.compile(
    rb"\AActive connections: (\d+) \n"
    rb"server accepts handled requests\n"
    rb" (\d+) (\d+) (\d+) \n"
    rb"Reading: (\d+) Writing: (\d+) Waiting: (\d+) \n\Z")


def status(port: int) -> dict:
    with Connection(port) as c:
        c.send(build_request("GET", "/stub", headers=[(b"Connection", b"close")]))
        r = c.read_response()
        assert c.closed_by_peer()
    assert r.status == 200 and r.header("content-type") == b"text/plain", r
    m = STATUS_RE.match(r.body)
    assert m, r.body
    keys = ("active", "accepts", "handled", "requests", "reading", "writing", "waiting")
    return dict(zip(keys, map(int, m.groups())))


def status_when(port: int, gauges: tuple) -> dict:
    """The status once (active, reading, writing, waiting) are `gauges`, or the last one read:
    the workers see closes and partial heads as they come, not before our next request."""
    for reads in range(1, 101):
        s = status(port)
        if (s["active"], s["reading"], s["writing"], s["waiting"]) == gauges:
            break
    s["reads"] = reads
    return s


def settled_status(port: int) -> dict:
    """The status once nothing else is in flight (the harness's readiness probes may still be
    being accepted): two reads in a row that differ by our own connection only."""
    prev = status(port)
    for _ in range(100):
        s = status(port)
        if s["accepts"] == prev["accepts"] + 1 and s["active"] == 1 \
                and s["requests"] == prev["requests"] + 1:
            return s
        prev = s
    raise AssertionError(f"counts never settled: {s}")


@pytest.fixture
def server(start_proxy):
    """Started, with both workers serving (a connection that reached a worker's socket before
    that worker ran is accepted once it does: the counts are read after that)."""
    proc = start_proxy(CONF)
    idle = idle_connections_on_both_workers(proc.port)
    for c in idle:
        c.close()
    return proc


def idle_connections_on_both_workers(port: int) -> list[Connection]:
    """Keep-alive connections, each after one request, until both workers hold some."""
    conns, pids = [], set()
    while len(pids) < 2 or len(conns) < 6:
        assert len(conns) < 64, "every connection went to one worker"
        c = Connection(port)
        c.send(build_request("GET", "/"))
        pids.add(c.read_response().header("x-pid"))
        conns.append(c)
    return conns


def test_counts_are_summed_over_workers(server):
    before = settled_status(server.port)
    conns = idle_connections_on_both_workers(server.port)
    try:
        n = len(conns)
        s = status_when(server.port, (n + 1, 0, 1, n))
        assert (s["active"], s["reading"], s["writing"], s["waiting"]) == (n + 1, 0, 1, n)
        assert s["accepts"] - before["accepts"] == n + s["reads"]
        assert s["handled"] == s["accepts"]
        assert s["requests"] - before["requests"] == n + s["reads"]
        # a partial head: reading, on whichever worker holds that connection
        conns[0].send(b"GET / HTTP/1.1\r\n")
        conns[1].send(b"GET / HTTP/1.1\r\n")
        s = status_when(server.port, (n + 1, 2, 1, n - 2))
        assert (s["active"], s["reading"], s["writing"], s["waiting"]) == (n + 1, 2, 1, n - 2)
        # the variables say the same, in the request that reads them
        for _ in range(100):
            with Connection(server.port) as c:
                c.send(build_request("GET", "/", headers=[(b"Connection", b"close")]))
                counts = c.read_response().header("x-counts")
                assert c.closed_by_peer()
            if counts == b"%d 2 1 %d" % (n + 1, n - 2):
                break
        assert counts == b"%d 2 1 %d" % (n + 1, n - 2)
    finally:
        for c in conns:
            c.close()


def test_closed_connections_leave_the_counts(server):
    conns = idle_connections_on_both_workers(server.port)
    for c in conns:
        c.close()
    s = status_when(server.port, (1, 0, 1, 0))
    assert (s["active"], s["reading"], s["writing"], s["waiting"]) == (1, 0, 1, 0)


def test_pipelined_requests_are_counted(server):
    before = settled_status(server.port)
    with Connection(server.port) as c:
        c.send(build_request("GET", "/") + build_request("GET", "/", headers=[(b"Connection", b"close")]))
        c.read_response()
        c.read_response()
    after = status(server.port)
    assert after["requests"] - before["requests"] == 3
    assert after["accepts"] - before["accepts"] == 2


@pytest.mark.parametrize("method,code", [("HEAD", 200), ("POST", 405), ("PUT", 405)])
def test_methods(server, method, code):
    with Connection(server.port) as c:
        c.send(build_request(method, "/srv", body=b"x" if method != "HEAD" else None))
        r = c.read_response(method=method)
    assert r.status == code
    if method == "HEAD":
        assert r.body == b"" and int(r.header("content-length")) > 60
