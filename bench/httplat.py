"""Open-loop HTTP client: requests at a fixed rate over keep-alive connections, latency percentiles.

Usage: python -m bench.httplat --port P[,P2...] [--rate R] [--conns N] [--duration S]
                               [--slice S] [--path /] [--trace FILE] [--gc-trace FILE]

Request i is due at t0 + i/R. Its latency runs to the end of its response from its due time
(`p99`: includes this client's own timer lateness) and from when the client's loop submitted it
(`p99_submit`: the client's timer lateness taken out; a request waiting for a free connection
still counts from its submission, so a stalled proxy cannot hide its queueing: no coordinated
omission either way). uvloop's timers have millisecond resolution and this client shares its CPU
with the backend, so the lateness (`late_p50`/`late_p99`) is the client's noise, not the proxy's.

Several ports (`--port A,B`): the targets take turns, `--slice` seconds (default 0.1) each at
rate R, until each had `--duration` seconds (wall time = targets x duration): every target sees
the same machine (other processes' bursts fall on both), which one figure per proxy from
separate runs cannot give. One connection pool per target; their idle connections stay open.
A target's first requests after its idle turns are slower (caches went cold, the other proxy
ran on the same CPU meanwhile; ngate takes ~10 requests to be back at its median, nginx ~3):
`--warmup N` leaves the first N of each turn out of the figures (they are still sent).
Prints one JSON object on stdout: the figures (one port), or {"targets": [figures per port]}.
`run_delay_ms` = time this client waited for a CPU (/proc/self/schedstat) during the load.
"""
import argparse
import asyncio
import collections
import ctypes
import json
import os
import time

import httptools
import uvloop


class Client(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight (`job`: its number)."""
    __slots__ = ("transport", "parser", "job", "request", "bench", "pool")

    def __init__(self, bench, request, pool):
        self.bench, self.request, self.job, self.pool = bench, request, None, pool
        self.parser = httptools.HttpResponseParser(self)

    def connection_made(self, transport):
        self.transport = transport

    def send(self, job):
        self.job = job
        self.bench.sent[job] = time.monotonic()
        self.transport.write(self.request)

    def data_received(self, data):
        self.parser.feed_data(data)

    def on_message_complete(self):
        ok = self.parser.get_status_code() == 200
        self.bench.done(self, self.job, ok)

    def connection_lost(self, exc):
        self.bench.lost += 1


class Pool:
    """One target's connections: the idle ones, and requests waiting for one."""
    __slots__ = ("idle", "backlog")

    def __init__(self):
        self.idle, self.backlog = collections.deque(), collections.deque()


class Bench:
    """Request i: due[i] (its schedule), submitted[i] (when the client's loop got to it: its
    timer's lateness), sent[i] (written to a free connection), finished[i] (response complete;
    None: failed or not finished), target[i] (index of its port)."""

    def __init__(self, total):
        self.errors, self.lost, self.ok = 0, 0, 0
        self.due, self.submitted = [0.0] * total, [0.0] * total
        self.sent, self.finished = [0.0] * total, [None] * total
        self.target = [0] * total

    def done(self, client, job, ok):
        if ok:
            self.finished[job] = time.monotonic()
            self.ok += 1
        else:
            self.errors += 1
        pool = client.pool
        if pool.backlog:
            client.send(pool.backlog.popleft())
        else:
            pool.idle.append(client)

    def submit(self, i, due, pool):
        self.due[i], self.submitted[i] = due, time.monotonic()
        if pool.idle:
            pool.idle.popleft().send(i)
        else:
            pool.backlog.append(i)


class TimerFd:
    """Wake-ups at an absolute time.monotonic() instant with microsecond precision: a Linux
    timerfd (CLOCK_MONOTONIC, the clock of time.monotonic) read by the loop. uvloop's own
    timers count in whole milliseconds, which makes a request up to ~1 ms late."""

    class _Spec(ctypes.Structure):
        _fields_ = [("interval_s", ctypes.c_long), ("interval_ns", ctypes.c_long),
                    ("value_s", ctypes.c_long), ("value_ns", ctypes.c_long)]

    def __init__(self, loop):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.timerfd_create(1, os.O_NONBLOCK | os.O_CLOEXEC)  # CLOCK_MONOTONIC
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        self.loop, self.waiter = loop, None
        loop.add_reader(self.fd, self._fired)

    def _fired(self):
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def sleep_until(self, when):
        s = int(when)
        spec = self._Spec(0, 0, s, int((when - s) * 1e9))
        if self.libc.timerfd_settime(self.fd, 1, ctypes.byref(spec), None) < 0:  # ABSTIME
            raise OSError(ctypes.get_errno(), "timerfd_settime")
        self.waiter = self.loop.create_future()
        await self.waiter

    def close(self):
        self.loop.remove_reader(self.fd)
        os.close(self.fd)


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q / 100 * len(sorted_values)))]


