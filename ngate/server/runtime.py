"""One worker's serving state: listeners, live connections and tunnels, the keepalive pool, logs.

Explicit shared state (uvicorn's ServerState): every connection holds the runtime and asks it
for what is per-worker. Graceful stop: stop_accepting -> close_idle -> drain(timeout) -> abort.
"""
from __future__ import annotations

import asyncio
import gc
import os
import socket
from functools import partial

from ngate.config.model import AccessLog, Config
from ngate.config.servers import socket_listen
from ngate.http.respond import KA_YOUNG
from ngate.observability import access_log as alog
from ngate.observability import error_log
from ngate.observability import stub_status
from ngate.routing.servers import ServerSelector
from ngate.server.clock import Deadlines
from ngate.server.connection import HttpConnection, head_table, line_table, name_table
from ngate.server.plain_transport import PlainServer, PlainTransport, Poller
from ngate.server.proxy_protocol import ProxyProtocolAcceptor
from ngate.server.tls import TlsAcceptor, listen_http2, speaks_http2
from ngate.server.tls_transport import TlsServer
from ngate.server.turn_writes import TurnWrites
from ngate.server.wildcard import WildcardServer, riders
from ngate.http2.accept import CleartextHttp2
from ngate.upstream.pool import KeepalivePool

_DRAINING = float("-inf")   # a draining worker's connections' ka_young (http/respond.py)


class ListenState:
    """What a listening socket needs per connection: its servers and how to pick one, and what
    every connection on it would otherwise work out again (head limits, the local address)."""
    __slots__ = ("key", "default_server", "selector", "scheme", "ssl_context", "local",
                 "underscores", "ignore_invalid", "limit_line", "limit_total", "names",
                 "lines", "heads", "fast_heads", "keepalive_timeout", "proxy_protocol", "http2",
                 "http2_off")

    def __init__(self, key, default_server, servers, scheme: str = "http") -> None:
        self.key = key
        self.default_server = default_server
        self.selector = ServerSelector(default_server, servers)
        self.scheme = scheme
        self.ssl_context = None     # server/tls.py TlsListen on a `listen ... ssl` socket
        self.proxy_protocol = False   # `listen ... proxy_protocol`: the header comes first
        self.http2 = False            # HTTP/2 too: ALPN h2 (TLS) or the h2c preface (plain)
        self.http2_off = False        # a server of it has `http2 off`: 421 to its HTTP/2 streams
        self.local = _local_address(key)
        srv = default_server
        self.underscores = srv.underscores_in_headers
        self.ignore_invalid = srv.ignore_invalid_headers
        number, size = srv.large_client_header_buffers
        self.limit_line = size                  # one line (request line or header)
        self.limit_total = number * size        # the whole head
        self.names = name_table(self.underscores, self.ignore_invalid)     # request_head.py's
        self.lines = line_table(self.underscores, self.ignore_invalid)     # shared parse tables
        self.heads = head_table(self)
        # the table a whole read is looked up in before any parse (server/connection.py
        # data_received): `heads`, or an empty one when stub_status counts heads (WorkerRuntime:
        # its counts need _feed_head's way)
        self.fast_heads = self.heads
        self.keepalive_timeout = srv.conf.keepalive_timeout     # until a request's location's


def _local_address(key) -> tuple | None:
    """($server_addr, $server_port) of every connection on a socket bound to one address; None
    for a wildcard address or a unix socket (the kernel tells, per connection)."""
    host, port = key
    if host == "unix" or not isinstance(port, int):
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        canonical = socket.inet_ntop(family, socket.inet_pton(family, host))
    except (OSError, ValueError):
        return None
    if canonical != host or canonical in ("0.0.0.0", "::"):
        return None
    return host, str(port)


