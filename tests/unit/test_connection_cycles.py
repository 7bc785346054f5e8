"""A closed client connection is freed by reference counting, not left in a reference cycle for
the cyclic GC (which the worker runs rarely: gc.set_threshold(50_000, ...)). Over TLS each such
cycle held the transport, the SSL object and its buffers: ~17 KiB a handshake, 266 MiB peak RSS
under the tls_handshake benchmark.

One WorkerRuntime in-process on a TLS and a plain socket; clients in the same loop: HTTPS, plain
HTTP, plain HTTP on the TLS port (497). Then the cyclic GC runs with DEBUG_SAVEALL and no
connection object may be among what it found. The plain listen of that server stays plain
HTTP (a server with `listen 443 ssl; listen 80;` once answered 497 on port 80 too). Proxied
requests close their upstream connections: neither those nor the exchanges may be left either.
"""
from __future__ import annotations

import asyncio
import gc
import socket
import ssl

import trustme
import uvloop

from ngate.proxy.exchange import UpstreamExchange
from ngate.proxy.upstream_conn import UpstreamConnection
from ngate.server.connection import HttpConnection
from ngate.server.runtime import WorkerRuntime
from ngate.supervisor.listeners import config_listens
from tests.unit._config_helpers import load_http

CONNECTIONS = 20
REQUEST = b"GET / HTTP/1.1\r\nHost: t.test\r\nConnection: close\r\n\r\n"
PROXIED = b"GET /up HTTP/1.1\r\nHost: t.test\r\nConnection: close\r\n\r\n"


def _bound() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def _request(port: int, tls: ssl.SSLContext | None, raw: bytes = REQUEST) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="t.test" if tls else None)
    writer.write(raw)
    data = await reader.read()
    writer.close()
    return data


async def _serve(config, sockets, tls_port: int, plain_port: int) -> list:
    runtime = WorkerRuntime(config, sockets, asyncio.get_running_loop())
    await runtime.start()
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    try:
        answers = []
        for _ in range(CONNECTIONS):
            answers.append(await _request(tls_port, client))
            answers.append(await _request(plain_port, None))
            answers.append(await _request(tls_port, None))
            answers.append(await _request(plain_port, None, PROXIED))
        while runtime.connections:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)       # connection_lost callbacks scheduled by the transports
        return answers
    finally:
        runtime.abort()


def test_closed_connections_are_not_left_in_cycles(tmp_path):
    cert = trustme.CA().issue_cert("t.test", key_type=trustme.KeyType.ECDSA)
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    tls_sock, plain_sock = _bound(), _bound()
    tls_port, plain_port = tls_sock.getsockname()[1], plain_sock.getsockname()[1]
    config = load_http(tmp_path, f"""
        access_log off;
        server {{
            listen 127.0.0.1:{tls_port} ssl;
            listen 127.0.0.1:{plain_port};
            ssl_certificate {tmp_path}/cert.pem;
            ssl_certificate_key {tmp_path}/key.pem;
            location / {{ return 200 "ok\\n"; }}
            location /up {{ proxy_pass http://127.0.0.1:{plain_port}/; }}
        }}""")
    by_port = {listen.port: key for key, listen in config_listens(config).items()}
    sockets = {by_port[tls_port]: tls_sock, by_port[plain_port]: plain_sock}
    threshold = gc.get_threshold()
    loop = uvloop.new_event_loop()
    gc.collect()
    gc.disable()
    try:
        answers = loop.run_until_complete(_serve(config, sockets, tls_port, plain_port))
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage
                if isinstance(o, (HttpConnection, UpstreamConnection, UpstreamExchange))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.unfreeze()               # WorkerRuntime.start() froze the test process's objects
        gc.set_threshold(*threshold)
        gc.enable()
        loop.close()
        tls_sock.close()
        plain_sock.close()
    assert {a.split(b"\r\n", 1)[0] for a in answers[0::4]} == {b"HTTP/1.1 200 OK"}
    assert {a.split(b"\r\n", 1)[0] for a in answers[1::4]} == {b"HTTP/1.1 200 OK"}
    assert {a.split(b"\r\n", 1)[0] for a in answers[2::4]} == {b"HTTP/1.1 400 Bad Request"}
    assert {a.rsplit(b"\r\n", 1)[-1] for a in answers[3::4]} == {b"ok\n"}   # proxied
    assert left == []


def test_closed_tunnels_are_not_left_in_cycles(tmp_path):
    """WebSockets proxied and closed (from either side): the tunnel, its sides, the two
    transports and the upstream connection the tunnel took over are freed by reference
    counting."""
    import websockets
    from websockets.asyncio.server import serve

    from ngate.proxy.tunnel import Side, Tunnel

    front = _bound()
    port = front.getsockname()[1]

    async def scenario(config, sockets) -> list:
        async def echo(ws):
            async for message in ws:
                if message == "bye":
                    await ws.close()
                    return
                await ws.send(message)

        async with serve(echo, "127.0.0.1", 0) as server:
            backend_port = server.sockets[0].getsockname()[1]
            runtime = WorkerRuntime(load(backend_port), sockets, asyncio.get_running_loop())
            await runtime.start()
            got = []
            try:
                for i in range(CONNECTIONS):
                    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
                        await ws.send(f"m{i}")
                        got.append(await ws.recv())
                        if i % 2:
                            await ws.send("bye")        # the backend closes
                            await ws.wait_closed()
                while runtime.tunnels or runtime.connections:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)
            finally:
                runtime.abort()
            return got

    def load(backend_port):
        return load_http(tmp_path, f"""
            access_log off;
            server {{
                listen 127.0.0.1:{port};
                location /ws {{
                    proxy_pass http://127.0.0.1:{backend_port};
                    proxy_http_version 1.1;
                    proxy_set_header Upgrade $http_upgrade;
                    proxy_set_header Connection "Upgrade";
                }}
            }}""")

    key = next(iter(config_listens(load(1)).keys()))
    threshold = gc.get_threshold()
    loop = uvloop.new_event_loop()
    gc.collect()
    gc.disable()
    try:
        got = loop.run_until_complete(scenario(None, {key: front}))
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage
                if isinstance(o, (Tunnel, Side, HttpConnection, UpstreamConnection))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.unfreeze()
        gc.set_threshold(*threshold)
        gc.enable()
        loop.close()
        front.close()
    assert got == [f"m{i}" for i in range(CONNECTIONS)]
    assert left == []
