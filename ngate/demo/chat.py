"""The demo's chat backend: a websockets server that broadcasts every message to every client."""
from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import broadcast, serve

CLIENTS: set = set()


async def chat(ws) -> None:
    CLIENTS.add(ws)
    try:
        async for message in ws:
            broadcast(CLIENTS, message)
    finally:
        CLIENTS.discard(ws)


async def main(port: int) -> None:
    async with serve(chat, "127.0.0.1", port):
        await asyncio.Future()


if __name__ == "__main__":
    PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
    try:
        asyncio.run(main(PORT))
    except OSError as err:
        sys.stderr.write(f"ngate demo: [emerg] chat backend: bind() to 127.0.0.1:{PORT} failed "
                         f"({err.errno}: {err.strerror})\n")
        sys.exit(1)
    except KeyboardInterrupt:
        pass