class WorkerRuntime:
    def __init__(self, config: Config, sockets: dict, loop) -> None:
        self.config = config
        self.sockets = sockets
        self.loop = loop
        self.listens: dict = {}
        for key, (default, servers) in config.by_listen.items():
            ssl = any(l.ssl for s in servers for l in s.listens if l.key == key)
            ls = self.listens[key] = ListenState(key, default, servers, "https" if ssl else "http")
            ls.ssl_context = config.tls_listens.get(key)
            # nginx 1.25: TLS by the SNI server (ALPN, tls_sni.py); plain by the default server
            flag = listen_http2(key, servers)
            ls.http2 = speaks_http2(key, servers) if ssl else flag or default.http2
            ls.http2_off = ls.http2 and not flag and not all(s.http2 for s in servers)
            ls.proxy_protocol = any(l.proxy_protocol for s in servers for l in s.listens
                                    if l.key == key)
        self.connections: set = set()
        self.tunnels: set = set()
        self.stream_tunnels = 0         # those of self.tunnels inside an HTTP/2 connection (h2)
        self.deadlines = Deadlines(loop)
        self.pool = KeepalivePool(self.deadlines)
        self.client_writes = TurnWrites(loop)     # HTTP/1.x responses, at the turn's end
        self.poller = None              # server/plain_transport.py's epoll set (start())
        self.draining = False
        # a new HTTP/1.x connection's ka_young is its accept time plus this (http/respond.py
        # KA_YOUNG); -inf once draining (stop_accepting)
        self.ka_young_after = KA_YOUNG
        self.servers: list = []
        self._counter = 0
        self._writers: list = [None] * len(config.access_logs)   # by LocConf.log.slot
        # the same list, read by server/lifecycle.py's finish_request (access_log written out)
        self.log_writers = self._writers
        self._idle_waiter = None
        self.worker_connections = config.main.worker_connections
        self._connections_warned = False
        self._handover = False
        # stub_status counters: only when the config reads them (config/compile.py decides)
        self.stats = stub_status.worker_stats() if config.stub_status else None
        if self.stats is not None:
            for ls in self.listens.values():
                ls.fast_heads = {}      # no head is taken whole from a read (data_received)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = self.loop
        # The compiled config lives as long as the worker: keep it out of the cyclic GC's scans,
        # and collect less often (request objects are freed by reference counting; the few
        # cycles they form are broken explicitly). Worth ~25% of the Python per-request cost.
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        # the worker's own epoll set: plain listeners' connections, upstream connects
        # (server/plain_transport.py, upstream/connect.py)
        self.poller = Poller(loop)
        for key, socks in self.sockets.items():
            ls = self.listens.get(key)
            if ls is None:
                continue
            backlog = self._backlog(key)
            served = riders(self.listens, self.sockets, key)
            if served:      # a wildcard socket for the addresses of its port too (wildcard.py)
                routes = {k[0]: self._handler(self.listens[k]) for k in served}
                fallback = self._handler(ls)
                for sock in socks if isinstance(socks, (list, tuple)) else (socks,):
                    self.servers.append(WildcardServer(loop, sock, backlog, routes, fallback))
                continue
            if ls.ssl_context is not None:      # TLS on the raw socket (tls_transport.py)
                accepted = partial(TlsAcceptor, self, ls)
                for sock in socks if isinstance(socks, (list, tuple)) else (socks,):
                    self.servers.append(TlsServer(loop, sock, backlog, accepted))
                continue
            # a partial, not a lambda: no Python frame per accepted connection
            proto = HttpConnection
            if ls.http2 and ls.ssl_context is None:
                proto = CleartextHttp2    # the HTTP/2 preface, else HTTP/1.x
            if ls.proxy_protocol:
                factory = partial(ProxyProtocolAcceptor, self, ls, proto)
            else:
                factory = partial(proto, self, ls)
            # uvloop listens again on the socket: with the listen's backlog, not its default
            for sock in socks if isinstance(socks, (list, tuple)) else (socks,):
                if proto is HttpConnection and not ls.proxy_protocol \
                        and sock.family != socket.AF_UNIX:
                    # the worker's own accept: a connection's first request on the raw
                    # socket (server/plain_transport.py)
                    self.servers.append(PlainServer(loop, sock, backlog, factory, self.poller))
                    continue
                if sock.family == socket.AF_UNIX:
                    srv = await loop.create_unix_server(factory, sock=sock, backlog=backlog)
                else:
                    srv = await loop.create_server(factory, sock=sock, backlog=backlog)
                self.servers.append(srv)

    def _handler(self, ls):
        """(accepted socket, peer) -> its connection on `ls` started, the way start() starts
        one on a socket of `ls`'s own (for a wildcard socket serving other addresses)."""
        loop = self.loop
        if ls.ssl_context is not None:
            return partial(TlsAcceptor, self, ls)
        proto = CleartextHttp2 if ls.http2 else HttpConnection
        if ls.proxy_protocol:
            factory = partial(ProxyProtocolAcceptor, self, ls, proto)
        else:
            factory = partial(proto, self, ls)
        if proto is HttpConnection and not ls.proxy_protocol:
            poller = self.poller
            return lambda conn, peer: PlainTransport(loop, poller, conn, peer).start(factory())
        return lambda conn, peer: loop.create_task(
            loop.connect_accepted_socket(factory, sock=conn))

    def _backlog(self, key) -> int:
        """The `backlog=` of the listen that sets the socket's options (nginx's default 511)."""
        _, servers = self.config.by_listen[key]
        return socket_listen(l for s in servers for l in s.listens if l.key == key).backlog

    def stop_accepting(self) -> None:
        self.draining = True
        # keep-alive ends after each connection's current request: send_response's quick test
        # reads ka_young, not `draining` (http/respond.py KA_YOUNG)
        self.ka_young_after = _DRAINING
        for conn in self.connections:
            if isinstance(conn, HttpConnection):
                conn.ka_young = _DRAINING
        for srv in self.servers:
            srv.close()
        self.servers = []

    def close_idle(self) -> None:
        for conn in list(self.connections):
            conn.close_if_idle()
        self.pool.close_all()

    async def drain(self, timeout: float | None) -> None:
        loop = self.loop
        deadline = None if timeout is None else loop.time() + timeout
        while self.connections or self.tunnels:
            if deadline is not None and loop.time() >= deadline:
                self.shutdown_tunnels()
                self.abort()
                break
            self.close_idle()
            await asyncio.sleep(0.05)
        alog.flush_all()

    def shutdown_tunnels(self) -> None:
        for t in list(self.tunnels):
            t.close("shutdown")

    def abort(self) -> None:
        self.stop_accepting()
        for conn in list(self.connections):
            conn.abort()
        for t in list(self.tunnels):
            t.abort()
        self.pool.close_all()
        alog.flush_all()

    def reopen_logs(self) -> None:
        alog.reopen_all()

    # ------------------------------------------------------------ bookkeeping

    def next_connection_number(self) -> int:
        self._counter += 1
        return self._counter

    def connection_opened(self, conn) -> bool:
        """worker_connections bounds the client connections (a tunnel counts as two, as its
        upstream side does in nginx; one inside an HTTP/2 connection counts its upstream side
        only); past it a new connection is closed at once. (server/connection.py's
        connection_made has a copy of the usual case, as its connection_lost of
        connection_closed's.)"""
        if len(self.connections) + 2 * len(self.tunnels) - self.stream_tunnels \
                >= self.worker_connections:
            if not self._connections_warned:
                self._connections_warned = True
                error_log.alert(f"{self.worker_connections} worker_connections are not enough")
            conn.transport.abort()
            return False
        self._connections_warned = False
        self.connections.add(conn)
        stats = self.stats
        if stats is not None:
            if self._handover or conn.handed_over:
                stats.active(self.connection_count)
            else:
                stats.accepted(self.connection_count)
        self._handover = False
        return True

    def connection_closed(self, conn, handover: bool = False, tunnel: bool = False) -> None:
        """`handover`: the same client connection goes on in another protocol object
        (PROXY header read, TLS sniffed): the next connection_opened is not a new accept.
        `tunnel`: it goes on as a tunnel, whose errors are still its request's (the location's
        error_log stays bound until tunnel_closed)."""
        self.connections.discard(conn)
        self._handover = handover
        if not (handover or tunnel) and error_log.LOG.bound:    # its location's error_log, if
            error_log.forget(getattr(conn, "number", 0))   # one was bound (a TLS handshake has
                                                           # no number)
        if self.stats is not None:
            self.stats.active(self.connection_count)

    def tunnel_opened(self, tunnel) -> None:
        self.tunnels.add(tunnel)
        if tunnel.protocol == "h2":         # its client connection stays in self.connections
            self.stream_tunnels += 1
        if self.stats is not None:
            self.stats.active(self.connection_count)

    def tunnel_closed(self, tunnel) -> None:
        if tunnel in self.tunnels:
            self.tunnels.remove(tunnel)
            if tunnel.protocol == "h2":
                self.stream_tunnels -= 1
        if error_log.LOG.bound:             # (else nothing to forget: a call less per tunnel)
            error_log.forget(getattr(tunnel, "number", 0))
        if self.stats is not None:
            self.stats.active(self.connection_count)

    @property
    def connection_count(self) -> int:
        """Client connections: an HTTP/1.1 tunnel is its client's connection, an HTTP/2 one a
        stream of a connection counted already."""
        return len(self.connections) + len(self.tunnels) - self.stream_tunnels

    # ------------------------------------------------------------ access log

    def access_log(self, ctx) -> None:
        """ctx's access log line (server/lifecycle.py's finish_request has a copy: log_writers)."""
        conf = ctx.conf
        writers = self._writers[conf.log.slot] if conf is not None else None
        if writers is None:
            writers = self.access_log_writers(ctx)
        for w in writers:
            w.write(ctx)

    def access_log_writers(self, ctx) -> tuple:
        """The AccessLogWriters ctx's line goes to (empty with `access_log off`)."""
        conf = ctx.conf
        if conf is None:
            server = ctx.server or ctx.conn.listen.default_server
            conf = server.conf
        writers = self._writers[conf.log.slot]
        if writers is None:
            writers = self._writers[conf.log.slot] = self._make_writers(
                self.config.access_logs[conf.log.slot])
        return writers

    def _make_writers(self, logs: tuple) -> tuple:
        """The writers of one access_log list, opened on first use (() is nginx's default)."""
        logs = logs or (AccessLog(os.path.join(self.config.prefix, "logs/access.log")),)
        out = []
        for spec in logs:
            if spec.path == "off":
                continue
            try:
                out.append(alog.writer_for(spec))
            except OSError as err:
                error_log.alert(f'open() "{spec.path}" failed {error_log.os_error(err)}')
        return tuple(out)
