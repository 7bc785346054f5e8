"""The Python cost of one proxied request, without sockets: `python -m bench.hotpath`.

`--static` measures a 1 KiB static file served by ngate itself instead (the same docroot and
request as bench/static_files.py; the file's syscalls are included, the socket's are not).
`--return` measures `return 200 "ok\n"` (the downstream path alone: head parsing, phases, the
response head, finish and log; no upstream). `--close` does the same with a new connection per
request (connection_made, the request with `Connection: close`, connection_lost).
`--ws` measures a proxied WebSocket handshake (the bench's `location /ws`): a connection, the
Upgrade request, a new upstream connection (a fake one: the loop's create_connection is replaced),
the 101, the tunnel set up, then the client's close tearing both sides down; the request head's
write is flushed each round, and the cyclic GC is set as in a worker (frozen config, gen0 every
50,000 allocations).
`--fastcgi` proxies to FastCGI (bench/fastcgi.py's keep-alive location: Debian's fastcgi_params,
`fastcgi_keep_conn on` to an upstream with `keepalive`; the application's answer is fed back as
STDOUT and END_REQUEST records).
`--limit-req` adds a `limit_req` (a zone keyed on $binary_remote_addr with a rate the loop never
reaches) to the proxied location: the difference is what limit_req costs per request.

A downstream HttpConnection and an upstream connection run on fake transports inside a real
uvloop loop: the client's request is fed, the upstream's response is fed back, and the time per
request is what ngate's own code costs (parsing, routing, building heads, pooling, logging).
Syscalls and the event loop are excluded, so the figure is stable on a noisy machine and shows
what an optimisation of the request path is worth. Use with a profiler:
`python -m cProfile -s tottime -m bench.hotpath`.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

REQUEST = (b"GET /api/items?id=7 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: bench\r\n"
           b"Accept: */*\r\n\r\n")
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: backend\r\nDate: Tue, 01 Jan 2030 00:00:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n")
CONF = """
events {}
http {
    access_log off;
    keepalive_requests 1000000;
    upstream backend { server 127.0.0.1:9; keepalive 32; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:8080;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
"""


class Written:
    """What a FakeTransport was given: how many writes and the last one. Keeping every write
    would make each response's bytes fresh memory (page faults a real transport, which frees
    what the socket took, never pays: +0.6 us per 1 KiB static response)."""
    __slots__ = ("count", "last")

    def __init__(self) -> None:
        self.count = 0
        self.last = None

    def append(self, data) -> None:
        self.count += 1
        self.last = data

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):
        if index != -1 or not self.count:
            raise IndexError(index)
        return self.last


class FakeTransport:
    """Enough of an asyncio transport for the request path; records what is written."""

    def __init__(self, peer=("127.0.0.1", 40000), sock=("127.0.0.1", 8080)) -> None:
        self.extra = {"peername": peer, "sockname": sock}
        self.written = Written()
        self.closed = False
        self.protocol = None

    def get_extra_info(self, name, default=None):
        return self.extra.get(name, default)

    def write(self, data) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    abort = close

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True

    def set_protocol(self, p) -> None:
        self.protocol = p


STATIC_REQUEST = (b"GET /1k.txt HTTP/1.1\r\nHost: example.test\r\nUser-Agent: bench\r\n"
                  b"Accept: */*\r\n\r\n")
STATIC_CONF = """
events {}
http {
    access_log off;
    keepalive_requests 1000000;
    include /etc/nginx/mime.types;
    server {
        listen 127.0.0.1:8080;
        root %s;
    }
}
"""


def _runtime(prefix: str, conf: str):
    """(config, loop, runtime, listen) for `conf` written under `prefix`: a worker without
    sockets, as the request path sees it."""
    import uvloop

    from ngate.config.loader import load_config
    from ngate.server.runtime import WorkerRuntime

    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    config = load_config(path, prefix)
    loop = uvloop.new_event_loop()
    runtime = WorkerRuntime(config, {}, loop)
    return config, loop, runtime, next(iter(runtime.listens.values()))


def run_static(n: int) -> float:
    from ngate.server.connection import HttpConnection

    with tempfile.TemporaryDirectory() as prefix:
        root = os.path.join(prefix, "www")
        os.mkdir(root)
        with open(os.path.join(root, "1k.txt"), "wb") as f:
            f.write(b"x" * 1024)
        _config, loop, runtime, listen = _runtime(prefix, STATIC_CONF % root)
        conn = HttpConnection(runtime, listen)
        down_t = FakeTransport()

        async def drive() -> float:
            conn.connection_made(down_t)
            flush = runtime.client_writes.flush     # the response's write (_exchanges says why)
            t0 = time.process_time()
            for _ in range(n):
                conn.data_received(STATIC_REQUEST)
                flush()
            elapsed = time.process_time() - t0
            assert len(down_t.written) == n and down_t.written[-1].endswith(b"x" * 1024)
            assert down_t.written[-1].startswith(b"HTTP/1.1 200 OK\r\n")
            assert not down_t.closed and conn.queue is None
            return elapsed

        elapsed = loop.run_until_complete(drive())
        loop.close()
        return elapsed / n * 1e6


RETURN_CONF = """
events {}
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:8080;
        location / { return 200 "ok\\n"; }
    }
}
"""
CLOSE_REQUEST = REQUEST.replace(b"Accept: */*\r\n", b"Accept: */*\r\nConnection: close\r\n")


def run_return(n: int, close: bool = False) -> float:
    """`return 200` per request on one keep-alive connection, or (close) one connection each."""
    from ngate.server.connection import HttpConnection

    with tempfile.TemporaryDirectory() as prefix:
        _config, loop, runtime, listen = _runtime(prefix, RETURN_CONF)

        async def drive() -> float:
            flush = runtime.client_writes.flush     # the response's write (_exchanges says why)
            if close:
                t0 = time.process_time()
                for _ in range(n):
                    conn = HttpConnection(runtime, listen)
                    t = FakeTransport()
                    conn.connection_made(t)
                    conn.data_received(CLOSE_REQUEST)
                    flush()
                    conn.connection_lost(None)
                elapsed = time.process_time() - t0
                assert t.closed and t.written[-1].endswith(b"ok\n")
                assert not runtime.connections
                return elapsed
            conn = HttpConnection(runtime, listen)
            t = FakeTransport()
            conn.connection_made(t)
            t0 = time.process_time()
            for _ in range(n):
                conn.data_received(REQUEST)
                flush()
            elapsed = time.process_time() - t0
            assert len(t.written) == n and t.written[-1].endswith(b"ok\n")
            assert not t.closed and conn.queue is None
            return elapsed

        elapsed = loop.run_until_complete(drive())
        loop.close()
        return elapsed / n * 1e6


WS_REQUEST = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
WS_RESPONSE = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
WS_CONF = """
events {}
http {
    access_log off;
    upstream ws_backend { server 127.0.0.1:9; }
    server {
        listen 127.0.0.1:8080;
        location /ws {
            proxy_pass http://ws_backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
    }
}
"""


def run_ws(n: int) -> float:
    """A WebSocket handshake per round: the upstream connect returns a fake transport at once."""
    from ngate.server.connection import HttpConnection

    with tempfile.TemporaryDirectory() as prefix:
        _config, _loop, runtime, listen = _runtime(prefix, WS_CONF)
        _loop.close()
        loop = _use_loop(runtime, _instant_connect_loop())
        Loop = type(loop)

        async def drive() -> float:
            flush_heads = runtime.pool.head_writes.flush
            t0 = time.process_time()
            for _ in range(n):
                conn = HttpConnection(runtime, listen)
                t = FakeTransport()
                conn.connection_made(t)
                t.protocol = conn
                conn.data_received(WS_REQUEST)
                soon = Loop.soon
                while soon:                     # Connect.step: the connect coroutine
                    callback, args = soon.pop(0)
                    callback(*args)
                up, Loop.made = Loop.made, None
                flush_heads()                   # the request head's write (as _exchanges)
                up.protocol.data_received(WS_RESPONSE)
                runtime.client_writes.flush()     # (the 101 went out when the tunnel started)
                t.protocol.connection_lost(None)      # the client closes: both sides end
                up.protocol.connection_lost(None)
            elapsed = time.process_time() - t0
            assert t.written[-1].startswith(b"HTTP/1.1 101") and t.closed and up.closed
            assert type(t.protocol).__name__ == "Side"      # the tunnel took the transports
            assert not runtime.connections and not runtime.tunnels
            return elapsed

        # the worker's cyclic GC settings (server/runtime.py WorkerRuntime.start): the config
        # frozen, gen0 collected every 50,000 allocations
        import gc
        threshold = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        try:
            elapsed = loop.run_until_complete(drive())
        finally:
            gc.set_threshold(*threshold)
            gc.unfreeze()
        loop.close()
        return elapsed / n * 1e6


LIMIT_REQ = ("    limit_req_zone $binary_remote_addr zone=hot:10m rate=100000000r/s;\n"
             "    server {", "location / {\n            limit_req zone=hot burst=100000 nodelay;")


def run(n: int, limit_req: bool = False, access_log: bool = False, new_every: int = 0) -> float:
    from ngate.server.connection import HttpConnection

    conf = CONF
    if limit_req:
        conf = conf.replace("    server {", LIMIT_REQ[0], 1).replace("location / {", LIMIT_REQ[1], 1)
    with tempfile.TemporaryDirectory() as prefix:
        if access_log:
            conf = conf.replace("access_log off;", "access_log %s/access.log;" % prefix, 1)
        config, loop, runtime, listen = _runtime(prefix, conf)
        if new_every:
            loop.close()
            loop = _use_loop(runtime, _instant_connect_loop())
        uconn, up_t = _pooled(config, runtime, "backend", 32)
        conn = HttpConnection(runtime, listen)
        down_t = FakeTransport()

        async def drive() -> float:
            if new_every:
                elapsed = _churned(runtime, conn, down_t, uconn, n, new_every)
            else:
                elapsed = _exchanges(conn, down_t, uconn, REQUEST, RESPONSE, n)
            assert len(down_t.written) == n and down_t.written[-1].endswith(b"ok\n")
            assert not down_t.closed and conn.queue is None
            return elapsed

        elapsed = loop.run_until_complete(drive())
        loop.close()
        return elapsed / n * 1e6


def _pooled(config, runtime, name: str, keepalive: int):
    """One upstream connection of group `name` on a fake transport, in the pool: every request
    reuses it. (connection, its transport)"""
    from ngate.proxy.upstream_conn import UpstreamConnection
    upstream = config.upstreams[name]
    peer = upstream.servers[0]
    up_t = FakeTransport(sock=("127.0.0.1", 50000))
    uconn = UpstreamConnection(peer)
    uconn.connection_made(up_t)
    runtime.pool.put((id(upstream), peer.host, peer.port), uconn, keepalive, 60.0)
    return uconn, up_t


def _exchanges(conn, down_t, uconn, request: bytes, response: bytes, n: int) -> float:
    """n requests on one client connection, each answered at once by the pooled upstream: the
    process CPU seconds they took."""
    conn.connection_made(down_t)
    # the request heads' write (upstream/pool.py HeadWrites) and the response's
    # (server/turn_writes.py TurnWrites), as at the end of the loop's turn (live: once per ~16
    # requests; the turn's one call_soon is not counted here)
    flush = conn.runtime.pool.head_writes.flush
    flush_client = conn.runtime.client_writes.flush
    t0 = time.process_time()
    for _ in range(n):
        conn.data_received(request)
        flush()
        uconn.data_received(response)
        flush_client()
    return time.process_time() - t0


def _use_loop(runtime, loop):
    """The worker's runtime on `loop` (its deadlines and both turn batches hold the loop)."""
    runtime.loop = runtime.deadlines.loop = runtime.client_writes.loop = loop
    runtime.pool.head_writes.loop = loop
    return loop


def _instant_connect_loop():
    """A uvloop loop whose create_connection is instant (a FakeTransport, `made`), and whose
    call_soon of a Connect step is queued in `soon` for the caller to run (no epoll turn)."""
    import uvloop

    from ngate.proxy.upstream_conn import Connect

    class Loop(uvloop.Loop):
        made = None
        soon: list = []

        def call_soon(self, callback, *args, context=None):
            if type(getattr(callback, "__self__", None)) is not Connect:
                return super().call_soon(callback, *args, context=context)
            Loop.soon.append((callback, args))

        async def create_connection(self, factory, host=None, port=None, **kw):
            proto = factory()
            t = Loop.made = FakeTransport(sock=("127.0.0.1", 50000))
            t.protocol = proto
            proto.connection_made(t)
            return t, proto

    return Loop()


def _churned(runtime, conn, down_t, uconn, n: int, every: int) -> float:
    """As _exchanges, but every `every`-th request finds the pool empty (its connection busy
    with another client's request, as when more requests are in flight than `keepalive`): a
    new upstream connection is opened, and once the busy one is back the pool closes the least
    recently used (the new one; its connection_lost as the loop would call it)."""
    loop = runtime.loop
    pool = runtime.pool
    key = next(iter(pool.idle))
    flush = pool.head_writes.flush      # as in _exchanges
    flush_client = runtime.client_writes.flush
    conn.connection_made(down_t)
    t0 = time.process_time()
    for i in range(n):
        if i % every:
            conn.data_received(REQUEST)
            flush()
            uconn.data_received(RESPONSE)
            flush_client()
            continue
        busy = pool.get(key)
        conn.data_received(REQUEST)
        soon = loop.soon
        while soon:                     # Connect.step: the connect coroutine
            callback, args = soon.pop(0)
            callback(*args)
        flush()
        made = type(loop)
        new, made.made = made.made, None
        new.protocol.data_received(RESPONSE)
        flush_client()
        pool.put(key, busy, 1, 60.0)    # over the limit: the new one (least recent) closed
        assert new.closed
        new.protocol.connection_lost(None)
    return time.process_time() - t0


FASTCGI_REQUEST = (b"GET /ka/ok.php?id=7 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: bench\r\n"
                   b"Accept: */*\r\n\r\n")
FASTCGI_CONF = """
events {}
http {
    access_log off;
    keepalive_requests 1000000;
    upstream php { server 127.0.0.1:9; keepalive 16; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:8080;
        location ~ ^/ka/(.+\\.php)$ {
            root %s;
            fastcgi_pass php;
            fastcgi_keep_conn on;
            fastcgi_param SCRIPT_FILENAME $document_root/$1;
            include %s;
        }
    }
}
"""


def fastcgi_response() -> bytes:
    """php-fpm 8.2's answer to ok.php as it comes: the CGI head and body in one STDOUT record,
    then END_REQUEST (no empty STDOUT record)."""
    from ngate.fastcgi import records as fcgi
    out = (b"Content-type: text/html; charset=UTF-8\r\n\r\nok\n")
    return fcgi.record(fcgi.STDOUT, out) + fcgi.record(fcgi.END_REQUEST, bytes(8))


def run_fastcgi(n: int) -> float:
    from ngate.server.connection import HttpConnection

    params = "/etc/nginx/fastcgi_params"
    response = fastcgi_response()
    with tempfile.TemporaryDirectory() as prefix:
        config, loop, runtime, listen = _runtime(prefix, FASTCGI_CONF % (prefix, params))
        uconn, up_t = _pooled(config, runtime, "php", 16)
        conn = HttpConnection(runtime, listen)
        down_t = FakeTransport()

        async def drive() -> float:
            elapsed = _exchanges(conn, down_t, uconn, FASTCGI_REQUEST, response, n)
            assert len(down_t.written) == n, len(down_t.written)
            assert down_t.written[-1].endswith(b"\r\n\r\n3\r\nok\n\r\n0\r\n\r\n")
            assert down_t.written[-1].startswith(b"HTTP/1.1 200 OK\r\n")
            assert not down_t.closed and conn.queue is None and len(up_t.written) == n
            return elapsed

        elapsed = loop.run_until_complete(drive())
        loop.close()
        return elapsed / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=50_000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--static", action="store_true", help="a 1 KiB static file, not a proxy")
    ap.add_argument("--return", dest="ret", action="store_true",
                    help='`return 200 "ok\\n"`: the downstream path alone')
    ap.add_argument("--close", action="store_true",
                    help="--return with a new connection per request (Connection: close)")
    ap.add_argument("--ws", action="store_true",
                    help="a proxied WebSocket handshake per round (a new connection each side)")
    ap.add_argument("--fastcgi", action="store_true",
                    help="fastcgi_pass with fastcgi_keep_conn to a kept connection")
    ap.add_argument("--limit-req", action="store_true", help="the proxied location has limit_req")
    ap.add_argument("--new-every", type=int, default=0, metavar="K",
                    help="proxied: every K-th request opens a new upstream connection and one is "
                         "closed (the pool's churn when more requests are in flight than "
                         "`keepalive`: live http_keepalive, ~1 in 12 for ngate, 1 in 6 for nginx)")
    ap.add_argument("--access-log", action="store_true",
                    help="access_log to a file (nginx's combined format) instead of off")
    args = ap.parse_args()
    if args.ws:
        figures = sorted(run_ws(args.n) for _ in range(args.rounds))
    elif args.ret or args.close:
        figures = sorted(run_return(args.n, args.close) for _ in range(args.rounds))
    elif args.static:
        figures = sorted(run_static(args.n) for _ in range(args.rounds))
    elif args.fastcgi:
        figures = sorted(run_fastcgi(args.n) for _ in range(args.rounds))
    else:
        figures = sorted(run(args.n, args.limit_req, args.access_log, args.new_every)
                         for _ in range(args.rounds))
    what = (" (websocket handshake)" if args.ws else " (return, close)" if args.close else
            " (return)" if args.ret else " (static)" if args.static else
            " (fastcgi)" if args.fastcgi else " (limit_req)" if args.limit_req else
            " (access_log)" if args.access_log else
            f" (new upstream connection every {args.new_every})" if args.new_every else "")
    print(f"hotpath{what}: {figures[len(figures) // 2]:.2f} us/request of Python (median of "
          f"{args.rounds} x {args.n}; min {figures[0]:.2f})")


if __name__ == "__main__":
    main()
