"""Files larger than one write go out through FileSender, which reads into a reusable buffer and
reuses it only when the transport kept no reference to it. Clients that read slowly (the
transport buffers what the socket refuses) and fast, at once, over real sockets, must each get
the file's exact bytes: random content, so a chunk from the wrong read or a buffer overwritten
while the transport still held it would show.
"""
from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import socket

import uvloop

from ngate.server.runtime import WorkerRuntime
from ngate.supervisor.listeners import config_listens
from tests.unit._config_helpers import load_http

SIZE = 1024 * 1024 + 12345


async def _get(port: int, path: str, slow: bool, ranges: bytes | None = None) -> bytes:
    sock = socket.socket()
    if slow:    # a small window: the server's socket refuses data, its transport buffers it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    extra = b"Range: " + ranges + b"\r\n" if ranges else b""
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                 + extra + b"\r\n")
    chunks = []
    while True:
        data = await reader.read(16384 if slow else 1 << 20)
        if not data:
            break
        chunks.append(data)
        if slow:
            await asyncio.sleep(0.001)
    writer.close()
    return b"".join(chunks).partition(b"\r\n\r\n")[2]


async def _serve(config, sockets, port: int) -> list:
    runtime = WorkerRuntime(config, sockets, asyncio.get_running_loop())
    await runtime.start()
    try:
        return await asyncio.gather(
            _get(port, "/big.bin", slow=True), _get(port, "/big.bin", slow=False),
            _get(port, "/other.bin", slow=True), _get(port, "/other.bin", slow=False),
            _get(port, "/big.bin", slow=False, ranges=b"bytes=1000-600000,700000-"))
    finally:
        runtime.abort()


def test_concurrent_slow_and_fast_clients_get_exact_bytes(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    big, other = os.urandom(SIZE), os.urandom(SIZE // 2)
    (root / "big.bin").write_bytes(big)
    (root / "other.bin").write_bytes(other)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)    # accepted sockets inherit it
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = load_http(tmp_path, f"""
        access_log off;
        error_log {tmp_path}/logs/error.log;
        server {{ listen 127.0.0.1:{port}; root {root}; }}""")
    key = next(iter(config_listens(config)))
    loop = uvloop.new_event_loop()
    try:
        got = loop.run_until_complete(_serve(config, {key: sock}, port))
    finally:
        gc.unfreeze()               # WorkerRuntime.start() froze the test process's objects
        loop.close()
        sock.close()
    digest = [hashlib.sha256(b).hexdigest() for b in got[:4]]
    assert digest == [hashlib.sha256(b).hexdigest() for b in (big, big, other, other)]
    parts = got[4].split(b"\r\n--")
    assert big[1000:600001] in parts[1] and big[700000:] in parts[2]
