"""Worker CPU per request of HTTP/1.x loads, for paired A/B runs of two ngate trees:
`python -m bench.h1cpu --ref main [--loads close,ws,keepalive] [--runs 6] [--seconds 3]`.

Both proxies (the ref's tree, exported with git archive, and this working tree) run at once
on bench/conf.py's proxy config (one worker, pinned to CPU 0) in front of the same backends
(Debian's nginx and bench/wsecho.py, CPU 1); each run drives one load at each proxy in turn
(A B, then B A the next run), and the figure of a run is the worker's utime+stime
(/proc/PID/stat) over the load divided by the requests (or handshakes) it served. The machine
is shared: the paired order and the medians of many short runs are what make two trees'
figures comparable (bench/PROFILE.md, Session 10 (s10-connsetup)).

Loads: close = wrk -t1 -c50 with `Connection: close` (http_close), keepalive = wrk -t1 -c50
(http_keepalive), ws = bench/wsload.py handshake --conns 50 (ws_handshake), wsecho =
bench/wsload.py echo --conns 50 (ws_roundtrip: 64-byte messages through 50 open tunnels; the
figure is per message), https = wrk -t1 -c50 over TLSv1.3 to a `return 200 "ok\\n"`
(https_keepalive's location, in a `listen ... ssl` server added to the config), return = wrk
-t1 -c50 to the same `return` over plain HTTP, static = wrk -t1 -c50 to a 1 KiB file (static_1k's
server: a root, no location, keepalive_requests 1000000).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from bench import conf as bconf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROXY_CPU = ["taskset", "-c", "0"]
LOAD_CPU = ["taskset", "-c", "1"]
TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _wait_port(port: int, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _worker(master: int) -> int:
    for _ in range(100):
        out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
        if out.split():
            return int(out.split()[0])
        time.sleep(0.1)
    raise RuntimeError("no worker")


# https and return: bench/tls.py's location (a `return`), in servers of their own on the
# proxy's port + 1 (TLS) and + 2 (plain)
EXTRA_SERVERS = """
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {prefix}/cert.pem;
        ssl_certificate_key {prefix}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        keepalive_requests 1000;
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{return_port};
        keepalive_requests 1000;
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{static_port};
        keepalive_requests 1000000;
        root {prefix}/www;
    }}
}}
"""


def _add_servers(path: str, prefix: str, tls_port: int, return_port: int) -> None:
    """The https, return and static loads' servers, appended inside the proxy config's http
    block (static's on return_port + 1, its 1 KiB file in prefix/www)."""
    from bench.tlshot import _certs
    _certs(prefix)
    www = os.path.join(prefix, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "1k.txt"), "wb") as f:
        f.write(os.urandom(1024))
    for d in (prefix, www):
        os.chmod(d, 0o755)
    os.chmod(os.path.join(www, "1k.txt"), 0o644)
    with open(path) as f:
        text = f.read().rstrip()
    assert text.endswith("}")
    with open(path, "w") as f:
        f.write(text[:-1] + EXTRA_SERVERS.format(prefix=prefix, tls_port=tls_port,
                                                 return_port=return_port,
                                                 static_port=return_port + 1))


def _load(kind: str, port: int, seconds: float) -> int:
    url = f"http://127.0.0.1:{port}/"
    if kind == "https":
        url = f"https://127.0.0.1:{port + 1}/"
    elif kind == "return":
        url = f"http://127.0.0.1:{port + 2}/"
    elif kind == "static":
        url = f"http://127.0.0.1:{port + 3}/1k.txt"
    if kind in ("close", "keepalive", "https", "return", "static"):
        cmd = ["wrk", "-t1", "-c50", f"-d{seconds:g}s"]
        if kind == "close":
            cmd += ["-H", "Connection: close"]
        out = subprocess.run(LOAD_CPU + cmd + [url], capture_output=True, text=True).stdout
        return int(re.search(r"(\d+) requests in", out).group(1))
    mode, key = ("echo", "messages") if kind == "wsecho" else ("handshake", "handshakes")
    out = subprocess.run(LOAD_CPU + [sys.executable, "-m", "bench.wsload", mode, "--port",
                                     str(port), "--duration", f"{seconds:g}", "--conns", "50"],
                         capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])[key]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="main", help="the A tree (B is this working tree)")
    ap.add_argument("--loads", default="close,ws,keepalive")
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ngate-h1cpu-")
    os.chmod(tmp, 0o755)
    procs = []
    try:
        tree_a = os.path.join(tmp, "a")
        os.mkdir(tree_a)
        archive = subprocess.run(["git", "-C", ROOT, "archive", args.ref], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", tree_a], input=archive, check=True)
        bprefix = os.path.join(tmp, "backend")
        os.makedirs(os.path.join(bprefix, "logs"))
        http_port, ws_port = _free_port(), _free_port()
        bpath = bconf.write_backend(bprefix, http_port)
        procs.append(subprocess.Popen(LOAD_CPU + ["/usr/sbin/nginx", "-p", bprefix, "-c", bpath,
                                                  "-g", "daemon off;"], start_new_session=True))
        procs.append(subprocess.Popen(LOAD_CPU + [sys.executable, "-m", "bench.wsecho",
                                                  str(ws_port)], start_new_session=True, cwd=ROOT))
        _wait_port(http_port)
        _wait_port(ws_port)
        proxies = {}
        for name, tree in (("A " + args.ref, tree_a), ("B worktree", ROOT)):
            prefix = os.path.join(tmp, name.split()[0])
            os.makedirs(os.path.join(prefix, "logs"))
            while True:     # four free ports in a row: the proxy's, https's, return's, static's
                port = _free_port()
                if all(_port_free(p) for p in (port + 1, port + 2, port + 3)):
                    break
            path = bconf.write_proxy(prefix, port, http_port, ws_port)
            _add_servers(path, prefix, port + 1, port + 2)
            master = subprocess.Popen(PROXY_CPU + [sys.executable, "-m", "ngate", "-p", prefix,
                                                   "-c", path, "-g", "daemon off;"],
                                      start_new_session=True, cwd=tree,
                                      env=dict(os.environ, PYTHONPATH=tree))
            procs.append(master)
            for p in (port, port + 1, port + 2, port + 3):
                _wait_port(p)
            proxies[name] = (port, _worker(master.pid))
        names = list(proxies)
        figures = {(k, n): [] for k in args.loads.split(",") for n in names}
        for kind in args.loads.split(","):
            for n in names:                 # warm-up
                _load(kind, proxies[n][0], 1)
            for run in range(args.runs):
                for n in (names if run % 2 == 0 else names[::-1]):
                    port, pid = proxies[n]
                    c0 = _cpu(pid)
                    done = _load(kind, port, args.seconds)
                    figures[(kind, n)].append((_cpu(pid) - c0) * 1e6 / max(done, 1))
            a, b = (statistics.median(figures[(kind, n)]) for n in names)
            print(f"{kind:10s} us/req  {names[0]}: {a:6.1f}  {names[1]}: {b:6.1f}  "
                  f"B/A {b / a:.3f}   runs A {[round(x, 1) for x in figures[(kind, names[0])]]}"
                  f" B {[round(x, 1) for x in figures[(kind, names[1])]]}", flush=True)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
