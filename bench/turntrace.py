"""Where a proxy worker's time goes inside each loop turn at a fixed rate, from its syscalls:
`python -m bench.turntrace --pid WORKER_PID --port PROXY_PORT [--seconds 3] [--rate 1000]`.

Runs bench/httplat.py (timerfd client, 20 keep-alive connections, pinned to CPU 1) against the
port while the kernel's raw_syscalls tracepoints record the worker's syscalls (ftrace, filtered
on its pid, CLOCK_MONOTONIC: ~1 us of overhead per syscall, where strace's ptrace stops add ~10
and perf trace's ~20). Needs root and tracefs (/sys/kernel/tracing). Start the proxy yourself
(e.g. from bench/conf.py's template, proxy pinned to CPU 0), for nginx and ngate alike.

A turn is the time from the return of the worker's outer epoll wait to its next call. Turns of
one request are classified by their syscalls: a request turn reads a client request and
writes the upstream head; a response turn reads an upstream response and writes the client's
(ngate's Poller adds a nested epoll_wait to the turn of a raw-socket upstream connection).
Printed per kind, median / p90 / p99 in us: wake -> the write's entry (the proxy's part of the
request's latency in that turn), the write's exit -> the next wait (work after the write),
and every turn's busy time. bench/PROFILE.md, Session 12 (s12-p99) has the figures.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

T = "/sys/kernel/tracing"
ENTER = re.compile(r"\s(\d+\.\d+): sys_enter: NR (\d+) \(([0-9a-f]+)")
EXIT = re.compile(r"\s(\d+\.\d+): sys_exit: NR (\d+) = (-?\d+)")
OUTER = (281, 232)          # epoll_pwait (uvloop), epoll_wait (nginx); ngate's Poller: 232 nested
READS = (0, 45)             # read, recvfrom
WRITES = (1, 20, 44)        # write, writev, sendto


def _w(name: str, value: str) -> None:
    with open(os.path.join(T, name), "w") as f:
        f.write(value)


def record(pid: int, port: int, seconds: float, rate: int) -> list:
    """[(enter us, exit us, syscall nr, return value)] of the worker during the load."""
    _w("tracing_on", "0")
    _w("trace", "")
    _w("buffer_size_kb", "16384")
    _w("trace_clock", "mono")
    for ev in ("sys_enter", "sys_exit"):
        _w(f"events/raw_syscalls/{ev}/filter", f"common_pid == {pid}")
        _w(f"events/raw_syscalls/{ev}/enable", "1")
    _w("tracing_on", "1")
    try:
        subprocess.run(["taskset", "-c", "1", sys.executable,
                        os.path.join(os.path.dirname(__file__), "httplat.py"), "--port",
                        str(port), "--rate", str(rate), "--conns", "20", "--duration",
                        str(seconds), "--timer", "timerfd"], check=True, stdout=subprocess.DEVNULL)
    finally:
        _w("tracing_on", "0")
        for ev in ("sys_enter", "sys_exit"):
            _w(f"events/raw_syscalls/{ev}/enable", "0")
            _w(f"events/raw_syscalls/{ev}/filter", "0")
        with open(os.path.join(T, "trace")) as f:
            text = f.read()
        _w("trace", "")
    calls, cur = [], None
    for line in text.splitlines():
        m = ENTER.search(line)
        if m:
            cur = (float(m[1]) * 1e6, int(m[2]))
            continue
        m = EXIT.search(line)
        if m and cur is not None and int(m[2]) == cur[1]:
            calls.append((cur[0], float(m[1]) * 1e6, cur[1], int(m[3])))
            cur = None
    return calls


def turns(calls: list, nginx: bool):
    """Each turn: (wake us, next wait's entry us, the syscalls in between)."""
    outer = (232,) if nginx else (281,)
    idx = [i for i, c in enumerate(calls) if c[2] in outer]
    for a, b in zip(idx, idx[1:]):
        yield calls[a][1], calls[b][0], [c for c in calls[a + 1:b] if c[2] != 55]   # getsockopt


def summarize(calls: list, nginx: bool) -> dict:
    kinds = {"request": ([], []), "response": ([], [])}
    busy = []
    for wake, nxt, inner in turns(calls, nginx):
        busy.append(nxt - wake)
        io = [c for c in inner if c[2] != 232]
        if len(io) != 2 or io[0][2] not in READS or io[1][2] not in WRITES:
            continue
        kind = "response" if io[0][3] > 100 else "request"     # a 150-byte response, 35-byte GET
        kinds[kind][0].append(io[1][0] - wake)
        kinds[kind][1].append(nxt - io[1][1])
    out = {}
    for kind, (before, after) in kinds.items():
        out[f"{kind}: wake -> write"] = before
        out[f"{kind}: write -> next wait"] = after
    out["all turns: busy"] = busy
    return out


def q(values: list) -> str:
    if not values:
        return "-"
    v = sorted(values)
    n = len(v)
    return f"{v[n // 2]:.0f} / {v[int(n * .9)]:.0f} / {v[int(n * .99)]:.0f} (n={n})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pid", type=int, required=True, help="the worker process")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--nginx", action="store_true", help="the worker is nginx's (epoll_wait)")
    args = ap.parse_args()
    calls = record(args.pid, args.port, args.seconds, args.rate)
    for name, values in summarize(calls, args.nginx).items():
        print(f"{name:32} {q(values)}")
    print(f"{'busy ms in all':32} {sum(summarize(calls, args.nginx)['all turns: busy']) / 1000:.1f}")


if __name__ == "__main__":
    main()
