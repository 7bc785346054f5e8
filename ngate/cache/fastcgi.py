"""fastcgi_cache: nginx's cache for FastCGI responses (ngx_http_file_cache through
ngx_http_upstream, as for proxy_cache; nginx 1.22).

The lookup (HIT, MISS, BYPASS, EXPIRED, STALE, UPDATING, REVALIDATED, the lock, min_uses,
background update) is cache/lookup.py's, with the FASTCGI kind; the stored response and the
answers from an entry are cache/ending.py's. What differs is the response, which comes as a CGI
head on STDOUT (proxy/fastcgi_proxy.py):
  - the key has no default: without fastcgi_cache_key nginx warns and every request has the
    empty key (cache/config.py);
  - a HEAD stays a HEAD (no fastcgi_cache_convert_head): the application's response to it is
    read whole and stored, bounded by its Content-Length (fastcgi/rest.py);
  - under fastcgi_cache the client's If-Modified-Since, If-Unmodified-Since, If-None-Match,
    If-Match, Range and If-Range are not passed as HTTP_* params: nginx's
    ngx_http_fastcgi_cache_headers replace them (HTTP_IF_MODIFIED_SINCE and
    HTTP_IF_NONE_MATCH from the stale entry under fastcgi_cache_revalidate, the others empty,
    so not sent), unless a fastcgi_param of the same name sets them;
  - a response cut short (END_REQUEST before its Content-Length) is not stored.
"""
from __future__ import annotations

import time

from ngate.cache import policy
from ngate.cache.ending import MEMORY_LIMIT, CacheEnding, too_big
from ngate.cache.lookup import Kind, begin
from ngate.config.model import Upstream
from ngate.fastcgi import rest as body_rest
from ngate.proxy.exchange import UpstreamExchange
from ngate.proxy.exchange_state import DONE, STREAMING
from ngate.proxy.fastcgi_proxy import TEMPLATE, FastCGIWire, plan_for, variable_upstream

# ngx_http_fastcgi_cache_headers
CACHE_PARAMS = (("HTTP_IF_MODIFIED_SINCE", "$upstream_cache_last_modified"),
                ("HTTP_IF_UNMODIFIED_SINCE", ""), ("HTTP_IF_NONE_MATCH", "$upstream_cache_etag"),
                ("HTTP_IF_MATCH", ""), ("HTTP_RANGE", ""), ("HTTP_IF_RANGE", ""))


def cache_params(names: list) -> tuple[list, list]:
    """(params, names) nginx adds to a location under fastcgi_cache, in FastCGIPlan's form:
    the cache headers a fastcgi_param does not set already, sent only when not empty. Every
    name is returned (for the client-header skip list), the empty ones send nothing."""
    from ngate.routing.variables import compile_template
    taken = {n.upper() for n in names}
    params, added = [], []
    for name, value in CACHE_PARAMS:
        if name in taken:
            continue
        added.append(name)
        if value:
            params.append((TEMPLATE, name.encode("latin-1"), compile_template(value), True))
    return params, added


def fastcgi_exchange(ctx, upstream) -> UpstreamExchange:
    """A FastCGI exchange that does not store (a method fastcgi_cache_methods leaves out,
    below fastcgi_cache_min_uses, after fastcgi_cache_lock_timeout, a zone named by an empty
    variable), or only serves an entry's head rewriting (a hit)."""
    return UpstreamExchange(ctx, upstream, FastCGIWire(), plan_for(ctx.conf))


def fastcgi_cache_handler(ctx) -> None:
    conf = ctx.conf
    target = conf.fastcgi.pass_
    if target.__class__ is not Upstream:
        target = variable_upstream(ctx, target.render(ctx))
        if target is None:
            return
    if ctx.method not in conf.fastcgi.cache.methods:
        return fastcgi_exchange(ctx, target).start()    # $upstream_cache_status empty
    begin(ctx, conf.fastcgi.cache, FASTCGI, target)


def _start(ctx, make, target) -> None:
    make(ctx, target).start()


class CacheFastCGIWire(FastCGIWire):
    """FastCGI for a response that may be stored: no Accept-Ranges copied while it is
    cacheable (nginx's range filter adds one after add_header: policy.split_cacheable), the
    body of a HEAD read for the entry, a response cut short not stored."""
    __slots__ = ()

    def send_head(self, ex, status: int, headers=None) -> None:
        st = ex.ctx.cache
        headers, st.accept_ranges, _ = policy.split_cacheable(st.conf, ex.resp_headers,
                                                              time.time())
        super().send_head(ex, status, headers)

    @staticmethod
    def reads_head_body(ex) -> bool:
        return ex.writer is not None

    def _end_request(self, ex) -> None:
        if ex.state is STREAMING and ex.writer is not None \
                and body_rest.premature(self.rest, True) is not None:
            ex.writer = None        # cut short: not stored
            if ex.deferred:
                return self._bad_response(ex, body_rest.premature(self.rest,
                                                                  ex.plan.section.buffering))
        super()._end_request(ex)


class CachingFastCGI(CacheEnding, UpstreamExchange):
    """A FastCGI exchange whose response is stored when cacheable (cache/policy.py)."""
    __slots__ = ("writer", "deferred")

    def __init__(self, ctx, upstream) -> None:
        super().__init__(ctx, upstream, CacheFastCGIWire(), plan_for(ctx.conf))
        self.writer = None
        self.deferred = False

    # ------------------------------------------------------------ response head

    def response_head(self, status: int) -> None:
        if status >= 200 and self.cache_head(status):
            return
        super().response_head(status)

    def storing(self) -> None:
        self.wire.keeping = True

    def _defer(self, status: int) -> bool:
        """Keep the response from the client until it is stored, then send it from the entry
        (Range, If-* applied) as nginx's range and not_modified filters do on a cached one."""
        ctx = self.ctx
        self.got_head(status, self.resp_headers)
        self._to(STREAMING)
        self.deferred = True
        self.head_only = True       # nothing goes to the client from the stream
        length = None
        for n, v in self.resp_headers:
            if n.lower() == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    pass
        self.resp_length = length
        self.wire.rest = body_rest.initial(status, ctx.method, length)
        return True

    # ------------------------------------------------------------ body and end

    def keep_body(self, data: bytes) -> None:
        """Body bytes within the Content-Length (CacheFastCGIWire's `keeping`)."""
        w = self.writer
        if w is None or self.state is DONE:
            return
        w.write(data)
        if w.size > MEMORY_LIMIT:
            self.writer = None
            self.wire.keeping = False
            if self.deferred:
                self.ctx.keep_alive = False
                self.fail(too_big())

    def response_end_head(self) -> None:
        self._store()
        super().response_end_head()

    def response_end(self) -> None:
        if self.state is DONE:
            return
        self.complete_stored()


FASTCGI = Kind(lambda ctx: fastcgi_exchange(ctx, ctx.cache.target), _start, CachingFastCGI,
               fastcgi_exchange, "fastcgi")