def run_delay(pid="self"):
    """Seconds a process spent runnable but waiting for a CPU (/proc/PID/schedstat): how much
    the machine's other work delayed it."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def figures(bench, t, sent, per_turn, warmup):
    """The latency figures (ms) of target t's requests but the first `warmup` of each turn."""
    done = [(d, s, f) for i, (d, s, f, k) in enumerate(zip(bench.due, bench.submitted,
                                                           bench.finished, bench.target))
            if k == t and f is not None and i % per_turn >= warmup]
    lat = sorted(f - d for d, s, f in done)
    lat_submit = sorted(f - s for d, s, f in done)
    late = sorted(s - d for d, s, f in done)
    ms = {f"p{q}": (percentile(lat, q) or 0) * 1000 for q in (50, 90, 99, 99.9)}
    ms.update({f"p{q}_submit": (percentile(lat_submit, q) or 0) * 1000 for q in (50, 99, 99.9)})
    return {"sent": sent, "measured": len(lat), "max": (lat[-1] * 1000) if lat else None, **ms,
            "late_p50": (percentile(late, 50) or 0) * 1000,
            "late_p99": (percentile(late, 99) or 0) * 1000}


async def run(args):
    loop = asyncio.get_running_loop()
    ports = [int(p) for p in str(args.port).split(",")]
    n = len(ports)
    per_slice = max(1, round(args.slice * args.rate)) if n > 1 else 1
    per_target = -(-int(args.rate * args.duration) // per_slice) * per_slice
    total = per_target * n
    bench = Bench(total)
    request = f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    pools = [Pool() for _ in ports]
    for port, pool in zip(ports, pools):
        for _ in range(args.conns):
            _, c = await loop.create_connection(lambda: Client(bench, request, pool),
                                                "127.0.0.1", port)
            pool.idle.append(c)
    timer = TimerFd(loop) if args.timer == "timerfd" else None
    wait0 = run_delay()
    t0 = time.monotonic()
    for i in range(total):
        due = t0 + i / args.rate
        delay = due - time.monotonic()
        if timer is not None:
            if delay > 0:
                await timer.sleep_until(due)
        elif delay > 0.0005:
            await asyncio.sleep(delay)
        t = (i // per_slice) % n
        bench.target[i] = t
        bench.submit(i, due, pools[t])
    while bench.ok + bench.errors < total and bench.lost == 0:
        await asyncio.sleep(0.01)
        if time.monotonic() - t0 > n * args.duration + 10:
            break
    waited = run_delay() - wait0
    if timer is not None:
        timer.close()
    if args.trace:
        with open(args.trace, "w") as f:
            json.dump({"due": bench.due, "submitted": bench.submitted, "sent": bench.sent,
                       "finished": bench.finished, "target": bench.target}, f)
    common = {"rate": args.rate, "conns": args.conns, "errors": bench.errors,
              "lost": bench.lost, "run_delay_ms": waited * 1000, "unit": "ms"}
    ok = [sum(1 for f, k in zip(bench.finished, bench.target) if k == t and f is not None)
          for t in range(n)]
    turn = per_slice if n > 1 else total
    out = [{**common, "ok": ok[t], "warmup": args.warmup,
            **figures(bench, t, per_target, turn, args.warmup)} for t in range(n)]
    if n > 1:
        return {"targets": out, "slice_s": per_slice / args.rate}
    return out[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", required=True, help="a port, or ports (comma-separated) in turn")
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--conns", type=int, default=20, help="connections per port")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds of load per port")
    ap.add_argument("--slice", type=float, default=0.1, help="seconds per turn (several ports)")
    ap.add_argument("--warmup", type=int, default=0, help="requests at the start of each turn "
                    "(of the run, with one port) left out of the figures")
    ap.add_argument("--timer", choices=("uvloop", "timerfd"), default="uvloop",
                    help="how the client waits for a due time (timerfd: microseconds)")
    ap.add_argument("--path", default="/")
    ap.add_argument("--trace", help="write every request's due/submitted/sent/finished times "
                    "(time.monotonic) and target to this JSON file")
    ap.add_argument("--gc-trace", help="log this client's GC collections (bench/gctrace.py)")
    args = ap.parse_args()
    if args.gc_trace:
        from bench import gctrace
        gctrace.install(args.gc_trace)
    print(json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
