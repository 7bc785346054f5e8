"""A worker's request path without sockets: a real WorkerRuntime and HttpConnection on fake
transports, an upstream connection already in the keepalive pool. Bytes are fed by hand, so a
test sees every state an exchange passes through (tests/unit/test_exchange_states.py)."""
from __future__ import annotations

import os


class FakeTransport:
    """Enough of an asyncio transport for the request path; records what is written."""

    def __init__(self, peer=("127.0.0.1", 40000), sock=("127.0.0.1", 8080)) -> None:
        self.extra = {"peername": peer, "sockname": sock}
        self.written = []
        self.closed = False
        self.paused = False
        self.protocol = None

    def get_extra_info(self, name, default=None):
        return self.extra.get(name, default)

    def write(self, data) -> None:
        self.written.append(bytes(data))

    def writelines(self, chunks) -> None:
        for c in chunks:
            self.write(c)

    def close(self) -> None:
        self.closed = True

    abort = close

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.closed

    def set_protocol(self, p) -> None:
        self.protocol = p

    def get_write_buffer_size(self) -> int:
        return 0

    def data(self) -> bytes:
        return b"".join(self.written)


class Worker:
    """`conf` (a whole nginx.conf) loaded under `prefix`; `client()` opens a downstream
    connection, `pooled(group)` puts an upstream connection of the group's first server in
    the keepalive pool."""

    def __init__(self, prefix: str, conf: str) -> None:
        import uvloop

        from ngate.config import load_config
        from ngate.server.runtime import WorkerRuntime

        path = os.path.join(prefix, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.config = load_config(path, prefix)
        self.loop = uvloop.new_event_loop()
        self.runtime = WorkerRuntime(self.config, {}, self.loop)
        self.listen = next(iter(self.runtime.listens.values()))

    def client(self):
        from ngate.server.connection import HttpConnection

        conn = HttpConnection(self.runtime, self.listen)
        t = FakeTransport()
        conn.connection_made(t)
        return conn, t

    def pooled(self, group: str, server: int = 0):
        from ngate.proxy.upstream_conn import UpstreamConnection

        upstream = self.config.upstreams[group]
        peer = upstream.servers[server]
        t = FakeTransport(sock=("127.0.0.1", 50000))
        uconn = UpstreamConnection(peer)
        uconn.connection_made(t)
        self.runtime.pool.put((id(upstream), peer.host, peer.port), uconn,
                              upstream.keepalive, 60.0)
        return uconn, t

    def turn(self) -> None:
        """What the event loop does after a turn's callbacks: run what they scheduled
        (call_soon), e.g. upstream/pool.py HeadWrites' writes of the request heads."""
        import asyncio
        self.loop.run_until_complete(asyncio.sleep(0))

    def sent(self, t) -> bytes:
        """What `t` (a client's transport) was sent once the turn ended: responses are written
        at the end of the loop's turn (server/turn_writes.py)."""
        self.turn()
        return t.data()

    def close(self) -> None:
        self.loop.close()
