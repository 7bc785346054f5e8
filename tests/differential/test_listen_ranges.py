"""`listen` port ranges through Debian's nginx and ngate: the same nginx.conf, each program on
its own block of consecutive ports, and what a client sees on every port of the ranges and
just outside them (the ports are named p0..p5 before comparing)."""
from __future__ import annotations

import http.client
import re
import shutil
import socket
import subprocess
import time

from tests.harness.port_ranges import free_port_range
from tests.harness.processes import KINDS, ProxyProcess, fresh_prefix, require_kind

CONF = """
http {
    server {
        listen 127.0.0.1:{p0}-{p2};
        listen [::1]:{p0}-{p1};
        server_name a;
        location / { proxy_pass http://$arg_b/t; }
        location /t { return 200 "a $server_addr:$server_port $server_name"; }
    }
    server {
        listen 127.0.0.1:{p1} default_server;
        server_name b;
        location / { return 200 "b $server_addr:$server_port $server_name"; }
    }
    server {
        listen {p4}-{p5};
        listen 127.0.0.1:{p3};
        location / { return 200 "w $server_addr:$server_port $server_name"; }
    }
}
"""


def ask(host: str, port: int, target: str, name: str) -> str:
    try:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", target, headers={"Host": name})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        return f"{resp.status} {re.sub(r'<hr><center>[^<]*</center>', '<signature>', body)}"
    except ConnectionRefusedError:
        return "refused"
    except OSError as err:
        return f"error {type(err).__name__}"
    finally:
        conn.close()


def script(base: int) -> list[str]:
    seen = []
    for i in range(6):
        port = base + i
        for name in ("a", "b", "x"):
            seen.append(f"127.0.0.1 p{i} {name}: {ask('127.0.0.1', port, '/t', name)}")
        seen.append(f"::1 p{i}: {ask('::1', port, '/t', 'a')}")
    for i in range(4):
        for host in ("127.0.0.1", "[::1]"):
            seen.append(f"via {host} p{i}: "
                        f"{ask('127.0.0.1', base, f'/?b={host}:{base + i}', 'a')}")
    return [re.sub(r"(?<!\d)(\d{4,5})(?!\d)",
                   lambda m: f"p{int(m.group(1)) - base}" if 0 <= int(m.group(1)) - base < 6
                   else m.group(1), line) for line in seen]


def test_ranges_as_nginx(tmp_path):
    seen = {}
    for kind in KINDS:
        require_kind(kind)
        base = free_port_range(6)
        params = {f"p{i}": base + i for i in range(6)}
        with ProxyProcess(kind, CONF, fresh_prefix(tmp_path, kind), port=base, **params):
            seen[kind] = script(base)
    assert seen["ngate"] == seen["nginx"]
    text = "\n".join(seen["nginx"])
    # what the comparison covers: every port of the ranges serves, the ports around them do not
    assert "127.0.0.1 p1 x: 200 b 127.0.0.1:p1 b" in text
    assert "::1 p1: 200 a ::1:p1 a" in text and "::1 p2: refused" in text
    assert "127.0.0.1 p3 x: 200 w 127.0.0.1:p3 " in text
    assert "via [::1] p1: 200 a ::1:p1 a" in text


OPTIONS = """
http {
    server { listen 127.0.0.1:{p0}; listen 127.0.0.1:{p1} backlog=9; listen 127.0.0.1:{p2}-{p3}; }
    server { listen 127.0.0.1:{p0} backlog=7; listen 127.0.0.1:{p1};
             listen 127.0.0.1:{p3}-{p4} backlog=5; }
}
"""


def ss_backlogs(base: int, count: int) -> list[str]:
    """p<i>: the backlog of the socket listening on base + i (the Send-Q column of `ss -lnt`)."""
    ss = shutil.which("ss") or "/usr/bin/ss"
    out = []
    for i in range(count):
        fields = subprocess.run([ss, "-Hlnt", f"sport = :{base + i}"], capture_output=True,
                                text=True, check=True).stdout.split()
        out.append(f"p{i}: {fields[2] if fields else 'none'}")
    return out


def test_socket_made_as_the_listen_that_sets_options(tmp_path):
    """A listen of an address with options (backlog=...) makes its socket whether it comes
    first or later; the other listens of the address only add their servers."""
    seen = {}
    for kind in KINDS:
        require_kind(kind)
        base = free_port_range(5, v6=False)
        params = {f"p{i}": base + i for i in range(5)}
        with ProxyProcess(kind, OPTIONS, fresh_prefix(tmp_path, kind), port=base, **params):
            seen[kind] = ss_backlogs(base, 5)
    assert seen["nginx"] == ["p0: 7", "p1: 9", "p2: 511", "p3: 5", "p4: 5"]
    assert seen["ngate"] == seen["nginx"]


