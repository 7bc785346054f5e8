"""The WebSocket echo backend of the e2e tests and raw-socket helpers for WebSocket handshakes.

`EchoServer` (a `websockets` server in a thread; `run_echo(port)` runs it in the foreground, for
tests that need it as a separate process) echoes every message and understands a few commands
sent as text: `headers` (answers the handshake headers it received, as JSON), `close <code>
<reason>`, `fragments <n>` (sends one message in n fragments), `flood <bytes>` (sends binary data
until that many bytes were written or the writer blocks). `SEED_LOCATION` is the seed's `/wss`
recipe, unchanged.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

SEED_LOCATION = """
        location /wss {
            proxy_pass http://127.0.0.1:{ws_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
            proxy_set_header X-Real-IP $remote_addr;
        }
"""


SUBPROTOCOLS = ["superchat", "chat"]


def _select_subprotocol(connection, offered):
    """The server's preference among what the client offered; none offered is fine."""
    return next((p for p in SUBPROTOCOLS if p in offered), None)


# ---------------------------------------------------------------- the echo backend

async def _handler(ws) -> None:
    try:
        if ws.request.path.endswith("/greet"):
            await ws.send("welcome")
        async for msg in ws:
            if isinstance(msg, str) and msg.startswith("headers"):
                await ws.send(json.dumps({k.lower(): v for k, v in ws.request.headers.raw_items()}))
            elif isinstance(msg, str) and msg.startswith("close "):
                _, code, reason = msg.split(" ", 2)
                await ws.close(int(code), reason)
            elif isinstance(msg, str) and msg.startswith("fragments "):
                n = int(msg.split()[1])
                await ws.send(f"part{i};" for i in range(n))
            elif isinstance(msg, str) and msg.startswith("flood "):
                await _flood(ws, int(msg.split()[1]))
            else:
                await ws.send(msg)
    except ConnectionClosed:
        pass
    finally:
        CLOSE_CODES.append(ws.close_code)


async def _flood(ws, total: int) -> None:
    """Send binary messages until `total` bytes are written; record progress for the test."""
    chunk = b"x" * 65536
    ws.flooded = 0
    while ws.flooded < total:
        await ws.send(chunk)
        ws.flooded += len(chunk)
        FLOODED[0] = ws.flooded


FLOODED = [0]
CLOSE_CODES: list = []      # the close code of every connection the echo server saw end


class EchoServer:
    """The websockets echo server on 127.0.0.1 in a thread (its own loop)."""

    def __init__(self, **options) -> None:
        self.port = 0
        self.options = dict(select_subprotocol=_select_subprotocol, max_size=None, ping_interval=None) | options
        self._loop = None
        self._thread = None

    def __enter__(self) -> "EchoServer":
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()

            async def main() -> None:
                self._stop = loop.create_future()
                async with serve(_handler, "127.0.0.1", 0, **self.options) as server:
                    self.port = server.sockets[0].getsockname()[1]
                    ready.set()
                    await self._stop
            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)


def run_echo(port: int) -> None:
    """The echo server in the foreground (for tests that need it as a separate process)."""
    async def main() -> None:
        async with serve(_handler, "127.0.0.1", port, select_subprotocol=_select_subprotocol, max_size=None,
                         ping_interval=None):
            await asyncio.Future()
    asyncio.run(main())


# ---------------------------------------------------------------- raw-socket helpers

def handshake(path: str = "/wss", extra: bytes = b"") -> bytes:
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


def masked_text(text: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    return bytes([0x81, 0x80 | len(text)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(text))


def read_until(sock: socket.socket, marker: bytes, limit: float = 5.0) -> bytes:
    buf = b""
    sock.settimeout(limit)
    while marker not in buf:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    return buf
