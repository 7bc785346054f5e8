"""WebSocket round-trip latency through the proxy: over HTTP/2 (RFC 8441 extended CONNECT, an
ngate extension) next to HTTP/1.1 (Upgrade), with nginx over HTTP/1.1 as the reference.
`python -m bench.h2ws [--trees .] [--messages 2000] [--size 64] [--runs 3]`

One worker per proxy (`master_process off`), the same nginx.conf (a cleartext HTTP/1.1 socket
and a prior-knowledge HTTP/2 one (`listen ... http2`), `location /ws` proxied to
bench/wsecho.py with the seed's Upgrade recipe). One client connection per case sends a masked
64-byte WebSocket frame and waits for the echo (the backend echoes bytes), `--messages` times
in a row; the figures are the median and p99 round-trip times in microseconds. HTTP/2 frames
are packed by hand (HPACK by ngate's stateless encoder: a client needs no more), the client
opens its windows to 2^31-1 at once so only the proxy's flow control is in the way.
"""
from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

from bench.h2cpu import free_port, wait_port

CONF = """worker_processes 1;
master_process off;
daemon off;
error_log {prefix}/error.log error;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{h2_port} http2;
        location /ws {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def ws_frame(size: int) -> bytes:
    """A masked binary frame (client to server) of `size` payload bytes (< 126)."""
    return bytes((0x82, 0x80 | size)) + b"\x01\x02\x03\x04" + os.urandom(size)


def h2_frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", sid) \
        + payload


def recv_exact(sock, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        buf += data
    out = bytes(buf[:n])
    del buf[:n]
    return out


class H1:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        self.buf = bytearray()
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(head)
        self.buf = bytearray(rest)

    def roundtrip(self, frame: bytes) -> None:
        self.sock.sendall(frame)
        recv_exact(self.sock, len(frame), self.buf)


class H2:
    def __init__(self, port: int) -> None:
        from ngate.http2.hpack_out import StatelessEncoder
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.sock.sendall(PREFACE + h2_frame(4, 0, 0, struct.pack(">HI", 4, 2 ** 31 - 1))
                          + h2_frame(8, 0, 0, struct.pack(">I", 2 ** 31 - 1 - 65535)))
        while True:             # the server's SETTINGS: acknowledged
            kind, flags, _sid, _payload = self.frame()
            if kind == 4 and not flags & 1:
                break
        block = StatelessEncoder().encode([
            (b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http"),
            (b":path", b"/ws"), (b":authority", b"bench"), (b"sec-websocket-version", b"13")])
        self.sock.sendall(h2_frame(4, 1, 0) + h2_frame(1, 4, 1, block))
        while True:
            kind, flags, sid, payload = self.frame()
            if sid == 1 and kind == 3:
                raise RuntimeError("extended CONNECT reset")
            if sid == 1 and kind == 1:
                if payload[:1] != b"\x88":      # :status 200 (static index 8)
                    raise RuntimeError(f"extended CONNECT answered {payload!r}")
                break

    def frame(self):
        head = recv_exact(self.sock, 9, self.buf)
        n = int.from_bytes(head[:3], "big")
        payload = recv_exact(self.sock, n, self.buf)
        return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7fffffff, payload

    def roundtrip(self, frame: bytes) -> None:
        self.sock.sendall(h2_frame(0, 0, 1, frame))
        got = 0
        while got < len(frame):
            kind, _flags, sid, payload = self.frame()
            if kind == 0 and sid == 1:
                got += len(payload)
            elif kind == 3 or kind == 7:
                raise RuntimeError(f"frame {kind} {payload!r}")


def measure(client, messages: int, size: int) -> tuple[float, float]:
    frame = ws_frame(size)
    for _ in range(200):
        client.roundtrip(frame)
    times = []
    clock = time.perf_counter
    for _ in range(messages):
        t = clock()
        client.roundtrip(frame)
        times.append(clock() - t)
    client.sock.close()
    times.sort()
    return times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", nargs="+", default=["."])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="h2ws-") as root:
        os.chmod(root, 0o755)
        bport = free_port()
        echo = subprocess.Popen([sys.executable, "-m", "bench.wsecho", str(bport)],
                                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        results: dict = {}
        try:
            wait_port(bport)
            for run in range(args.runs):
                for i, tree in enumerate(args.trees + ["nginx"]):
                    prefix = os.path.join(root, f"t{i}")
                    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
                    port, h2_port = free_port(), free_port()
                    conf = os.path.join(prefix, "nginx.conf")
                    with open(conf, "w") as f:
                        f.write(CONF.format(prefix=prefix, port=port, h2_port=h2_port, backend=bport))
                    if tree == "nginx":
                        argv_ = ["/usr/sbin/nginx", "-p", prefix, "-c", conf, "-e",
                                 prefix + "/e.log"]
                        env = None
                    else:
                        argv_ = [sys.executable, "-m", "ngate", "-p", prefix, "-c", conf]
                        env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
                    proc = subprocess.Popen(argv_, env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
                    try:
                        wait_port(port)
                        cases = [("http/1.1", H1, port)]
                        if tree != "nginx":         # nginx has no RFC 8441
                            cases.append(("h2", H2, h2_port))
                        for name, cls, p in cases:
                            med, p99 = measure(cls(p), args.messages, args.size)
                            results.setdefault((tree, name), []).append((med, p99))
                            print(f"run {run} {tree:>20} {name:<8} median {med:7.1f} us  "
                                  f"p99 {p99:7.1f} us", flush=True)
                    finally:
                        proc.terminate()
                        proc.wait(10)
        finally:
            echo.terminate()
            echo.wait(10)
        print("\nmedian of runs (round trip, us):")
        for (tree, name), values in results.items():
            meds = sorted(v[0] for v in values)
            p99s = sorted(v[1] for v in values)
            print(f"{tree:>20} {name:<8} median {meds[len(meds) // 2]:7.1f}  "
                  f"p99 {p99s[len(p99s) // 2]:7.1f}")


if __name__ == "__main__":
    main()
