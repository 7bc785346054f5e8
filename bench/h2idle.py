"""Memory per idle HTTP/2 connection, ngate trees and nginx side by side (issue 15):
`python -m bench.h2idle --trees A B --nginx --runs 3 [--conns 2000] [--tracemalloc]`.

Method (bench/PROFILE-http2.md, Session 6, idle memory): per run, per tree, per case a fresh
worker (`master_process off`, one process: what it holds is what the connections cost) is
warmed by 20 requests on 10 connections (per-process caches and lazy imports, not
per-connection memory) and closed; then N connections are opened one after the other and each
is checked as served before the next (the preface, an empty SETTINGS and the ACK of the
server's SETTINGS; the server's SETTINGS ACK read back, so the server has processed them, and,
in the `request` cases, one `GET /` answered first: the state a connection keeps once a
browser's page is loaded). (worker VmRSS with N idle - before) / N in KB; memory freed by the
warm-up is reused first, so the worker must not have held many connections before (a worker
that has held N connections and closed them shows ~0 for the next N: the allocator keeps what
it freed, which is why the figure must be taken on a fresh worker).

Cases: h2c and h2 over TLS (ALPN h2, ECDSA P-256, TLSv1.3), `idle` (no request) and
`request` (one request whose header block inserts :authority and user-agent into the HPACK
table, as curl, browsers and h2load do; nginx keeps its 4 KB table per connection then).
`--tracemalloc`: ngate trees run under tracemalloc (a thread takes snapshots on request): what
Python allocates per connection, by file and line (RSS is not measured in that mode).
"""
from __future__ import annotations

import argparse
import os
import socket
import ssl
import subprocess
import sys
import time

from .h2cpu import CONF, backend_nginx, free_port, rss_kb, wait_port

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
CASES = ("h2c idle", "h2c request", "h2 idle", "h2 request")
TRACER = """import os, sys, threading, time, tracemalloc
tracemalloc.start(int(os.environ.get("H2IDLE_FRAMES", "1")))
path = os.environ["H2IDLE_SNAP"]
def watch():
    while True:
        time.sleep(0.1)
        if os.path.exists(path + ".req"):
            name = open(path + ".req").read()
            os.unlink(path + ".req")
            tracemalloc.take_snapshot().dump(name)
            open(name + ".done", "w").close()
threading.Thread(target=watch, daemon=True).start()
sys.argv = ["ngate", *sys.argv[1:]]
import runpy
runpy.run_module("ngate", run_name="__main__", alter_sys=True)
"""


def _literal(index: int, value: bytes) -> bytes:
    """A field with incremental indexing, its name from the static table (index < 63)."""
    assert index < 63 and len(value) < 127
    return bytes([0x40 | index, len(value)]) + value


def request_block(tls: bool) -> bytes:
    """GET / as clients send it: :authority and user-agent go into the HPACK table."""
    return (b"\x82" + (b"\x87" if tls else b"\x86") + b"\x84"
            + _literal(1, b"127.0.0.1") + _literal(58, b"h2idle/1.0 (like curl and h2load)")
            + _literal(19, b"*/*"))


def headers_frame(sid: int, block: bytes) -> bytes:
    return len(block).to_bytes(3, "big") + b"\x01\x05" + sid.to_bytes(4, "big") + block


def read_frames(sock, want_ack: bool, want_end: int) -> None:
    """Read frames until the server's SETTINGS ACK (and the END_STREAM of stream want_end)."""
    buf = b""
    acked = not want_ack
    ended = not want_end
    while not (acked and ended):
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed by the server")
        buf += chunk
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            kind, flags, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff
            if kind == 4 and flags & 1:
                acked = True
            elif kind in (0, 1) and flags & 1 and sid == want_end:
                ended = True
            elif kind == 7:
                raise RuntimeError(f"GOAWAY {buf[9:9 + n]!r}")
            buf = buf[9 + n:]


def connect(port: int, tls: ssl.SSLContext | None, request: bool, sid: int = 1):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="bench.test")
        if sock.selected_alpn_protocol() != "h2":
            raise RuntimeError(f"ALPN: {sock.selected_alpn_protocol()}")
    out = PREFACE + SETTINGS + SETTINGS_ACK
    if request:
        out += headers_frame(sid, request_block(tls is not None))
    sock.sendall(out)
    read_frames(sock, True, sid if request else 0)
    return sock


def client_tls() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    return ctx


def open_many(port: int, tls, request: bool, n: int) -> list:
    return [connect(port, tls, request) for _ in range(n)]


def warm_up(port: int, tls) -> None:
    """20 requests on 10 connections, then closed."""
    socks = [connect(port, tls, True) for _ in range(10)]
    for s in socks:
        s.sendall(headers_frame(3, request_block(tls is not None)))
        read_frames(s, False, 3)
        s.close()
    time.sleep(0.3)


