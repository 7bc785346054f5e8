"""The peer side of an upstream exchange (proxy/exchange.py): choosing a peer (the balancer's
take(), which counts its connection), connecting (*_bind, TLS, *_connect_timeout), retrying
on the next peer (upstream/retry.py), and the connection's release to the keepalive pool or
its close.
"""
from __future__ import annotations

import asyncio
import ssl
import time
from functools import partial

from ngate.config.model import UpstreamServer
from ngate.http import phases
from ngate.observability import error_log
from ngate.proxy.bind import BindError, connect_bound, local_address
from ngate.proxy.exchange_base import ExchangeBase
from ngate.proxy.exchange_state import CONNECTING, DONE
from ngate.proxy.upstream_conn import Connect, TlsUpstreamConnection, UpstreamConnection
from ngate.server import flow
from ngate.upstream import attempts, retry
from ngate.upstream.attempts import Attempt, new_attempt
from ngate.upstream.connect import NO_SOCKET as _NO_SOCKET, PlainConnect
from ngate.upstream.balancer import balancer_for, release, report_failure
from ngate.upstream.failure import Failure, Phase, UpstreamError, connect_failed
from ngate.upstream.tls import handshake_error, open_tls

_MAX_TRIES = 64


class PeerSide(ExchangeBase):
    """Mixed into UpstreamExchange: see ExchangeBase for the fields."""
    __slots__ = ()

    # ------------------------------------------------------------ peers and tries

    def connect(self) -> None:
        if self.tries >= _MAX_TRIES:
            return self.fail(UpstreamError(Failure.TOO_MANY_TRIES, Phase.CONNECT))
        if self.counted is not None:
            self._count(-1)
        if self.state is not CONNECTING:
            self._to(CONNECTING)        # a failed try: the next peer
        ctx = self.ctx
        b = self.upstream.state.value or balancer_for(self.upstream)
        peer = b.single
        if peer is None or self.tried:
            peer = b.take(ctx, self.tried)          # counted when it counts
        if peer is None:
            # every peer is down or failed: nginx names the group in $upstream_addr and in
            # the log's upstream: "...", with status 502
            a = self._new_try(self.upstream.name)
            a.status = 502
            return self.fail(self._logged(UpstreamError(Failure.NO_LIVE, Phase.CONNECT,
                                                        "no live upstreams")))
        self.tries += 1
        self.peer = peer
        if self.counts:
            self._count(1)
        if ctx.upstream_tries is None:      # the usual first try, written out (hot path)
            self.started = now = time.monotonic()
            a = self.attempt = new_attempt(peer.name, now)
            ctx.upstream_tries = [a]
        else:
            self._new_try(peer.name)
        up = self.upstream
        if up.keepalive:
            key = id(up), peer.unix or peer.host, peer.port
            if self.tls is not None:        # reused for the same peer and TLS identity
                key += self.tls
            self.pool_key = key
            pooled = self.conn.runtime.pool.get(key)
            if pooled is not None:
                self.reused = True
                return self.attach(pooled)
        self.reused = False
        self.arm(self.plan.connect_timeout)
        self.connecting = self.start_connect(peer, True)

    def start_connect(self, peer: UpstreamServer, repool: bool = False):
        """A new connection to `peer`: a plain TCP one on the raw socket (upstream/connect.py),
        any other (TLS, *_bind, a unix socket) through uvloop (_open). `repool`: take_freed
        first."""
        poller = self.conn.runtime.poller
        if poller is not None and self.tls is None and not peer.unix and not self.plan.bind:
            return PlainConnect(self, peer, poller, repool)
        return Connect(self.loop, self._open(peer, repool))

    def take_freed(self) -> bool:
        """A new connection's first step when connect() found the pool empty (`repool`): it
        runs from the loop after the rest of the turn (upstream_conn.py Connect, upstream/
        connect.py PlainConnect), and a connection to the peer that a response of that turn
        freed meanwhile is taken, as connect() would have, instead of opening one (under load,
        ~1 in 5 of those connects: bench/PROFILE.md, Session 11 (s11-proxied)). Not after a
        pooled connection the peer had closed (exchange.py upstream_lost: a fresh one)."""
        if self.pool_key is None:
            return False
        pooled = self.conn.runtime.pool.get(self.pool_key)
        if pooled is None:
            return False
        self.connecting = None
        self._cancel_timer()
        self.reused = True
        self.attach(pooled)
        return True

    def _new_try(self, addr: str) -> Attempt:
        first = self.attempt is None
        a = self.attempt = attempts.add(self.ctx, addr, time.monotonic(), first)
        if first:
            self.started = a.start
        return a

    async def _open(self, peer: UpstreamServer, repool: bool = False) -> None:
        """A new connection to `peer` for this try, attached (uvloop's way). `repool`:
        take_freed first."""
        loop = self.loop
        if repool and self.take_freed():
            return
        try:
            local = self.plan.bind and local_address(self.ctx, self.plan.bind)
            sock = local and await connect_bound(loop, peer, local)     # *_bind
            if self.tls is not None:     # proxy_connect_timeout: the CONNECTING deadline
                proto = TlsUpstreamConnection(peer)
                proto.session_key = await open_tls(loop, peer, self.tls, proto, sock)
            elif sock:
                _, proto = await loop.create_connection(partial(UpstreamConnection, peer),
                                                        sock=sock)
            elif peer.unix:
                _, proto = await loop.create_unix_connection(partial(UpstreamConnection, peer),
                                                             peer.unix)
            else:
                _, proto = await loop.create_connection(partial(UpstreamConnection, peer),
                                                        peer.host, peer.port)
        except BindError as exc:
            self.connecting = None
            return self.bind_failed(exc)
        except ssl.SSLError as exc:
            self.connecting = None
            return self.next_peer(UpstreamError(Failure.TLS_FAILED, Phase.CONNECT,
                                                handshake_error(exc)))
        except OSError as exc:
            if exc.errno in _NO_SOCKET:     # (only socket() fails so)
                return self.socket_failed(exc)
            return self.connect_error(exc)
        except asyncio.CancelledError:
            return
        self.connected(proto)

    def connected(self, proto) -> None:
        """The try's new connection is made (_open, upstream/connect.py PlainConnect)."""
        self.connecting = None
        if self.state is DONE:
            proto.close()
            return
        self._cancel_timer()
        self.attach(proto)

    def connect_error(self, exc: OSError) -> None:
        """The try's connect failed: the next peer, as proxy_next_upstream says."""
        self.connecting = None
        self.next_peer(connect_failed(exc))

    def socket_failed(self, exc: OSError) -> None:
        """socket() failed (no file descriptor left): nginx's ngx_event_connect_peer logs
        [alert] and the request ends with 500, no next upstream."""
        self.connecting = None
        error_log.alert(f"socket() failed ({exc.errno}: {exc.strerror}) while connecting to "
                        "upstream" + error_log.request_suffix(self.ctx, self.wire.upstream_url(self)),
                        self.conn.number)
        self.finish()
        phases.finalize(self.ctx, 500)

    def bind_failed(self, exc) -> None:
        """*_bind could not bind: nginx logs [crit] and answers 500 (no next upstream)."""
        error_log.crit(exc.strerror + " while connecting to upstream"
                       + error_log.request_suffix(self.ctx, self.wire.upstream_url(self)),
                       self.conn.number)
        self.finish()
        phases.finalize(self.ctx, 500)

    def _count(self, delta: int) -> None:
        """The peer's count of active connections (least_conn, max_conns; no bookkeeping for
        other groups): taken with the peer by the balancer's take(), as nginx does, given back
        once (release; a pooled keep-alive connection is not active)."""
        if not self.counts:
            return
        if delta > 0:
            self.counted = self.peer        # counted by the balancer's take()
        elif self.counted is not None:
            release(self.upstream, self.counted)
            self.counted = None

    def _tried(self, peer) -> None:
        tried = self.tried
        if not tried:
            tried = self.tried = set()
        tried.add(peer)

    def next_peer(self, err: UpstreamError) -> None:
        """A try failed: log, count it against the peer, and try the next one when
        proxy_next_upstream allows (upstream/retry.py), else answer with err's status."""
        if self.state is DONE:
            return
        self._cancel_timer()
        peer = self.peer
        self._drop_connection()
        a = self.attempt
        if not a.status:
            a.status = err.status
        self._logged(err)
        if report_failure(self.upstream, peer):
            self._disabled(err.phase)
        self._tried(peer)
        if self.may_try_next(err.kind.condition if err.retry_safe else None):
            return self.connect()
        self.fail(err)

    def next_on_status(self, status: int) -> None:
        """proxy_next_upstream http_XXX: the peer's response is discarded with its connection and
        the next peer tried; a failure for the peer's health except for 403 and 404."""
        self._cancel_timer()
        peer = self.peer
        self._drop_connection()
        self.status = 0
        if status not in (403, 404) and report_failure(self.upstream, peer):
            self._disabled(Phase.HEADER)
        self._tried(peer)
        self.connect()

    # ------------------------------------------------------------ the upstream connection

    def release(self, reuse: bool) -> None:
        body = self.body
        if body is not None and body.spool is not None:
            body.close()
        if self.counted is not None:
            self._count(-1)
        u = self.uconn
        if u is None:
            return
        self.uconn = None
        u.exchange = None
        if not reuse:
            u.close()
        elif self.feeding:
            # the parser may still hold bytes of this read after the response's end: pooled
            # only once they are parsed (they close the connection), never handed on
            self.pool_pending = u
        else:
            self._pool(u)

    def _pool(self, u) -> None:
        if u.leftover or u.closed:
            u.close()
            return
        if self.throttle is not None:
            flow.resume(u)                      # *_limit_rate may have paused it
        up = self.upstream
        self.conn.runtime.pool.put(self.pool_key, u, up.keepalive, up.keepalive_timeout)

    def _drop_connection(self) -> None:
        """A failed try's connection is closed (never pooled)."""
        self.body_open = False
        u = self.uconn
        if u is not None:
            self.uconn = None
            u.exchange = None
            u.close()
            self._count(-1)

    def uconn_reusable_flag(self, ok: bool) -> None:
        if not ok and self.uconn is not None:
            self.uconn.requests = 1 << 30   # never pooled again

    def may_try_next(self, condition: str | None) -> bool:
        """upstream/retry.py's rule for this exchange's request and tries."""
        plan = self.plan
        return retry.may_retry(
            condition, plan.next_upstream, tries=self.tries,
            servers=sum(not s.down for s in self.upstream.servers),
            tries_limit=plan.next_upstream_tries, timeout=plan.next_upstream_timeout,
            elapsed=time.monotonic() - self.started if plan.next_upstream_timeout else 0.0,
            head_sent=self.ctx.head_sent, method=self.ctx.method, sent=bool(self.sent_bytes),
            replayable=self.body.replayable)

