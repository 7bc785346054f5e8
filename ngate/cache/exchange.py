"""The proxy_cache content handler (ngx_http_upstream_cache and ngx_http_upstream_send_response's
cache part, nginx 1.22).

  method not in proxy_cache_methods      plain proxy, $upstream_cache_status empty
  proxy_cache_bypass true                BYPASS: upstream; the response may still be stored
  entry fresh                            HIT (served from the entry, Range and If-* applied)
  entry expired, being fetched here      UPDATING when proxy_cache_use_stale has `updating`
  entry expired                          EXPIRED: upstream (conditional with
                                         proxy_cache_revalidate: a 304 is REVALIDATED); an
                                         error/timeout/http_5xx listed in use_stale: STALE
  no entry                               MISS (proxy_cache_lock: wait for the request already
                                         fetching it, up to proxy_cache_lock_timeout)

The CachingExchange streams the response as any UpstreamExchange does and keeps its body; at
its end, when the response is cacheable (cache/policy.py) and proxy_cache_min_uses is reached,
the entry is written (cache/store.py). A request with Range or If-* headers waits for a
cacheable 200 to be stored, then gets it from the entry like a hit (upstream never sees the
client's Range or conditionals: nginx's cache headers replace them).

The modules: cache/lookup.py (the lookup and CacheState), cache/ending.py (the stored response,
answers from an entry), cache/wire_http1.py (CacheWire), this module (the proxy_cache content
handler and CachingExchange, proxy's exchange that stores); cache/fastcgi.py is fastcgi_cache's.
"""
from __future__ import annotations

from ngate.cache.ending import MEMORY_LIMIT, CacheEnding, entry_meta, too_big
from ngate.cache.lookup import CacheState, Kind, begin, lookup, zone_for
from ngate.cache.wire_http1 import CACHE_HTTP1, CacheWire
from ngate.proxy.exchange import UpstreamExchange
from ngate.proxy.exchange_state import DONE, STREAMING, SWITCHING
from ngate.proxy.http_proxy import proxy_exchange, resolve_variable, start_exchange
from ngate.proxy.proxy_request import plan_for, uncached_plan_for
from ngate.proxy.response_head import as_sent

__all__ = ["CACHE_HTTP1", "PROXY", "CacheEnding", "CacheState", "CacheWire", "CachingExchange",
           "Kind", "begin", "cache_handler", "entry_meta", "lookup",
           "uncached_exchange", "zone_for"]


def cache_handler(ctx) -> None:
    pp = ctx.conf.proxy.pass_
    cc = ctx.conf.proxy.cache
    if ctx.method not in cc.methods:
        return _start_uncached(ctx, pp)
    target = None
    if pp.template is not None:
        target = resolve_variable(ctx, pp)
        if target is None:
            return
    else:
        ctx.proxy_host = pp.host_header
    begin(ctx, cc, PROXY, target)


def uncached_exchange(ctx, upstream) -> UpstreamExchange:
    """A request under proxy_cache that will not be stored (below proxy_cache_min_uses, after
    proxy_cache_lock_timeout): proxied as without a cache, its $upstream_cache_status kept."""
    return proxy_exchange(ctx, upstream, uncached_plan_for(ctx.conf))


def _start_uncached(ctx, pp) -> None:
    """A request the cache does not take (method not in proxy_cache_methods): proxied as
    without proxy_cache, $upstream_cache_status empty."""
    if pp.template is None:
        ctx.proxy_host = pp.host_header
        return uncached_exchange(ctx, pp.upstream).start()
    target = resolve_variable(ctx, pp)
    if target is not None:
        start_exchange(ctx, uncached_exchange, *target)


def _start(ctx, make, target) -> None:
    if target is None:
        make(ctx, ctx.conf.proxy.pass_.upstream).start()
    else:
        start_exchange(ctx, make, *target)


class CachingExchange(CacheEnding, UpstreamExchange):
    """An HTTP/1.x exchange whose response may be stored (its response events are the
    exchange's, with the cache's decisions first)."""
    __slots__ = ("writer", "deferred")

    def __init__(self, ctx, upstream) -> None:
        super().__init__(ctx, upstream, CACHE_HTTP1, plan_for(ctx.conf))
        self.writer = None
        self.deferred = False

    # ------------------------------------------------------------ response head

    def status_text(self):
        return self.reason or as_sent(self.status, self.reason)

    def response_head(self, status: int) -> None:
        if status >= 200 and status != 101 and self.cache_head(status):
            return
        super().response_head(status)

    def _defer(self, status: int) -> bool:
        """Keep the response from the client until it is stored; it is then sent from the
        entry (Range, If-* applied), as nginx sends a response it caches."""
        self.got_head(status, self.resp_headers)
        self.body_open = False
        self._to(STREAMING)
        self.deferred = True
        framed = False
        for n, v in self.resp_headers:
            ln = n.lower()
            if ln == b"content-length" or (ln == b"transfer-encoding" and b"chunked" in v.lower()):
                framed = True
        self.until_close = not framed
        return True

    # ------------------------------------------------------------ body and end

    def response_body(self, body: bytes) -> None:
        w = self.writer
        if w is not None and self.state is not DONE:
            w.write(body)
            if w.size > MEMORY_LIMIT:
                self.writer = None
                if self.deferred:
                    self.ctx.keep_alive = False
                    return self.fail(too_big())
        if not self.deferred:
            super().response_body(body)

    def response_end_head(self) -> None:
        self._store()
        super().response_end_head()

    def response_end(self) -> None:
        state = self.state
        if state is SWITCHING or state is DONE or (self.status < 200 and self.status != 101):
            return
        self.complete_stored()


PROXY = Kind(lambda ctx: proxy_exchange(ctx, ctx.conf.proxy.pass_.upstream), _start,
             CachingExchange, uncached_exchange, "proxy")
