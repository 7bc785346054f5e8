"""A wildcard listen that also serves the addresses of its port not bound on their own.

With `listen 80;` and `listen 127.0.0.1:80;` nginx binds *:80 only (the specific address gets
a socket of its own only with `bind` or a socket option): ngx_http_init_listening. Each
connection on the wildcard socket then finds its address's configuration (its servers, its
default server, ssl, http2, proxy_protocol) by the address it reached (getsockname in
ngx_http_init_connection), the wildcard's own when none matches.

`WildcardServer` is that accept loop: `routes` maps a local address to the handler of its
listen, `fallback` is the wildcard's; a handler takes (accepted socket, peer).
"""
from __future__ import annotations

import socket

from ngate.server.raw_socket import Listener

WILDCARDS = ("0.0.0.0", "::")


def riders(keys, bound, key) -> list:
    """The listen keys served by the bound wildcard `key`: same family and port, not a
    wildcard, not bound on their own."""
    host, port = key
    if host not in WILDCARDS:
        return []
    v6 = ":" in host
    return [k for k in keys if k not in bound and k[0] != "unix" and k[0] not in WILDCARDS
            and k[1] == port and (":" in k[0]) == v6]


class WildcardServer(Listener):
    __slots__ = ("_routes", "_fallback", "_nodelay")

    def __init__(self, loop, sock, backlog: int, routes: dict, fallback) -> None:
        self._routes = routes
        self._fallback = fallback
        self._nodelay = sock.family in (socket.AF_INET, socket.AF_INET6)
        self._listen(loop, sock, backlog)

    def _accept(self) -> None:
        sock = self._sock
        routes = self._routes
        for _ in range(self.BATCH):
            try:
                conn, peer = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                return self._accept_failed(exc)
            try:
                conn.setblocking(False)
                if self._nodelay:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                handler = routes.get(conn.getsockname()[0], self._fallback)
                handler(conn, peer)
            except Exception as exc:        # one connection's failure is not the listener's
                conn.close()
                self._loop.call_exception_handler({"message": "accepting a connection failed",
                                                   "exception": exc})
