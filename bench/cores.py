"""Multi-core: what each worker costs per request with `worker_processes 1` and `2`.

Usage: python -m bench.cores [--duration 5] [--runs 3] [--conns 50]

A cheap load (one wrk thread, keep-alive, `return 200 "ok\\n"`: no backend to share the CPUs
with), the same nginx.conf for nginx and ngate with only `worker_processes` changed, each run a
fresh proxy; nginx and ngate alternate. Every worker's CPU time is read from /proc before and
after the load, so each run gives:

- req/s (what wrk saw) and the CPU of each worker (% of one core) with the share of requests
  it served (its share of the workers' CPU time, assuming equal cost per request);
- with `--reuseport` each worker has its own listening socket and the kernel spreads the
  connections; without it they share one socket and whoever accepts first takes them (nginx's
  default `accept_mutex off` lets one worker take all 50 connections of this load);
- us/req: the workers' CPU time per request, all workers together. If it is the same with two
  workers as with one, a second worker adds no cost per request (no lock, no shared state on
  the request path), and on dedicated cores the throughput grows with the workers as long as
  the connections split between them: capacity = workers x 10^6 / (us/req), capped by the
  busiest worker's share (printed as "projected on N dedicated cores").

On this 2-core machine the load generator needs a core: with 1 worker the proxy is pinned to
the first CPU and wrk to the second (as the main figures); with 2 workers both workers may run
on both CPUs and wrk too (nothing is pinned), so the measured req/s is what 2 workers get while
sharing the machine with wrk, and the projection is the figure to compare with nginx's.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from .loads import check_wrk, parse_wrk
from .procs import CLK_TCK, free_port, wait_port

CONF = """worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096{reuseport};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])       # utime + stime


def _workers(master: int, n: int) -> list:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        if len(pids) >= n:
            return pids[:n]
        time.sleep(0.1)
    raise RuntimeError(f"{n} workers not found under {master}")


def one_run(proxy: str, workers: int, duration: float, conns: int, reuseport: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-cores-") as prefix:
        os.chmod(prefix, 0o755)
        os.makedirs(os.path.join(prefix, "logs"))
        port = free_port()
        path = os.path.join(prefix, "nginx.conf")
        with open(path, "w") as f:
            f.write(CONF.format(workers=workers, prefix=prefix, port=port,
                                reuseport=" reuseport" if reuseport else ""))
        argv = (["/usr/sbin/nginx"] if proxy == "nginx" else [sys.executable, "-m", "ngate"]) + [
            "-p", prefix + "/", "-c", path, "-g", "daemon off;"]
        pin = ["taskset", "-c", "0"] if workers == 1 else ["taskset", "-c", "0,1"]
        load_pin = ["taskset", "-c", "1"] if workers == 1 else ["taskset", "-c", "0,1"]
        master = subprocess.Popen(pin + argv, cwd=ROOT, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port, proc=master)
            pids = _workers(master.pid, workers)
            time.sleep(0.5)
            before = [_cpu_ticks(p) for p in pids]
            out = subprocess.run(load_pin + ["wrk", "-t1", f"-c{conns}", f"-d{duration:g}s",
                                             f"http://127.0.0.1:{port}/"],
                                 capture_output=True, text=True, timeout=duration + 30).stdout
            after = [_cpu_ticks(p) for p in pids]
        finally:
            master.terminate()
            try:
                master.wait(timeout=10)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait()
    raw = check_wrk(parse_wrk(out))
    cpu = [(a - b) / CLK_TCK for a, b in zip(after, before)]
    total = sum(cpu)
    requests = raw["requests"]
    return {"rps": raw["requests_per_sec"], "cpu_pct": [c * 100 / duration for c in cpu],
            "us_per_req": total * 1e6 / requests if requests else None,
            "busiest_share": max(cpu) / total if total else None}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--proxies", default="nginx,ngate")
    ap.add_argument("--reuseport", action="store_true",
                    help="`listen ... reuseport`: the kernel spreads the connections over the "
                         "workers (without it nginx's first awake worker often takes them all)")
    args = ap.parse_args(argv)
    proxies = args.proxies.split(",")
    runs = {(p, w): [] for p in proxies for w in (1, 2)}
    for i in range(args.runs):
        for w in (1, 2):
            for p in proxies:
                r = one_run(p, w, args.duration, args.conns, args.reuseport)
                runs[p, w].append(r)
                print(f"  run {i + 1}/{args.runs} {p:<6} workers={w}: {r['rps']:8.0f} req/s, "
                      f"{r['us_per_req']:.2f} us/req, worker CPU% "
                      + " ".join(f"{c:.0f}" for c in r["cpu_pct"]), file=sys.stderr, flush=True)
    print(f"{'proxy':<6} {'workers':>7} {'req/s':>8} {'us/req':>7} {'worker CPU%':>14} "
          f"{'busiest':>8} {'projected on N dedicated cores':>31}")
    med = {}
    for p in proxies:
        for w in (1, 2):
            rs = runs[p, w]
            rps = statistics.median(r["rps"] for r in rs)
            us = statistics.median(r["us_per_req"] for r in rs)
            share = statistics.median(r["busiest_share"] for r in rs)
            cpu = [statistics.median(col) for col in zip(*(r["cpu_pct"] for r in rs))]
            # the busiest worker saturates its core first: it serves `share` of the requests
            projected = 1e6 / us / share if w > 1 else 1e6 / us
            med[p, w] = (rps, us, projected)
            print(f"{p:<6} {w:>7} {rps:8.0f} {us:7.2f} {' '.join(f'{c:.0f}' for c in cpu):>14} "
                  f"{share:8.2f} {projected:31.0f}")
    for p in proxies:
        print(f"{p}: measured w2/w1 {med[p, 2][0] / med[p, 1][0]:.2f}x, us/req w2/w1 "
              f"{med[p, 2][1] / med[p, 1][1]:.2f}x, projected w2/w1 "
              f"{med[p, 2][2] / med[p, 1][2]:.2f}x")


if __name__ == "__main__":
    main()
