"""Open-loop HTTP client: requests at a fixed rate over keep-alive connections, latency percentiles.

Usage: python -m bench.httplat --port P [--rate R] [--conns N] [--duration S] [--path /]
Request i is due at t0 + i/R; its latency runs from that due time (not from when a connection
became free) to the end of its response, so a stalled proxy cannot hide its queueing
(no coordinated omission). Prints one JSON object on stdout.
"""
import argparse
import asyncio
import collections
import json
import time

import httptools
import uvloop


class Client(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight (`due` is its due time)."""
    __slots__ = ("transport", "parser", "due", "request", "bench")

    def __init__(self, bench, request):
        self.bench, self.request, self.due = bench, request, None
        self.parser = httptools.HttpResponseParser(self)

    def connection_made(self, transport):
        self.transport = transport

    def send(self, due):
        self.due = due
        self.bench.sent[due[0]] = time.monotonic()
        self.transport.write(self.request)

    def data_received(self, data):
        self.parser.feed_data(data)

    def on_message_complete(self):
        ok = self.parser.get_status_code() == 200
        self.bench.done(self, self.due, ok)

    def connection_lost(self, exc):
        self.bench.lost += 1


class Bench:
    """Request i: due[i] (its schedule), submitted[i] (when the client's loop got to it: its
    timer's lateness), sent[i] (written to a free connection), finished[i] (response complete;
    None: failed or not finished)."""

    def __init__(self, total):
        self.idle = collections.deque()
        self.backlog = collections.deque()
        self.errors, self.lost, self.ok = 0, 0, 0
        self.due, self.submitted = [0.0] * total, [0.0] * total
        self.sent, self.finished = [0.0] * total, [None] * total

    def done(self, client, job, ok):
        if ok:
            self.finished[job[0]] = time.monotonic()
            self.ok += 1
        else:
            self.errors += 1
        if self.backlog:
            client.send(self.backlog.popleft())
        else:
            self.idle.append(client)

    def submit(self, i, due):
        self.due[i], self.submitted[i] = due, time.monotonic()
        job = (i, due)
        if self.idle:
            self.idle.popleft().send(job)
        else:
            self.backlog.append(job)


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q / 100 * len(sorted_values)))]


def run_delay(pid="self"):
    """Seconds this process spent runnable but waiting for a CPU (/proc/PID/schedstat):
    how much the machine's other work delayed it."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


async def run(args):
    loop = asyncio.get_running_loop()
    total = int(args.rate * args.duration)
    bench = Bench(total)
    request = f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    for _ in range(args.conns):
        _, c = await loop.create_connection(lambda: Client(bench, request), "127.0.0.1", args.port)
        bench.idle.append(c)
    wait0 = run_delay()
    t0 = time.monotonic()
    for i in range(total):
        due = t0 + i / args.rate
        delay = due - time.monotonic()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        bench.submit(i, due)
    while bench.ok + bench.errors < total and bench.lost == 0:
        await asyncio.sleep(0.01)
        if time.monotonic() - t0 > args.duration + 10:
            break
    waited = run_delay() - wait0
    if args.trace:
        with open(args.trace, "w") as f:
            json.dump({"due": bench.due, "submitted": bench.submitted, "sent": bench.sent,
                       "finished": bench.finished}, f)
    done = [(d, s, f) for d, s, f in zip(bench.due, bench.submitted, bench.finished)
            if f is not None]
    lat = sorted(f - d for d, s, f in done)
    ms = {f"p{q}": (percentile(lat, q) or 0) * 1000 for q in (50, 90, 99, 99.9)}
    late = sorted(s - d for d, s, f in done)
    return {"rate": args.rate, "conns": args.conns, "sent": total, "ok": len(lat),
            "errors": bench.errors, "lost": bench.lost, "max": (lat[-1] * 1000) if lat else None,
            **ms, "late_p50": (percentile(late, 50) or 0) * 1000,
            "late_p99": (percentile(late, 99) or 0) * 1000, "run_delay_ms": waited * 1000,
            "unit": "ms"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--conns", type=int, default=20)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--path", default="/")
    ap.add_argument("--trace", help="write every request's due/submitted/sent/finished times "
                    "(time.monotonic) to this JSON file")
    ap.add_argument("--gc-trace", help="log this client's GC collections (bench/gctrace.py)")
    args = ap.parse_args()
    if args.gc_trace:
        from bench import gctrace
        gctrace.install(args.gc_trace)
    print(json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
