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
        self.transport.write(self.request)

    def data_received(self, data):
        self.parser.feed_data(data)

    def on_message_complete(self):
        ok = self.parser.get_status_code() == 200
        self.bench.done(self, time.monotonic() - self.due, ok)

    def connection_lost(self, exc):
        self.bench.lost += 1


class Bench:
    def __init__(self):
        self.idle = collections.deque()
        self.backlog = collections.deque()
        self.latencies, self.errors, self.lost = [], 0, 0

    def done(self, client, latency, ok):
        if ok:
            self.latencies.append(latency)
        else:
            self.errors += 1
        if self.backlog:
            client.send(self.backlog.popleft())
        else:
            self.idle.append(client)

    def submit(self, due):
        if self.idle:
            self.idle.popleft().send(due)
        else:
            self.backlog.append(due)


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(q / 100 * len(sorted_values)))]


async def run(args):
    loop = asyncio.get_running_loop()
    bench = Bench()
    request = f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    for _ in range(args.conns):
        _, c = await loop.create_connection(lambda: Client(bench, request), "127.0.0.1", args.port)
        bench.idle.append(c)
    total = int(args.rate * args.duration)
    t0 = time.monotonic()
    for i in range(total):
        due = t0 + i / args.rate
        delay = due - time.monotonic()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        bench.submit(due)
    while len(bench.latencies) + bench.errors < total and bench.lost == 0:
        await asyncio.sleep(0.01)
        if time.monotonic() - t0 > args.duration + 10:
            break
    lat = sorted(bench.latencies)
    ms = {f"p{q}": (percentile(lat, q) or 0) * 1000 for q in (50, 90, 99, 99.9)}
    return {"rate": args.rate, "conns": args.conns, "sent": total, "ok": len(lat),
            "errors": bench.errors, "lost": bench.lost, "max": (lat[-1] * 1000) if lat else None,
            **ms, "unit": "ms"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--conns", type=int, default=20)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--path", default="/")
    print(json.dumps(uvloop.run(run(ap.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