SOCKET_OPTIONS = """
http {
    server { listen 127.0.0.1:{p0} sndbuf=32k rcvbuf=64k so_keepalive=30m:10:3 fastopen=7; }
    server { listen 127.0.0.1:{p1} so_keepalive=off; }
    server { listen 127.0.0.1:{p2}-{p3} so_keepalive=on sndbuf=8k; }
}
"""


def socket_facts(base: int, count: int) -> list[str]:
    """Per port: the listening socket's buffer sizes (ss's skmem rb/tb), and whether a
    connection accepted on it has a keepalive timer (so_keepalive)."""
    ss = shutil.which("ss") or "/usr/bin/ss"
    clients = [socket.create_connection(("127.0.0.1", base + i)) for i in range(count)]
    try:
        time.sleep(0.3)
        out = []
        for i in range(count):
            port = f"sport = :{base + i}"
            listening = subprocess.run([ss, "-Hltnm", port], capture_output=True, text=True,
                                       check=True).stdout
            mem = re.search(r"rb\d+,t\d+,tb\d+", listening)
            accepted = subprocess.run([ss, "-Htno", "state", "established", port],
                                      capture_output=True, text=True, check=True).stdout
            out.append(f"p{i}: {mem and mem.group(0)} keepalive={'keepalive' in accepted}")
        return out
    finally:
        for c in clients:
            c.close()


def test_socket_options_as_nginx(tmp_path):
    """rcvbuf=, sndbuf=, so_keepalive= reach the sockets (every port of a range) as nginx sets
    them."""
    seen = {}
    for kind in KINDS:
        require_kind(kind)
        base = free_port_range(4, v6=False)
        params = {f"p{i}": base + i for i in range(4)}
        with ProxyProcess(kind, SOCKET_OPTIONS, fresh_prefix(tmp_path, kind), port=base,
                          **params):
            seen[kind] = socket_facts(base, 4)
    assert seen["nginx"][0].endswith("tb65536 keepalive=True")
    assert seen["nginx"][1].endswith("keepalive=False")
    assert seen["ngate"] == seen["nginx"]


WILDCARD = """
http {
    server {
        listen {p0}-{p1};
        listen [::]:{p0} ipv6only=on;
        server_name w;
        location / { return 200 "w $server_addr:$server_port $server_name"; }
    }
    server {
        listen 127.0.0.1:{p0}-{p1};
        listen [::1]:{p0};
        server_name a;
        location / { return 200 "a $server_addr:$server_port $server_name"; }
    }
    server {
        listen 127.0.0.2:{p0} default_server;
        listen 127.0.0.3:{p1};
        server_name b;
        location / { return 200 "b $server_addr:$server_port $server_name"; }
    }
}
"""


def listening(base: int, count: int) -> list[str]:
    ss = shutil.which("ss") or "/usr/bin/ss"
    out = subprocess.run([ss, "-Hltn"], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        local = line.split()[3]
        host, _, port = local.rpartition(":")
        if port.isdigit() and 0 <= int(port) - base < count:
            found.add(f"{host}:p{int(port) - base}")
    return sorted(found)


def test_wildcard_serves_the_addresses_of_its_port(tmp_path):
    """`listen 80;` beside `listen 127.0.0.1:80;`: one socket, *:80 (the address has none of
    its own without `bind` or a socket option), and each connection gets the servers of the
    address it reached."""
    seen = {}
    for kind in KINDS:
        require_kind(kind)
        base = free_port_range(2)
        params = {f"p{i}": base + i for i in range(2)}
        with ProxyProcess(kind, WILDCARD, fresh_prefix(tmp_path, kind), port=base, **params):
            lines = listening(base, 2)
            for i in range(2):
                for addr in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"):
                    for name in ("a", "b", "w", "x"):
                        lines.append(f"{addr} p{i} {name}: {ask(addr, base + i, '/', name)}")
            seen[kind] = [re.sub(rf"(?<!\d)({base}|{base + 1})(?!\d)",
                                 lambda m: f"p{int(m.group(1)) - base}", line) for line in lines]
    assert seen["nginx"][:3] == ["0.0.0.0:p0", "0.0.0.0:p1", "[::]:p0"]
    assert "127.0.0.2 p0 x: 200 b 127.0.0.2:p0 b" in seen["nginx"]
    assert seen["ngate"] == seen["nginx"]
