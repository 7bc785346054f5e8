"""The Python cost of one HTTP/2 stream, without sockets: `python -m bench.h2hotpath`.

bench/hotpath.py's method for HTTP/2: an Http2Connection on a fake transport inside a real
uvloop loop is fed what h2load sends (the preface, SETTINGS with a 2^30-1 stream window, the
connection WINDOW_UPDATE, then header blocks from an HPACK encoder as nghttp2's: the first
block inserts its fields in the dynamic table, the next ones are indexes). `return` (default):
rounds of 10 HEADERS frames (END_STREAM) in one read, answered by `return 200 "ok\\n"` in that
read's one write (as h2load -m10). `--proxy`: one stream per round through `proxy_pass` to a
pooled keep-alive upstream on a fake transport, whose response is fed back; the loop turn's
callbacks (the connection's flush_later) run after each feed. Syscalls, TLS and the event
loop are excluded: the figure (process CPU us per stream, best and median of the rounds) shows
what ngate's own code costs. With a profiler: `python -m cProfile -s tottime -m bench.h2hotpath`.
"""
from __future__ import annotations

import argparse
import tempfile
import time

from bench.hotpath import RESPONSE, FakeTransport, Written, _pooled, _runtime, _use_loop

CONF = """
events {}
http {
    access_log off;
    keepalive_requests 1000000;
    upstream backend { server 127.0.0.1:9; keepalive 32; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:8080 http2;
        http2_max_concurrent_streams 128;
        location = / { return 200 "ok\\n"; }
        location /p {
            proxy_pass http://backend/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
"""
STREAMS = 10        # h2load -m10


def _client_frames(path: bytes, streams: int):
    """(the connection's start, a function giving the frames of `streams` new requests)."""
    import hpack

    from ngate.http2.frames import PREFACE
    enc = hpack.Encoder()
    fields = [(b":method", b"GET"), (b":path", path), (b":scheme", b"http"),
              (b":authority", b"127.0.0.1:8080"), (b"accept", b"*/*"),
              (b"accept-encoding", b"gzip, deflate"), (b"user-agent", b"h2load nghttp2/1.52.0")]
    settings = (4).to_bytes(2, "big") + (2 ** 30 - 1).to_bytes(4, "big")
    start = (PREFACE + len(settings).to_bytes(3, "big") + b"\x04\x00" + bytes(4) + settings
             + b"\x00\x00\x04\x08\x00" + bytes(4) + (2 ** 30 - 65536).to_bytes(4, "big")
             + b"\x00\x00\x00\x04\x01" + bytes(4))        # SETTINGS ACK
    sid = -1

    def requests() -> bytes:
        nonlocal sid
        out = []
        for _ in range(streams):
            sid += 2
            block = enc.encode(fields)
            out.append(len(block).to_bytes(3, "big") + b"\x01\x05" + sid.to_bytes(4, "big")
                       + block)
        return b"".join(out)
    return start, requests


def run_return(n: int) -> float:
    from ngate.http2.connection import Http2Connection

    with tempfile.TemporaryDirectory() as prefix:
        _config, loop, runtime, listen = _runtime(prefix, CONF)
        start, requests = _client_frames(b"/", STREAMS)
        rounds = [requests() for _ in range(n // STREAMS)]

        async def drive() -> float:
            conn = Http2Connection(runtime, listen)
            t = FakeTransport()
            conn.connection_made(t)
            conn.data_received(start)
            t.written = Written()      # the preface's answer (SETTINGS) not counted
            t0 = time.process_time()
            for data in rounds:
                conn.data_received(data)
            elapsed = time.process_time() - t0
            assert len(t.written) == len(rounds) and t.written[-1].endswith(b"ok\n")
            assert not t.closed and not conn.streams
            return elapsed

        elapsed = loop.run_until_complete(drive())
        loop.close()
        return elapsed / (len(rounds) * STREAMS) * 1e6


def run_proxy(n: int) -> float:
    import uvloop

    from ngate.http2.connection import Http2Connection

    class Loop(uvloop.Loop):
        """call_soon queues for the drive below while it runs: one loop turn after each feed."""
        soon: list = []
        capture = False

        def call_soon(self, callback, *args, context=None):
            if not Loop.capture:
                return super().call_soon(callback, *args, context=context)
            Loop.soon.append((callback, args))

    with tempfile.TemporaryDirectory() as prefix:
        config, _loop, runtime, listen = _runtime(prefix, CONF)
        _loop.close()
        loop = _use_loop(runtime, Loop())     # (the turn batches' loop too: HeadWrites)
        uconn, up_t = _pooled(config, runtime, "backend", 32)
        start, requests = _client_frames(b"/p", 1)
        rounds = [requests() for _ in range(n)]
        soon = Loop.soon

        def turn() -> None:
            while soon:
                callback, args = soon.pop(0)
                callback(*args)

        async def drive() -> float:
            Loop.capture = True
            conn = Http2Connection(runtime, listen)
            t = FakeTransport()
            conn.connection_made(t)
            conn.data_received(start)
            turn()
            t.written = Written()      # the preface's answer (SETTINGS) not counted
            t0 = time.process_time()
            for data in rounds:
                conn.data_received(data)
                turn()
                uconn.data_received(RESPONSE)
                turn()
            elapsed = time.process_time() - t0
            assert len(t.written) == n and t.written[-1].endswith(b"ok\n")
            assert len(up_t.written) == n and not t.closed and not conn.streams
            Loop.capture = False
            return elapsed

        elapsed = loop.run_until_complete(drive())
        loop.close()
        return elapsed / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50_000, help="streams per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--proxy", action="store_true", help="proxy_pass to a kept upstream")
    args = ap.parse_args()
    run = run_proxy if args.proxy else run_return
    figures = sorted(run(args.n) for _ in range(args.rounds))
    print(f"{'proxy' if args.proxy else 'return'}: {figures[0]:.2f} us per stream (best), "
          f"median {figures[len(figures) // 2]:.2f}")


if __name__ == "__main__":
    main()
