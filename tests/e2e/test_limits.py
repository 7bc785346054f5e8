"""limit_req and limit_conn end to end, on nginx and on ngate, with two worker processes.

Rates of one request a minute make the outcomes exact without timing assertions. What is shown:
- a zone is shared by the workers: however the connections spread over them, `rate=1r/m
  burst=1` admits two requests, then 503s ("limiting requests, excess: ... by zone", the
  $limit_req_status values in the access log);
- `limit_req_status`, a zone full of keys forgetting its least recently used one;
- a delayed request is really held (nginx's "delaying request" line; $request_time above zero),
  and a client leaving while it waits is logged 499 without reaching the content;
- limit_conn: a request waiting on its upstream holds its slot (503 "limiting connections by
  zone" for the next one), given back when it ends; a WebSocket tunnel holds it while open;
- a reload keeps a zone's states when its name and size are unchanged, a new size starts a
  fresh zone, a changed key fails the reload and the old configuration goes on.
"""
from __future__ import annotations

import os
import re
import signal
import socket

import pytest

from tests.harness.backend import Reply
from tests.harness.client import Connection, build_request, request
from tests.harness.processes import wait_for

MAIN = """
worker_processes 2;
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 256; }
"""

CONF = MAIN + """
http {
    access_log {prefix}/logs/access.log;
    log_format lim '$uri $status $limit_req_status $limit_conn_status $request_time';
    limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
    limit_req_zone $arg_k zone=keys:32k rate=1r/m;
    limit_req_zone $arg_k zone=slow:1m rate=1r/m;
    limit_req_zone $arg_k zone=fast:1m rate=2r/s;
    limit_conn_zone $binary_remote_addr zone=addr:1m;
    server {
        listen 127.0.0.1:{port};
        server_name localhost;
        access_log {prefix}/logs/lim.log lim;
        location /one { limit_req zone=one burst=1 nodelay; add_header X-Pid $pid always;
                        proxy_pass http://127.0.0.1:{backend_port}; }
        location /pid { add_header X-Pid $pid always; return 200 "pid\\n"; }
        location /status { limit_req zone=keys; limit_req_status 429;
                           proxy_pass http://127.0.0.1:{backend_port}; }
        location /keys { limit_req zone=keys; proxy_pass http://127.0.0.1:{backend_port}; }
        location /delay { limit_req zone=slow burst=5; proxy_pass http://127.0.0.1:{backend_port}; }
        location /fast { limit_req zone=fast burst=5; proxy_pass http://127.0.0.1:{backend_port}; }
        location /held { limit_conn addr 1; proxy_pass http://127.0.0.1:{hold_port}; }
        location /conn { limit_conn addr 1; proxy_pass http://127.0.0.1:{backend_port}; }
        location /ws {
            limit_conn addr 1;
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }
    }
}
"""



