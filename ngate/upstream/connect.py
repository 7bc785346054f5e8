"""A plain TCP connection to an upstream peer, made on the raw socket as nginx makes it.

uvloop's create_connection costs, per connection: a coroutine and its futures (driven by
proxy/upstream_conn.py Connect), a TCPTransport whose setup calls setsockopt(TCP_NODELAY),
getsockname and getpeername, a call_soon handle for connection_made and an epoll_ctl DEL at the
close. PlainConnect makes the socket non-blocking from the start (SOCK_NONBLOCK: no FIONBIO
ioctl), connects, waits for writability in the worker's epoll set (server/plain_transport.py
Poller), reads the connect's result (SO_ERROR, as nginx's ngx_http_upstream_test_connect) and
hands the socket to a PlainTransport with an UpstreamConnection on it: socket, connect,
epoll_ctl ADD, getsockopt, epoll_ctl MOD (reading from now on), then the exchange's reads and
writes, close.

The connection keeps the plain transport under load: handing a pooled connection to uvloop
(loop.connect_accepted_socket at its second request) cost more than it saved, since the pool
turns over under load (bench/PROFILE.md, Session 11 (s11-connsetup): h1cpu keep-alive +7%,
close +9%), while the plain transport's reads and writes cost what uvloop's do there
(keep-alive within 1%). On a quiet loop the pool hands its idle ones over at a tick
(upstream/pool.py hand_over_raw): there each response's hop through the Poller costs 3-7 us
of latency (Session 12 (s12-p99)).

The connect itself runs from the loop (call_soon), not inside the exchange's turn: measured,
the same connect in the caller's turn cost ~3% more live CPU (as s10-fastcgi's, Session 10).

States of a PlainConnect: scheduled -> connecting (registered for EPOLLOUT) -> done (the
exchange has its connection: `connected(proto)`, or the error: `connect_error(exc)`, which
tries the next peer), or cancelled (proxy_connect_timeout, the request ended: the socket, if
any, is closed; `exchange` None).

Used for TCP peers without proxy_bind and TLS, when the worker has a Poller (the live worker
always does; the in-process benches use uvloop's way).
"""
from __future__ import annotations

import errno
import os
import socket

from ngate.proxy.upstream_conn import UpstreamConnection
from ngate.server.plain_transport import _OUT, PlainTransport, _Socket

_NONBLOCK_STREAM = int(socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
NO_SOCKET = (errno.EMFILE, errno.ENFILE)    # socket()'s "no descriptor": [alert], 500 (nginx)
_INET, _INET6 = int(socket.AF_INET), int(socket.AF_INET6)
_INPROGRESS = (errno.EINPROGRESS, 0)


class PlainConnect:
    """One connect of `exchange` (proxy/exchange_peer.py PeerSide) to `peer`; cancel() stops
    it (module docstring)."""
    __slots__ = ("exchange", "peer", "sock", "poller", "repool")

    def __init__(self, exchange, peer, poller, repool: bool = False) -> None:
        self.exchange = exchange
        self.peer = peer
        self.poller = poller
        self.sock = None
        self.repool = repool            # exchange.take_freed() first (exchange_peer.py)
        poller.loop.call_soon(self._connect)

    def _connect(self) -> None:
        exchange = self.exchange
        if exchange is None:
            return                      # cancelled before it began
        if self.repool and exchange.take_freed():
            self.exchange = None
            return
        peer = self.peer
        host = peer.host
        try:
            sock = _Socket(_INET6 if ":" in host else _INET, _NONBLOCK_STREAM)
        except OSError as exc:      # no descriptor left (nginx: socket() failed, a 500)
            self.exchange = None
            if exc.errno in NO_SOCKET:
                return exchange.socket_failed(exc)
            return exchange.connect_error(exc)
        self.sock = sock
        err = sock.connect_ex((host, peer.port))
        if err in _INPROGRESS:
            try:
                self.poller.add(sock.fileno(), self, _OUT)
            except OSError as exc:  # epoll_ctl: no memory, or max_user_watches
                self._failed(exc.errno)
        else:       # refused at once
            self._failed(err)

    def _event(self, ev: int) -> None:
        sock = self.sock
        if sock is None:
            return
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            return self._failed(err)
        self.sock = None
        peer = self.peer
        proto = UpstreamConnection(peer)
        PlainTransport(self.poller.loop, self.poller, sock, (peer.host, peer.port)) \
            .start_connected(proto)
        exchange = self.exchange
        self.exchange = None
        exchange.connected(proto)

    def _failed(self, err: int) -> None:
        sock = self.sock
        if sock is None:
            return                      # cancelled meanwhile
        self.sock = None
        self.poller.handlers.pop(sock.fileno(), None)
        sock.close()
        exchange = self.exchange
        self.exchange = None
        exchange.connect_error(OSError(err, os.strerror(err)))

    def cancel(self) -> None:
        self.exchange = None
        sock = self.sock
        if sock is not None:
            self.sock = None
            self.poller.handlers.pop(sock.fileno(), None)
            sock.close()                # (the kernel drops it from the epoll set)
