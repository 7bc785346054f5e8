"""WebSocket load client (uvloop Protocols, raw sockets, frames built and masked once).

Usage: python -m bench.wsload MODE --port P [--conns N] [--duration S] [--size BYTES]
MODE is one of:
  handshake   N loops of connect, upgrade, read the 101, close; counts handshakes
  echo        N tunnels, each with one SIZE-byte message in flight; counts echoed messages
  idle        open N tunnels, print {"ready": n}, hold them until stdin closes
Prints one JSON object on stdout. Echoed bytes are counted, not parsed (see bench.wsecho).
"""
import argparse
import asyncio
import json
import os
import struct
import sys
import time

import uvloop

UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def masked_frame(size):
    """A binary frame with the mask bit set; random bytes serve as already-masked payload."""
    if size < 126:
        head = struct.pack("!BB", 0x82, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x82, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x82, 0x80 | 127, size)
    return head + os.urandom(4) + os.urandom(size)


class Tunnel(asyncio.Protocol):
    """States: `upgraded` future pending (reading the 101 head), then echo counting."""
    __slots__ = ("transport", "head", "upgraded", "frame", "got", "count", "running", "closed")

    def __init__(self, frame=b""):
        self.frame, self.got, self.count, self.running = frame, 0, 0, False
        self.head = b""
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(UPGRADE)

    def data_received(self, data):
        if self.head is not None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            ok = self.head.startswith(b"HTTP/1.1 101")
            extra, self.head = len(self.head) - end - 4, None
            if not ok:
                self.upgraded.set_exception(RuntimeError("upgrade refused"))
                return
            self.upgraded.set_result(None)
            if not extra:
                return
            data = b"x" * extra
        self.got += len(data)
        size = len(self.frame)
        while size and self.got >= size:
            self.got -= size
            self.count += 1
            if self.running:
                self.transport.write(self.frame)

    def start(self):
        self.running = True
        self.transport.write(self.frame)

    def connection_lost(self, exc):
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed before 101"))
        if not self.closed.done():
            self.closed.set_result(None)


async def open_tunnel(port, frame=b""):
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: Tunnel(frame), "127.0.0.1", port)
    await proto.upgraded
    return proto


async def open_many(port, n, frame=b"", concurrency=200):
    sem = asyncio.Semaphore(concurrency)

    async def one():
        async with sem:
            return await open_tunnel(port, frame)
    return await asyncio.gather(*(one() for _ in range(n)))


async def handshake(args):
    count, errors = 0, 0
    deadline = time.monotonic() + args.duration

    async def loop_one():
        nonlocal count, errors
        while time.monotonic() < deadline:
            try:
                proto = await open_tunnel(args.port)
                count += 1
                proto.transport.close()
            except OSError:
                errors += 1
    t0 = time.monotonic()
    await asyncio.gather(*(loop_one() for _ in range(args.conns)))
    return {"handshakes": count, "errors": errors, "seconds": time.monotonic() - t0}


async def echo(args):
    tunnels = await open_many(args.port, args.conns, masked_frame(args.size))
    t0 = time.monotonic()
    for t in tunnels:
        t.start()
    await asyncio.sleep(args.duration)
    for t in tunnels:
        t.running = False
    elapsed = time.monotonic() - t0
    messages = sum(t.count for t in tunnels)
    for t in tunnels:
        t.transport.close()
    return {"messages": messages, "payload_bytes": messages * args.size, "seconds": elapsed}


async def idle(args):
    tunnels = await open_many(args.port, args.conns)
    print(json.dumps({"ready": len(tunnels)}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    lost = sum(t.closed.done() for t in tunnels)
    for t in tunnels:
        t.transport.close()
    return {"tunnels": len(tunnels), "closed_early": lost}


MODES = {"handshake": handshake, "echo": echo, "idle": idle}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=MODES)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    print(json.dumps(uvloop.run(MODES[args.mode](args))), flush=True)


if __name__ == "__main__":
    main()