class Worker:
    """One worker (nginx or an ngate tree) on h2cpu's config, fresh per case."""

    def __init__(self, tree: str, prefix: str, backend: int, snap: str | None = None) -> None:
        self.port, self.tls_port = free_port(), free_port()
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(CONF.format(prefix=prefix, port=self.port, tls_port=self.tls_port,
                                backend=backend))
        env = None
        if tree == "nginx":
            argv = ["/usr/sbin/nginx", "-p", prefix, "-c", conf, "-e", prefix + "/e.log"]
        elif snap is not None:
            argv = [sys.executable, "-c", TRACER, "-p", prefix, "-c", conf]
            env = {**os.environ, "PYTHONPATH": os.path.abspath(tree), "H2IDLE_SNAP": snap}
        else:
            argv = [sys.executable, "-m", "ngate", "-p", prefix, "-c", conf]
            env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
        self.proc = subprocess.Popen(argv, env=env, cwd=prefix if tree != "nginx" else None,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.snap = snap
        wait_port(self.port)
        wait_port(self.tls_port)

    def snapshot(self, name: str):
        import tracemalloc
        for stale in (name, name + ".done"):
            if os.path.exists(stale):
                os.unlink(stale)
        with open(self.snap + ".req", "w") as f:
            f.write(name)
        deadline = time.monotonic() + 120
        while not os.path.exists(name + ".done"):
            if time.monotonic() > deadline:
                raise RuntimeError("no tracemalloc snapshot")
            time.sleep(0.1)
        return tracemalloc.Snapshot.load(name)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def measure(worker: Worker, case: str, n: int, tls_ctx) -> float:
    tls = tls_ctx if case.startswith("h2 ") else None
    port = worker.tls_port if tls else worker.port
    warm_up(port, tls)
    if worker.snap:
        before = worker.snapshot(worker.snap + ".before")
    else:
        before = rss_kb(worker.proc.pid)
    socks = open_many(port, tls, case.endswith("request"), n)
    time.sleep(0.5)
    try:
        if worker.snap:
            after = worker.snapshot(worker.snap + ".after")
            return report_tracemalloc(before, after, n)
        return (rss_kb(worker.proc.pid) - before) / n
    finally:
        for s in socks:
            s.close()


def report_tracemalloc(before, after, n: int) -> float:
    diff = after.compare_to(before, "lineno")
    total = sum(d.size_diff for d in diff)
    for d in diff[:25]:
        if abs(d.size_diff) < n * 8:
            break
        frame = d.traceback[0]
        print(f"    {d.size_diff / n:8.1f} B {d.count_diff / n:6.2f} blocks  "
              f"{frame.filename.rsplit('/', 3)[-3:]}:{frame.lineno}")
    return total / n / 1000


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", nargs="*", default=["."])
    ap.add_argument("--nginx", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--tracemalloc", action="store_true",
                    help="ngate trees only: Python allocations per connection (no RSS)")
    args = ap.parse_args(argv)
    trees = args.trees + (["nginx"] if args.nginx and not args.tracemalloc else [])
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.conns + 100 > hard:
        raise SystemExit(f"--conns {args.conns}: the fd limit is {hard}")
    tls_ctx = client_tls()
    with backend_nginx("h2idle-") as (root, cert, bport):
        results: dict = {}
        for run in range(args.runs):
            for case in cases:
                for i, tree in enumerate(trees):
                    prefix = os.path.join(root, f"t{i}")
                    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
                    cert.cert_chain_pems[0].write_to_path(os.path.join(prefix, "cert.pem"))
                    cert.private_key_pem.write_to_path(os.path.join(prefix, "key.pem"))
                    snap = os.path.join(prefix, "snap") if args.tracemalloc else None
                    if args.tracemalloc:
                        print(f"run {run} {tree} {case}: tracemalloc per connection")
                    worker = Worker(tree, prefix, bport, snap)
                    try:
                        kb = measure(worker, case, args.conns, tls_ctx)
                    finally:
                        worker.stop()
                    results.setdefault((case, tree), []).append(kb)
                    print(f"run {run} {tree:>24} {case:<12} {kb:6.2f} KB/connection",
                          flush=True)
        print(f"\nmedians, KB per idle connection ({args.conns} connections"
              f"{', Python allocations (tracemalloc)' if args.tracemalloc else ', RSS'}):")
        for (case, tree), values in results.items():
            values.sort()
            print(f"{case:<12} {tree:>24} {values[len(values) // 2]:7.2f}  "
                  f"{[round(v, 2) for v in values]}")


if __name__ == "__main__":
    main()