@pytest.fixture
def hold():
    """An upstream that accepts and answers only when the test does."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(10)
    yield sock
    sock.close()


@pytest.fixture
def proxy(start_proxy, backend, hold):
    return start_proxy(CONF, backend_port=backend.port, hold_port=hold.getsockname()[1])


def log_lines(proxy, name: str) -> list[str]:
    return (proxy.prefix / "logs" / name).read_text().splitlines()


# ---------------------------------------------------------------- limit_req

def test_zone_is_shared_by_the_workers(proxy):
    statuses, pids = [], set()
    # a fresh connection each time: the kernel hands them to both workers
    while len(pids) < 2 or len(statuses) < 8:
        r = request(proxy.port, "GET", "/one", host=b"localhost")
        statuses.append(r.status)
        pids.add(r.header("X-Pid"))
        assert len(statuses) < 400, "one worker took every connection"
    assert statuses[:2] == [200, 200]
    assert set(statuses[2:]) == {503}          # per-worker zones would have let more through
    errors = [ln for ln in proxy.error_log().splitlines() if "limiting requests" in ln]
    assert len(errors) == len(statuses) - 2
    assert re.search(r'\[error\] \d+#\d+: \*\d+ limiting requests, excess: [12]\.\d{3} by zone '
                     r'"one", client: 127\.0\.0\.1, server: localhost, request: "GET /one '
                     r'HTTP/1\.1", host: "localhost"$', errors[0]), errors[0]
    wait_for(lambda: len(log_lines(proxy, "lim.log")) == len(statuses), "the access log")
    lines = log_lines(proxy, "lim.log")
    # (two workers' lines: in order per worker only)
    assert sorted(ln.split()[2] for ln in lines) == ["PASSED"] * 2 + ["REJECTED"] * (len(lines) - 2)
    assert all(ln.split()[3] == "-" for ln in lines)


def test_status_code_and_empty_key(proxy):
    assert request(proxy.port, "GET", "/status?k=a").status == 200
    assert request(proxy.port, "GET", "/status?k=a").status == 429
    # an empty key is not accounted
    assert [request(proxy.port, "GET", "/status").status for _ in range(3)] == [200] * 3


def test_full_zone_forgets_its_least_recently_used_key(proxy, backend):
    with Connection(proxy.port) as c:
        for i in range(600):                  # more keys than a 32k zone holds (nginx, ngate)
            c.send(build_request("GET", f"/keys?k={i}"))
            assert c.read_response().status == 200
        c.send(build_request("GET", "/keys?k=599"))
        assert c.read_response().status == 503     # recent: still there
        c.send(build_request("GET", "/keys?k=0"))
        assert c.read_response().status == 200     # the oldest was evicted: a fresh key


def test_delayed_request_waits_then_is_served(proxy, backend):
    assert request(proxy.port, "GET", "/fast?k=a").status == 200
    r = request(proxy.port, "GET", "/fast?k=a")
    assert r.status == 200
    line = wait_for(lambda: [ln for ln in proxy.error_log().splitlines()
                             if "delaying request" in ln], "the delay line")[0]
    assert re.search(r'\[warn\] .* delaying request, excess: [01]\.\d{3}, by zone "fast", client: '
                     r'127\.0\.0\.1, server: localhost, request: "GET /fast\?k=a HTTP/1\.1"', line)
    wait_for(lambda: len(log_lines(proxy, "lim.log")) == 2, "the access log")
    delayed = [ln.split() for ln in log_lines(proxy, "lim.log") if " DELAYED " in ln]
    assert len(delayed) == 1
    uri, status, req_status, _, took = delayed[0]
    assert (status, req_status) == ("200", "DELAYED")
    assert float(took) > 0.0                  # it waited (at 2 r/s: up to 0.5 s, so a loaded
                                              # machine still sends the second one in time)


def test_client_leaving_a_delayed_request_is_logged_499(proxy, backend):
    mark = backend.mark()
    assert request(proxy.port, "GET", "/delay?k=x").status == 200
    c = Connection(proxy.port)
    c.send(build_request("GET", "/delay?k=x"))
    wait_for(lambda: "delaying request, excess: 1.000, by zone \"slow\"" in proxy.error_log(),
             "the delay line")
    c.close()                                  # 62 s to wait at 1r/m: the client gives up
    wait_for(lambda: len(log_lines(proxy, "lim.log")) == 2, "the 499 line")
    # (two workers write their own lines: the first request's may come second)
    assert sorted(ln.split()[1:3] for ln in log_lines(proxy, "lim.log")) == \
        [["200", "PASSED"], ["499", "DELAYED"]]
    assert len(backend.since(mark)) == 1       # the delayed request never reached the upstream


# ---------------------------------------------------------------- limit_conn

def test_request_waiting_on_its_upstream_holds_its_slot(proxy, hold):
    a = Connection(proxy.port, timeout=10)
    a.send(build_request("GET", "/held"))
    upstream, _ = hold.accept()               # the request is in its content phase now
    try:
        assert request(proxy.port, "GET", "/conn").status == 503
        assert re.search(r'\[error\] .* limiting connections by zone "addr", client: 127\.0\.0\.1',
                         proxy.error_log())
        upstream.recv(65536)
        upstream.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        assert a.read_response().status == 200
    finally:
        upstream.close()
        a.close()
    # the slot was given back when the first request ended
    assert wait_for(lambda: request(proxy.port, "GET", "/conn").status == 200, "a free slot")
    # (ngate buffers access log lines up to a second)
    # (the two workers buffer their lines apart: wait until both lines are written)
    want = [["/conn", "503", "-", "REJECTED"], ["/held", "200", "-", "PASSED"]]
    wait_for(lambda: all(w in [ln.split()[:4] for ln in log_lines(proxy, "lim.log")] for w in want),
             "/conn REJECTED and /held PASSED in the access log")


def test_websocket_tunnel_holds_its_slot_until_it_closes(proxy, backend):
    backend.route("/ws", Reply(status=101, headers=[(b"Upgrade", b"websocket"),
                                                    (b"Connection", b"Upgrade")], body=b""))
    ws = Connection(proxy.port, timeout=5)
    ws.send(build_request("GET", "/ws", headers=[(b"Upgrade", b"websocket"),
                                                 (b"Connection", b"Upgrade")]))
    assert ws.read_response().status == 101
    ws.send(b"ping")
    assert ws.read_exactly(4) == b"ping"      # the tunnel is up (the backend echoes)
    assert request(proxy.port, "GET", "/conn").status == 503
    assert request(proxy.port, "GET", "/conn").status == 503
    ws.close()
    assert wait_for(lambda: request(proxy.port, "GET", "/conn").status == 200, "a free slot")


# ---------------------------------------------------------------- reload

def _reload(proxy, conf: str, generation: str) -> None:
    text = conf.replace("{port}", str(proxy.port)).replace("{prefix}", str(proxy.prefix))
    text = text.replace("{backend_port}", str(proxy.params["backend_port"]))
    text = text.replace('return 200 "pid\\n";', f'return 200 "gen{generation}\\n";')
    (proxy.prefix / "nginx.conf").write_text(text)
    os.kill(proxy.proc.pid, signal.SIGHUP)


def _children(pid: int) -> list[str]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return f.read().split()


def _serving(proxy, generation: str) -> bool:
    """Only the new generation's two workers are left, and they answer."""
    return len(_children(proxy.proc.pid)) == 2 and \
        request(proxy.port, "GET", "/pid").body == f"gen{generation}\n".encode()


