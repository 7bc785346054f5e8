"""limit_req and limit_conn, nginx against ngate (two workers each): for each scenario the
statuses, the $limit_req_status / $limit_conn_status headers, what reached the backend, and the
error log lines (level and message after `*N`) must be the same.

Normalised: time, pid#tid and connection number, listening ports, and the third decimal of an
excess (a millisecond more or less between two requests changes it at 1r/m).
"""
from __future__ import annotations

import re
import time

import pytest

from tests.harness.backend import Reply
from tests.harness.client import Connection, build_request
from tests.harness.differential import normalise_ports

CONF = """
worker_processes 2;
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log {prefix}/logs/access.log;
    limit_req_zone $binary_remote_addr zone=ip:1m rate=1r/m;
    limit_req_zone $arg_a zone=a:1m rate=1r/m;
    limit_req_zone $arg_b zone=b:1m rate=1r/m;
    limit_req_zone $arg_d zone=d:1m rate=1r/m;
    limit_conn_zone $arg_c zone=c:1m;
    limit_conn_zone $arg_k zone=k:1m;

    add_header X-Req $limit_req_status always;
    add_header X-Conn $limit_conn_status always;

    server {
        listen 127.0.0.1:{port};
        server_name localhost;
        limit_req zone=a burst=1 nodelay;

        location /inherit { proxy_pass http://127.0.0.1:{backend_port}; }
        location /nodelay { limit_req zone=ip burst=1 nodelay;
                            proxy_pass http://127.0.0.1:{backend_port}; }
        location /two { limit_req zone=a nodelay; limit_req zone=b nodelay;
                        proxy_pass http://127.0.0.1:{backend_port}; }
        location /dry { limit_req zone=d; limit_req_dry_run on; limit_req_log_level warn;
                        proxy_pass http://127.0.0.1:{backend_port}; }
        location /status { limit_req zone=d nodelay; limit_req_status 429;
                           limit_req_log_level info;
                           proxy_pass http://127.0.0.1:{backend_port}; }
        location /ret { limit_req zone=d; return 200 "rewrite phase comes first\\n"; }
        location /once { limit_req zone=d nodelay burst=5; error_page 404 = /again;
                         proxy_pass http://127.0.0.1:{backend_port}; }
        location /again { limit_req zone=d nodelay;
                          proxy_pass http://127.0.0.1:{backend_port}; }
        location /both { limit_req zone=d nodelay; limit_conn c 1;
                         proxy_pass http://127.0.0.1:{backend_port}; }
        location /conn { limit_conn c 1; limit_conn k 1; limit_conn_log_level notice;
                         limit_conn_status 599; proxy_pass http://127.0.0.1:{backend_port}; }
        location /conndry { limit_conn c 1; limit_conn_dry_run on;
                            proxy_pass http://127.0.0.1:{backend_port}; }
    }
}
"""

LINE_RE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*)$")
EXCESS_RE = re.compile(r"excess: (\d+\.\d{3})")


def get(*targets: str):
    """Each target on a fresh connection: (status, X-Req, X-Conn) of each."""
    def script(port):
        out = []
        for target in targets:
            with Connection(port) as c:
                c.send(build_request("GET", target, host=b"localhost"))
                r = c.read_response()
                out.append((r.status, r.header("X-Req"), r.header("X-Conn")))
        time.sleep(0.1)
        return out
    return script


def while_held(held: str, *targets: str):
    """`held` waits on the backend (Reply delay) while `targets` are sent."""
    def script(port):
        c = Connection(port, timeout=10)
        c.send(build_request("GET", held, host=b"localhost"))
        time.sleep(0.3)
        out = get(*targets)(port)
        r = c.read_response()
        c.close()
        return [(r.status, r.header("X-Req"), r.header("X-Conn"))] + out
    return script


LONG = "k" * 300
SCENARIOS = {
    "nodelay_burst": get("/nodelay", "/nodelay", "/nodelay", "/nodelay"),
    "inherited_from_server": get("/inherit?a=1", "/inherit?a=1", "/inherit?a=1", "/inherit"),
    "two_limits": get("/two?a=2&b=2", "/two?a=2&b=3", "/two?a=3&b=3", "/two?b=4", "/two?b=4"),
    "dry_run": get("/dry?d=1", "/dry?d=1", "/dry?d=1"),
    "status_and_info_level": get("/status?d=2", "/status?d=2"),
    "return_is_not_limited": get("/ret?d=3", "/ret?d=3"),
    "counted_once_across_error_page": get("/once/missing?d=4", "/once/missing?d=4"),
    "limit_req_before_limit_conn": get("/both?d=5&c=5", "/both?d=5&c=5"),
    "limit_conn_held": while_held("/conn/held?c=6", "/conn?c=6", "/conn?c=7", "/conn?c=6&k=x"),
    "limit_conn_dry_run": while_held("/conn/held?c=8", "/conndry?c=8"),
    "limit_conn_long_key": get(f"/conn?c=9&k={LONG}"),
}


@pytest.fixture(scope="module")
def outcomes(differential):
    diff = differential(CONF)
    diff.backend.route("/conn/held", Reply(delay=1.5, body=b"held\n"))
    diff.backend.route("/once/missing", Reply(status=404, body=b"nope\n"))
    out: dict = {}
    for kind, proc in diff.procs.items():
        ports = {str(proc.port).encode()}
        out[kind] = {}
        for name, script in SCENARIOS.items():
            o = diff.run(kind, script)
            text = normalise_ports(o.error_log.encode(), ports).decode()
            seen = [r.target for r in o.requests()]
            out[kind][name] = (o.result, seen, messages(text))
    return out


def messages(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        m = LINE_RE.match(line)
        if m is None:
            out.append(f"unparsed: {line}")
            continue
        level, message = m.groups()
        if "keepalive connection" in message:
            continue            # when a worker notices the client's close: not the limits' business
        message = EXCESS_RE.sub(lambda e: f"excess: {float(e.group(1)):.2f}", message)
        out.append(f"[{level}] {message}")
    return out


@pytest.mark.parametrize("name", SCENARIOS)
def test_same_as_nginx(outcomes, name):
    assert outcomes["ngate"][name] == outcomes["nginx"][name]


def test_scenarios_show_the_limits(outcomes):
    """The reference itself: what nginx does in these scenarios."""
    nginx = outcomes["nginx"]
    assert [s for s, _, _ in nginx["nodelay_burst"][0]] == [200, 200, 503, 503]
    assert nginx["nodelay_burst"][2][0].startswith('[error] limiting requests, excess: 2.00 by '
                                                   'zone "ip", client: 127.0.0.1, server: '
                                                   'localhost, request: "GET /nodelay HTTP/1.1"')
    assert nginx["return_is_not_limited"][0] == [(200, None, None)] * 2
    assert [s for s, _, _ in nginx["limit_conn_held"][0]] == [200, 599, 200, 599]
