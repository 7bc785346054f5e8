"""`listen` with a port range (nginx 1.15.10+): `python -m ngate` on a real nginx.conf listens on
every port of `127.0.0.1:lo-hi`, `[::1]:lo-hi` and a bare `lo-hi`, each port a listen of its
own ($server_port, its own default server); a reload grows and shrinks a range."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess

import pytest

from tests.harness.port_ranges import free_port_range
from tests.harness.processes import ProxyProcess, render, wait_for

CONF = """
http {
    server {
        listen 127.0.0.1:{p0}-{p2};
        listen [::1]:{p0}-{p1};
        server_name a;
        location / { return 200 "a $server_addr:$server_port $server_name"; }
    }
    server {
        listen 127.0.0.1:{p1} default_server;
        server_name b;
        location / { return 200 "b $server_addr:$server_port $server_name"; }
    }
    server {
        listen {p4}-{p5};
        location / { return 200 "w $server_addr:$server_port"; }
    }
}
"""


def get(host: str, port: int, name: str = "a") -> str:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": name})
        resp = conn.getresponse()
        return f"{resp.status} {resp.read().decode()}"
    finally:
        conn.close()


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.fixture
def ports():
    base = free_port_range(6)
    return {f"p{i}": base + i for i in range(6)}


def test_every_port_of_a_range_serves(tmp_path, ports):
    p = ports
    with ProxyProcess("ngate", CONF, tmp_path, port=p["p0"], **p):
        for port in (p["p0"], p["p2"]):       # only server a: it is the default
            for name in ("a", "b", "x"):
                assert get("127.0.0.1", port, name) == f"200 a 127.0.0.1:{port} a"
        # p1: server b is the default there; a still answers its name
        assert get("127.0.0.1", p["p1"], "a") == f"200 a 127.0.0.1:{p['p1']} a"
        assert get("127.0.0.1", p["p1"], "b") == f"200 b 127.0.0.1:{p['p1']} b"
        assert get("127.0.0.1", p["p1"], "x") == f"200 b 127.0.0.1:{p['p1']} b"
        for port in (p["p0"], p["p1"]):
            assert get("::1", port) == f"200 a ::1:{port} a"
        assert refused("::1", p["p2"])          # the IPv6 range ends at p1
        assert refused("127.0.0.1", p["p3"])    # between the ranges
        for port in (p["p4"], p["p5"]):         # a bare range: the wildcard address
            assert get("127.0.0.1", port) == f"200 w 127.0.0.1:{port}"


RELOAD = """
http {
    server {
        listen 127.0.0.1:%s;
        location / { return 200 "$server_port"; }
    }
}
"""


def test_reload_grows_and_shrinks_a_range(tmp_path, ports):
    p0 = ports["p0"]
    proc = ProxyProcess("ngate", RELOAD % "{p0}", tmp_path, port=p0, p0=p0).start()
    try:
        assert get("127.0.0.1", p0) == f"200 {p0}"
        assert refused("127.0.0.1", p0 + 1)
        pid = int((tmp_path / "logs" / "nginx.pid").read_text())

        def reload(listen: str) -> None:
            (tmp_path / "nginx.conf").write_text(render(RELOAD % listen, prefix=tmp_path))
            os.kill(pid, signal.SIGHUP)

        reload(f"{p0}-{p0 + 2}")
        for port in range(p0, p0 + 3):
            wait_for(lambda port=port: not refused("127.0.0.1", port), f"port {port}")
            assert get("127.0.0.1", port) == f"200 {port}"
        reload(f"{p0 + 1}-{p0 + 1}")
        wait_for(lambda: refused("127.0.0.1", p0) and refused("127.0.0.1", p0 + 2),
                 "the ports dropped from the range to close")
        assert get("127.0.0.1", p0 + 1) == f"200 {p0 + 1}"
    finally:
        proc.stop()


MIXED = """
http {
    server {
        listen {p0}; listen {p1};
        location / { return 200 "wild $server_addr $proxy_protocol_addr"; }
    }
    server {
        listen 127.0.0.1:{p0} proxy_protocol;
        location / { return 200 "pp $server_addr $proxy_protocol_addr"; }
    }
    server {
        listen 127.0.0.1:{p1} ssl http2;
        ssl_certificate {pki}/a.crt; ssl_certificate_key {pki}/a.key;
        location / { return 200 "tls $server_addr $server_protocol"; }
    }
    server {
        listen 127.0.0.2:{p1} http2;
        location / { return 200 "h2c $server_addr $server_protocol"; }
    }
}
"""


def test_wildcard_socket_keeps_each_address_its_listen(tmp_path, ports):
    """One socket per port (`listen p0;`), and the addresses it also serves keep what their
    own listen says: the PROXY protocol, TLS with ALPN h2, h2c by prior knowledge."""
    from tests.harness.pki import Pki
    pki = Pki(tmp_path / "pki")
    pki.leaf("a", "127.0.0.1")
    p0, p1 = ports["p0"], ports["p1"]

    def curl(*args) -> str:
        out = subprocess.run(["curl", "-s", "--max-time", "5", *args], capture_output=True,
                             text=True, timeout=30)
        return out.stdout

    with ProxyProcess("ngate", MIXED, tmp_path / "ngate", port=p0, p0=p0, p1=p1,
                      pki=tmp_path / "pki"):
        assert curl("--haproxy-protocol", f"http://127.0.0.1:{p0}/") == "pp 127.0.0.1 127.0.0.1"
        assert curl(f"http://127.0.0.2:{p0}/") == "wild 127.0.0.2 "
        assert curl("--cacert", str(pki.path("root.pem")), f"https://127.0.0.1:{p1}/") == \
            "tls 127.0.0.1 HTTP/2.0"
        assert curl("--http2-prior-knowledge", f"http://127.0.0.2:{p1}/") == \
            "h2c 127.0.0.2 HTTP/2.0"
        assert curl(f"http://127.0.0.3:{p1}/") == "wild 127.0.0.3 "
        # keep-alive: the connection goes on past its first request (plain_transport.py's
        # hand-over to uvloop) on the address's servers
        assert curl(*[f"http://127.0.0.2:{p0}/"] * 3) == "wild 127.0.0.2 " * 3
        assert curl("--haproxy-protocol", *[f"http://127.0.0.1:{p0}/"] * 3) == \
            "pp 127.0.0.1 127.0.0.1" * 3


REUSEPORT = """
worker_processes 2;
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen 127.0.0.1:%s;
        location / { return 200 "$server_port"; }
    }
}
"""


def test_reload_adds_reuseport(tmp_path, ports):
    """A reload that adds `reuseport` to a listen keeps serving: the old socket gets
    SO_REUSEPORT and each worker one of its own (nginx's add_reuseport); was a bind error."""
    p0 = ports["p0"]
    proc = ProxyProcess("ngate", REUSEPORT % "{p0}", tmp_path, port=p0, p0=p0).start()
    try:
        assert get("127.0.0.1", p0) == f"200 {p0}"
        pid = int((tmp_path / "logs" / "nginx.pid").read_text())
        (tmp_path / "nginx.conf").write_text(
            render(REUSEPORT % "{p0} reuseport", prefix=tmp_path, p0=p0))
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: _listening(p0) == 2, "a socket per worker")
        assert get("127.0.0.1", p0) == f"200 {p0}"
        assert "still could not bind()" not in proc.error_log()
    finally:
        proc.stop()


def _listening(port: int) -> int:
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
    return len(out.stdout.splitlines())