RELOAD = MAIN + """
http {
    access_log {prefix}/logs/access.log;
    limit_req_zone $binary_remote_addr zone=one:SIZE rate=1r/m;
    server {
        listen 127.0.0.1:{port};
        location /r { limit_req zone=one; proxy_pass http://127.0.0.1:{backend_port}; }
        location /pid { return 200 "pid\\n"; }
    }
}
"""


def test_reload_keeps_a_zone_of_unchanged_name_and_size(start_proxy, backend):
    p = start_proxy(RELOAD.replace("SIZE", "1m"), backend_port=backend.port)
    assert request(p.port, "GET", "/r").status == 200
    assert request(p.port, "GET", "/r").status == 503
    _reload(p, RELOAD.replace("SIZE", "1m"), "1")
    wait_for(lambda: _serving(p, "1"), "the reloaded configuration")
    assert request(p.port, "GET", "/r").status == 503          # the states survived
    _reload(p, RELOAD.replace("SIZE", "2m"), "2")
    wait_for(lambda: _serving(p, "2"), "the reloaded configuration")
    # a new size: a new zone (the old one allows nothing for a minute; a worker of the old
    # generation may still take a connection for a moment after the new ones answer)
    wait_for(lambda: request(p.port, "GET", "/r").status == 200, "a request through the new zone")
    assert request(p.port, "GET", "/r").status == 503
    _reload(p, RELOAD.replace("SIZE", "2m").replace("$binary_remote_addr", "$uri"), "3")
    wait_for(lambda: 'limit_req "one" uses the "$uri" key while previously it used the '
             '"$binary_remote_addr" key' in p.error_log(), "the refused reload")
    assert request(p.port, "GET", "/pid").body == b"gen2\n"   # the old configuration serves
    assert request(p.port, "GET", "/r").status == 503


UNIX = MAIN + """
http {
    access_log {prefix}/logs/access.log;
    limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
    server {
        listen 127.0.0.1:{port};
        listen unix:{prefix}/sock;
        location / { limit_req zone=one; proxy_pass http://127.0.0.1:{backend_port}; }
    }
}
"""


def test_unix_socket_clients_share_one_key(start_proxy, backend):
    """nginx's $binary_remote_addr of a unix-socket client is "unix:": one state for all of them
    (an empty key would not be limited at all)."""
    p = start_proxy(UNIX, backend_port=backend.port)

    def status() -> int:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(str(p.prefix / "sock"))
        s.sendall(build_request("GET", "/"))
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        return int(data.split()[1])

    assert [status(), status(), status()] == [200, 503, 503]
    assert request(p.port, "GET", "/").status == 200      # 127.0.0.1 is another key


TUNNEL = """
worker_processes 2;
worker_shutdown_timeout 1s;
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log {prefix}/logs/access.log;
    limit_conn_zone $binary_remote_addr zone=addr:1m;
    server {
        listen 127.0.0.1:{port};
        location /pid { return 200 "pid\\n"; }
        location / {
            limit_conn addr 1;
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }
    }
}
"""


def test_tunnel_cut_by_a_reload_gives_its_slot_back(start_proxy, backend):
    """A reload keeps the zone; the old worker's tunnel, closed at worker_shutdown_timeout,
    gives its slot back to the zone the new workers use."""
    backend.route("/ws", Reply(status=101, headers=[(b"Upgrade", b"websocket"),
                                                    (b"Connection", b"Upgrade")], body=b""))
    p = start_proxy(TUNNEL, backend_port=backend.port)
    ws = Connection(p.port, timeout=10)
    ws.send(build_request("GET", "/ws", headers=[(b"Upgrade", b"websocket"),
                                                 (b"Connection", b"Upgrade")]))
    assert ws.read_response().status == 101
    assert request(p.port, "GET", "/x").status == 503
    _reload(p, TUNNEL, "1")
    wait_for(lambda: _serving(p, "1"), "the old worker to end its tunnel and exit")
    assert ws.closed_by_peer()
    assert request(p.port, "GET", "/x").status == 200
    ws.close()
