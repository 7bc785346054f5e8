"""Where a request meets the resolver: proxy_pass / fastcgi_pass with variables whose host is
no `upstream` block and no address (ngx_http_upstream_init_request, _resolve_handler).

Without a `resolver` the request gets 502 and "no resolver defined to resolve NAME". Otherwise
the request waits for the name (the connection's writer is the wait, so a client that leaves
cancels it); an error or resolver_timeout gives 502 and "NAME could not be resolved (3: Host not
found)"; addresses become the request's implicit group, round robin and proxy_next_upstream over
them, and the content handler runs again (it finds the group in ctx.resolved, once).
"""
from __future__ import annotations

from ngate.config.model import Upstream, UpstreamServer
from ngate.http import log, phases
from ngate.observability import error_log
from ngate.resolver import wire
from ngate.resolver.client import Waiter

_GROUPS: dict[tuple, Upstream] = {}


def lookup(ctx, host: str, port: int) -> None:
    """Answer the request (502) or start resolving `host` for it."""
    conf = ctx.conf.resolver
    if conf is None:
        error_log.error(f"no resolver defined to resolve {host}" + error_log.request_suffix(ctx),
                        ctx.conn.number)
        phases.finalize(ctx, 502)
        return
    resolver = conf.runtime(ctx.conn.runtime.loop)
    wait = _Wait(ctx, host, port, resolver)
    ctx.conn.writer = wait
    resolver.resolve(wait.waiter, ctx.conf.resolver_timeout)


def resolved(ctx, host: str, port: int):
    """The group a finished resolution left for this request's host:port, taken once."""
    res = ctx.resolved
    if res is not None and res[0] == host and res[1] == port:
        ctx.resolved = None
        return res[2]
    return None


def group(host: str, port: int, addrs: tuple) -> Upstream:
    """The implicit group of a name's addresses (ngx_http_upstream_create_round_robin_peer:
    weight 1, made in the request's pool: no peer state outlives the request)."""
    key = (host, port, addrs)
    up = _GROUPS.get(key)
    if up is None:
        servers = tuple(UpstreamServer(host=a, port=port, slot=i,
                                       name=f"[{a}]:{port}" if ":" in a else f"{a}:{port}")
                        for i, a in enumerate(addrs))
        if len(_GROUPS) >= 1024:
            _GROUPS.clear()
        up = _GROUPS[key] = Upstream(name=f"{host}:{port}", servers=servers, implicit=True,
                                       per_request=True)
    return up


class _Wait:
    """The connection's writer while its request waits for a name."""
    __slots__ = ("ctx", "port", "resolver", "waiter")

    def __init__(self, ctx, host: str, port: int, resolver) -> None:
        self.ctx = ctx
        self.port = port
        self.resolver = resolver
        self.waiter = Waiter(host, self.finished, host)

    def finished(self, waiter: Waiter, code: int, addrs) -> None:
        ctx = self.ctx
        if ctx.conn.writer is self:
            ctx.conn.writer = None
        self.resolver.done()
        if ctx.logged:
            return
        if code:
            error_log.error(f"{waiter.name} could not be resolved ({code}: {wire.strerror(code)})"
                            + error_log.request_suffix(ctx), ctx.conn.number)
            phases.finalize(ctx, 502)
            return
        ctx.resolved = (waiter.data, self.port, group(waiter.data, self.port, addrs))
        phases.guarded(phases.content, ctx)

    def client_gone(self) -> None:
        self.waiter.cancel()
        ctx = self.ctx
        if ctx.conn.writer is self:
            ctx.conn.writer = None
            if not ctx.head_sent:
                ctx.status = 499
                error_log.info("epoll_wait() reported that client prematurely closed connection"
                               + error_log.request_suffix(ctx), ctx.conn.number)
        if not ctx.logged:
            log.log_request(ctx)

    def abort_with(self, status: int) -> None:
        self.waiter.cancel()
        self.ctx.conn.writer = None
        self.ctx.keep_alive = False
        phases.finalize(self.ctx, status)

    def downstream_paused(self) -> None:
        pass

    def downstream_resumed(self) -> None:
        pass
