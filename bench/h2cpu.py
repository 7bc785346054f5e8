"""Worker CPU per HTTP/2 request and idle memory per HTTP/2 connection, for A/B runs of two
ngate trees (bench/PROFILE-http2.md's method): `python -m bench.h2cpu --trees A B --runs 3`.

One worker (`master_process off`, `access_log off`) per tree in turn, alternated run by run;
per run: h2load warm-up (2000 requests), then `h2load -n N -c10 -m10 -t1`, and the worker's
utime+stime from /proc/PID/stat over the measured run divided by the requests. Cases:
h2c and h2 over TLS on `return 200 "ok\\n"` and proxied to a keep-alive HTTP/1.1 backend
(Debian's nginx, `return 200`). `--idle N`: N cleartext HTTP/2 connections that sent the
preface, SETTINGS and the SETTINGS ACK, then (worker RSS after - before) / N, on a fresh
worker (one that ran the CPU cases first reuses what they freed and shows far less: nginx 1.0
instead of 1.6 KB); bench/h2idle.py has the full idle method (TLS, after a request).
`--nginx` adds /usr/sbin/nginx as a tree named "nginx". The machine is shared: read ratios.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time

CONF = """worker_processes 1;
master_process off;
daemon off;
error_log {prefix}/error.log error;
pid {prefix}/nginx.pid;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port} http2;
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {prefix}/cert.pem;
        ssl_certificate_key {prefix}/key.pem;
        http2_max_concurrent_streams 128;
        location = / {{ return 200 "ok\\n"; }}
        location /p {{
            proxy_pass http://backend/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
BACKEND = """worker_processes 1;
daemon off;
error_log {prefix}/backend-error.log error;
pid {prefix}/backend.pid;
events {{}}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}
}}
"""
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Server:
    def __init__(self, tree: str, prefix: str, backend: int) -> None:
        self.port, self.tls_port = free_port(), free_port()
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(CONF.format(prefix=prefix, port=self.port, tls_port=self.tls_port,
                                backend=backend))
        if tree == "nginx":
            argv = ["/usr/sbin/nginx", "-p", prefix, "-c", conf, "-e", prefix + "/e.log"]
            env = None
        else:
            argv = [sys.executable, "-m", "ngate", "-p", prefix, "-c", conf]
            env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
        self.proc = subprocess.Popen(argv, env=env, cwd=prefix if tree != "nginx" else None,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        wait_port(self.tls_port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def h2load(url: str, n: int) -> int:
    out = subprocess.run(["h2load", "-n", str(n), "-c10", "-m10", "-t1", url],
                         capture_output=True, text=True, timeout=600).stdout
    for line in out.splitlines():
        if line.startswith("requests:"):
            return int(line.split()[7])         # succeeded
    raise RuntimeError(out[-400:])


def per_request(server: Server, case: str, n: int) -> float:
    scheme, port = ("https", server.tls_port) if case.startswith("h2 ") else \
        ("http", server.port)
    url = f"{scheme}://127.0.0.1:{port}{'/p' if 'proxy' in case else '/'}"
    h2load(url, 2000)
    before = cpu_seconds(server.proc.pid)
    done = h2load(url, n)
    return (cpu_seconds(server.proc.pid) - before) / done * 1e6


def idle_kb(server: Server, conns: int) -> float:
    time.sleep(0.5)
    before = rss_kb(server.proc.pid)
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                  + b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
        socks.append(s)
    time.sleep(2)
    after = rss_kb(server.proc.pid)
    for s in socks:
        s.close()
    return (after - before) / conns



@contextlib.contextmanager
def backend_nginx(prefix: str):
    """(root, cert, port): a scratch directory, an ECDSA certificate for bench.test and the
    backend nginx (BACKEND) listening on port, stopped and removed on exit."""
    import trustme
    with tempfile.TemporaryDirectory(prefix=prefix) as root:
        os.chmod(root, 0o755)
        cert = trustme.CA().issue_cert("bench.test", key_type=trustme.KeyType.ECDSA)
        bport = free_port()
        with open(os.path.join(root, "backend.conf"), "w") as f:
            f.write(BACKEND.format(prefix=root, port=bport))
        backend = subprocess.Popen(["/usr/sbin/nginx", "-p", root, "-c", root + "/backend.conf",
                                    "-e", root + "/be.log"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            wait_port(bport)
            yield root, cert, bport
        finally:
            backend.terminate()
            backend.wait(10)

def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", nargs="+", default=["."])
    ap.add_argument("--nginx", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("-n", type=int, default=20000)
    ap.add_argument("--cases", default="h2c return,h2 return,h2c proxy,h2 proxy")
    ap.add_argument("--idle", type=int, default=0)
    args = ap.parse_args(argv)
    trees = args.trees + (["nginx"] if args.nginx else [])
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    with backend_nginx("h2cpu-") as (root, cert, bport):
        results: dict = {}
        for run in range(args.runs):
            for i, tree in enumerate(trees):
                prefix = os.path.join(root, f"t{i}")
                os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
                cert.cert_chain_pems[0].write_to_path(os.path.join(prefix, "cert.pem"))
                cert.private_key_pem.write_to_path(os.path.join(prefix, "key.pem"))
                server = Server(tree, prefix, bport)
                try:
                    for case in cases:
                        us = per_request(server, case, args.n)
                        results.setdefault((tree, case), []).append(us)
                        print(f"run {run} {tree:>24} {case:<10} {us:7.1f} us/request",
                              flush=True)
                    if args.idle:
                        server.stop()
                        server = Server(tree, prefix, bport)
                        kb = idle_kb(server, args.idle)
                        results.setdefault((tree, "idle KB/conn"), []).append(kb)
                        print(f"run {run} {tree:>24} idle {kb:6.2f} KB/connection", flush=True)
                finally:
                    server.stop()
        print("\nmedians:")
        for (tree, case), values in sorted(results.items(), key=lambda kv: kv[0][1]):
            values.sort()
            print(f"{case:<14} {tree:>24} {values[len(values) // 2]:8.2f}  {values}")


if __name__ == "__main__":
    main()
