"""WebSocket echo backend: completes the handshake, then echoes raw bytes without parsing frames.

Usage: python -m bench.wsecho PORT
Client frames are masked, so the echo is not a valid server frame; the benchmark client only
counts bytes, and a tunnelling proxy must not care.
"""
import asyncio
import base64
import hashlib
import sys

import uvloop

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def handshake_response(head: bytes) -> bytes:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                    + accept_key(value.strip()) + b"\r\n\r\n")
    return b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Echo(asyncio.Protocol):
    """States: reading the handshake head (`head` is bytes), then echoing (`head` is None)."""
    __slots__ = ("transport", "head")

    def connection_made(self, transport):
        self.transport = transport
        self.head = b""

    def data_received(self, data):
        if self.head is None:
            self.transport.write(data)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            return
        head, rest = self.head[:end], self.head[end + 4:]
        self.head = None
        self.transport.write(handshake_response(head))
        if rest:
            self.transport.write(rest)

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


async def serve(port):
    server = await asyncio.get_running_loop().create_server(
        Echo, "127.0.0.1", port, backlog=4096)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
