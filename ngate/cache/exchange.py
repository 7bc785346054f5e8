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
its end,
when the response is cacheable (cache/policy.py) and proxy_cache_min_uses is reached, the entry
is written (cache/store.py). A request with Range or If-* headers waits for a cacheable 200 to be
stored, then gets it from the entry like a hit (upstream never sees the client's Range or
conditionals: nginx's cache headers replace them).
"""
from __future__ import annotations

import time

from ngate.cache import policy, serve
from ngate.cache.store import Zone
from ngate.observability import error_log
from ngate.http import phases
from ngate.http.context import RequestContext
from ngate.proxy.exchange import NEXT_ON_STATUS, UpstreamExchange
from ngate.proxy.exchange_state import DONE, STREAMING, SWITCHING
from ngate.proxy.http_proxy import proxy_exchange, resolve_variable, start_exchange
from ngate.proxy.proxy_request import plan_for, uncached_plan_for
from ngate.proxy.response_head import as_sent
from ngate.proxy.wire_http1 import Http1Wire
from ngate.proxy.subrequest import SubrequestConn
from ngate.upstream.balancer import report_success
from ngate.upstream.failure import Failure, Phase, UpstreamError

_MEMORY_LIMIT = 64 << 20         # a body larger than this is passed on, not stored
_LOCK_POLL = 0.05
_CLIENT_VALIDATORS = (b"range", b"if-modified-since", b"if-none-match", b"if-match",
                      b"if-unmodified-since")


class Kind:
    """What the cache needs of the module whose responses it keeps (proxy, fastcgi), as
    nginx's ngx_http_file_cache serves both through ngx_http_upstream:
      plain(ctx)                 an exchange of the location, for its header rewriting (a hit)
      start(ctx, make, target)   run the exchange `make` makes (target: a resolved variable
                                 proxy_pass/fastcgi_pass, or None)
      caching, uncached          make (ctx, upstream) the exchanges that store, and that do not
      module                     "proxy" or "fastcgi": the zones it may use (its *_cache_path)"""
    __slots__ = ("plain", "start", "caching", "uncached", "module")

    def __init__(self, plain, start, caching, uncached, module: str) -> None:
        self.module = module
        self.plain = plain
        self.start = start
        self.caching = caching
        self.uncached = uncached


class CacheState:
    """ctx.cache: this request's cache lookup."""
    __slots__ = ("conf", "zone", "key", "h", "status", "entry", "store", "revalidate",
                 "converted", "owner", "accept_ranges", "stale_error", "target", "kind")

    def __init__(self, conf, zone, key: str, h: str, kind: Kind | None = None) -> None:
        self.kind = PROXY if kind is None else kind
        self.conf = conf
        self.zone = zone
        self.key = key
        self.h = h
        self.status = "MISS"
        self.entry = None           # an expired entry (revalidation, stale answers)
        self.store = True           # the response may be stored
        self.revalidate = False     # If-Modified-Since / If-None-Match go upstream
        self.converted = False      # a HEAD sent upstream as GET (proxy_cache_convert_head)
        self.owner = False          # this request marked the key busy (lock, updating)
        self.accept_ranges = False  # nginx's range filter adds Accept-Ranges (write_head)
        self.stale_error = False    # Cache-Control stale-if-error still covers the entry
        self.target = None          # (upstream, uri) of a proxy_pass with variables

    def release(self) -> None:
        if self.owner:
            self.owner = False
            self.zone.keys.set_busy(self.h, False)

    def last_modified(self) -> str:
        e = self.entry
        return e.meta.get("lm") or "" if self.revalidate and e is not None else ""

    def etag(self) -> str:
        e = self.entry
        return e.meta.get("etag") or "" if self.revalidate and e is not None else ""


def zone_for(cp) -> Zone:
    z = cp.store
    if z is None:                   # a configuration compiled without create_paths (tests)
        z = cp.store = Zone(cp)
    return z


def _revalidates(cc, entry) -> bool:
    """proxy_cache_revalidate: an expired 200 with a Last-Modified or an ETag is asked for
    conditionally."""
    return cc.revalidate and entry.status == 200 and \
        bool(entry.meta.get("lm") or entry.meta.get("etag"))


def cc_intercepts(conf, status: int) -> bool:
    return bool(conf.proxy_intercept_errors and phases.error_page_for(conf, status))


def _true(templates, ctx) -> bool:
    for t in templates:
        v = t.render(ctx)
        if v and v != "0":
            return True
    return False


def cache_handler(ctx) -> None:
    pp = ctx.conf.proxy_pass
    cc = ctx.conf.proxy_cache
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


def begin(ctx, cc, kind: Kind, target) -> None:
    """The cache's part of a request its method lets in: the zone (named by a variable:
    empty means no cache, unknown a 500), the key, proxy_cache_bypass, then the lookup."""
    cp = cc.zone
    if cp is None:
        name = cc.zone_name.render(ctx)
        if not name:
            return kind.start(ctx, kind.uncached, target)
        cp = cc.zones.get(name)
        if cp is None or cp.module != kind.module:     # nginx looks among its module's zones
            error_log.error(f'cache "{name}" not found' + error_log.request_suffix(ctx),
                            ctx.conn.number)
            return phases.finalize(ctx, 500)
    zone = zone_for(cp)
    key = cc.key.render(ctx)
    st = CacheState(cc, zone, key, zone.hash(key), kind)
    st.target = target
    ctx.cache = st
    if _true(cc.bypass, ctx):
        st.status = "BYPASS"
        return _upstream(ctx, st)
    lookup(ctx, st, time.monotonic())


def lookup(ctx, st: CacheState, started: float) -> None:
    cc = st.conf
    zone = st.zone
    entry = zone.open(st.key, st.h)
    if entry is not None and entry.meta.get("vary"):
        values = policy.vary_values(ctx.hdr, tuple(n.encode("latin-1")
                                                   for n in entry.meta["vary"]))
        if values != entry.meta.get("vary_values"):
            # another variant: nginx's secondary key, md5 of the key and the Vary values
            entry.close()
            st.h = zone.hash(st.key + "\0" + "\0".join(values))
            entry = zone.open(st.key, st.h)
            if entry is not None and policy.vary_values(ctx.hdr, tuple(
                    n.encode("latin-1") for n in entry.meta.get("vary", ()))) \
                    != entry.meta.get("vary_values", []):
                entry.close()
                entry = None
    now = time.time()
    if entry is not None:
        if entry.valid >= int(now):        # nginx: valid_sec >= ngx_time(), in seconds
            st.status = "HIT"
            zone.touch(entry)
            error = entry.meta.get("error")
            if error:
                entry.close()
                return phases.finalize(ctx, error)
            return serve.send_entry(ctx, st.kind.plain(ctx), entry)
        # Cache-Control stale-while-revalidate / stale-if-error (nginx's c->stale_updating,
        # c->stale_error)
        stale_updating = "updating" in cc.use_stale or \
            entry.valid + entry.meta.get("swr", 0) >= int(now)
        st.stale_error = entry.valid + entry.meta.get("sie", 0) >= int(now)
        busy = zone.keys.busy_since(st.h)
        if busy is not None and stale_updating \
                and time.monotonic() - busy < cc.lock_age + 60:
            st.status = "UPDATING"
            return serve.send_entry(ctx, st.kind.plain(ctx), entry)
        if cc.background_update and stale_updating and busy is None:
            # proxy_cache_background_update: the stale entry now, the update in a subrequest
            # (nginx: for a subrequest too, an SSI include, whose part is not held for it)
            st.status = "STALE"
            if ctx.main is None:
                hold = _FinishAfter(ctx)
                _background_update(ctx, st, hold.background_done)
                ctx.conn = hold
            else:
                _background_update(ctx, st, _no_wait)
            return serve.send_entry(ctx, st.kind.plain(ctx), entry)
        st.status = "EXPIRED"
        st.entry = entry
        st.revalidate = _revalidates(cc, entry)
    else:
        st.status = "MISS"
        if cc.min_uses > 1:
            if zone.keys.add_use(st.h) < cc.min_uses:
                st.store = False
    if cc.lock and st.store:
        busy = zone.keys.busy_since(st.h)
        if busy is not None and time.monotonic() - busy < cc.lock_age:
            if time.monotonic() - started < cc.lock_timeout:
                if entry is not None:
                    entry.close()
                    st.entry = None
                return _wait(ctx, st, started)
            st.store = False        # nginx: after proxy_cache_lock_timeout, not cached
    _upstream(ctx, st)


def entry_meta(ctx, st: CacheState, status: int, reason, headers) -> dict | None:
    """The stored description of a response (cache/store.py), or None when it is not to be
    cached (policy.valid_until, proxy_no_cache / fastcgi_no_cache)."""
    cc = st.conf
    valid = policy.valid_until(cc, status, headers, time.time())
    if not valid or _true(cc.no_cache, ctx):
        return None
    meta = {"key": st.key, "valid": valid, "date": int(time.time()), "status": status,
            "reason": (reason or b"").decode("latin-1"),
            "headers": [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]}
    swr, sie = policy.extensions(cc, headers)
    if swr:
        meta["swr"] = swr
    if sie:
        meta["sie"] = sie
    vary = policy.vary_names(headers, cc)
    if vary:
        meta["vary"] = [n.decode("latin-1") for n in vary]
        meta["vary_values"] = policy.vary_values(ctx.hdr, vary)
    for n, v in headers:
        ln = n.lower()
        if ln == b"last-modified":
            meta["lm"] = v.decode("latin-1")
        elif ln == b"etag":
            meta["etag"] = v.decode("latin-1")
    return meta


class _FinishAfter:
    """ctx.conn while a stale response is sent and its background update runs: the response
    goes out at once, but the request ends (log line, keep-alive or close) only once the update
    is done, as nginx's main request waits for its background subrequest."""
    __slots__ = ("_conn", "_ctx", "_pending", "_updated")

    def __init__(self, ctx) -> None:
        object.__setattr__(self, "_conn", ctx.conn)
        object.__setattr__(self, "_ctx", ctx)
        object.__setattr__(self, "_pending", False)
        object.__setattr__(self, "_updated", False)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._conn, name, value)

    def finish_request(self, ctx) -> None:
        if self._updated:
            ctx.conn = self._conn
            return self._conn.finish_request(ctx)
        object.__setattr__(self, "_pending", True)

    def background_done(self, sub_ctx, status, headers) -> None:
        object.__setattr__(self, "_updated", True)
        if self._pending:
            ctx = self._ctx
            ctx.conn = self._conn
            if not ctx.logged:
                self._conn.finish_request(ctx)


def _no_wait(sub_ctx, status, headers) -> None:
    """The background update of a subrequest's stale entry: nothing waits for it."""


def _background_update(ctx, st: CacheState, done) -> None:
    """nginx's background subrequest (NGX_HTTP_SUBREQUEST_BACKGROUND | CLONE): the same request
    sent upstream on its own, its response stored and dropped."""
    conn = SubrequestConn(ctx.conn, done)
    sub = conn.ctx = RequestContext(conn, ctx.method, ctx.request_uri, ctx.http_version,
                                    ctx.headers, ctx.hdr)
    sub.logged = True
    sub.internal = True
    sub.main = ctx.main or ctx
    for name in ("server", "loc", "conf", "host", "uri", "args", "captures", "proxy_host",
                 "content_length_in", "start", "start_wall"):
        setattr(sub, name, getattr(ctx, name))
    sub.content_length_in = None
    sub.vars = ctx.vars
    bg = CacheState(st.conf, st.zone, st.key, st.h, st.kind)
    bg.target = st.target
    bg.status = "EXPIRED"
    entry = st.zone.open(st.key, st.h)         # its own descriptor: the main request sends its
    if entry is not None:
        bg.entry = entry
        bg.revalidate = _revalidates(st.conf, entry)
    sub.cache = bg
    try:
        _upstream(sub, bg)
    except Exception as exc:  # noqa: BLE001 - a bug must cost one request, not the worker
        phases.internal_error(sub, exc)


class _Waiter:
    """The connection's writer while a request waits for proxy_cache_lock."""
    __slots__ = ("gone",)

    def __init__(self) -> None:
        self.gone = False

    def client_gone(self) -> None:
        self.gone = True

    def downstream_paused(self) -> None:
        pass

    def downstream_resumed(self) -> None:
        pass


def _wait(ctx, st: CacheState, started: float) -> None:
    waiter = _Waiter()
    ctx.conn.writer = waiter

    def again() -> None:
        if waiter.gone or ctx.logged:
            return
        ctx.conn.writer = None
        lookup(ctx, st, started)
    ctx.conn.runtime.loop.call_later(_LOCK_POLL, again)


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


def _range_too_far(ctx, limit) -> bool:
    """proxy_cache_max_range_offset (ngx_http_upstream_cache_check_range): a range starting
    beyond it, a suffix range, or any range with 0, is passed upstream and not cached."""
    rng = ctx.hdr.get(b"range")
    if rng is None or limit is None:
        return False
    if limit == 0:
        return True
    i = rng.lower().find(b"bytes=")
    if i < 0:
        return True
    p = rng[i + 6:].lstrip(b" ")
    if p[:1] == b"-":
        return True
    j = 0
    while j < len(p) and 48 <= p[j] <= 57:
        j += 1
    return int(p[:j] or b"0") > limit


def _upstream(ctx, st: CacheState) -> None:
    if st.store and _range_too_far(ctx, st.conf.max_range_offset):
        st.store = False
    kind = st.kind
    if not st.store:
        if st.entry is not None:
            st.entry.close()
            st.entry = None
        return kind.start(ctx, kind.uncached, st.target)
    if st.zone.keys.busy_since(st.h) is None:
        st.zone.keys.set_busy(st.h, True)
        st.owner = True
    if ctx.method == "HEAD" and st.conf.convert_head:
        st.converted = True
    kind.start(ctx, kind.caching, st.target)


def _start(ctx, make, target) -> None:
    if target is None:
        make(ctx, ctx.conf.proxy_pass.upstream).start()
    else:
        start_exchange(ctx, make, *target)


class CacheEnding:
    """How a caching exchange (proxy's CachingExchange, cache/fastcgi.py's CachingFastCGI) ends:
    the response stored, then sent from its entry when the client was held back (`deferred`);
    a failure answered from a stale entry when *_cache_use_stale allows it."""
    __slots__ = ()

    def complete_stored(self) -> None:
        ctx = self.ctx
        st = ctx.cache
        stored = self._store()
        if not self.deferred:
            return super().response_end()
        report_success(self.upstream, self.peer)
        self.finish(self.wire.reusable(self))
        entry = st.zone.open(st.key, st.h) if stored else None
        if entry is None:
            return phases.finalize(ctx, 500)
        serve.send_entry(ctx, self, entry, fresh=True)

    def answer_from_entry(self, status: int) -> bool | None:
        """The upstream's answer to a request made with a cache entry at hand: 304 to a
        revalidation, or a status *_cache_use_stale names, is answered from the entry (what
        _answer_from returns); None when neither applies."""
        st = self.ctx.cache
        entry = st.entry
        if status == 304 and st.revalidate:
            self._refresh(entry)
            return self._answer_from(entry, "REVALIDATED", status)
        kind = NEXT_ON_STATUS.get(status)
        if kind is not None and kind in st.conf.use_stale and not self.may_try_next(kind):
            return self._answer_from(entry, "STALE", status)
        return None

    def fail(self, err) -> None:
        ctx = self.ctx
        st = ctx.cache
        self.writer = None
        entry = st.entry
        if entry is not None and not ctx.head_sent and self.state is not DONE:
            if (err.kind.condition or "error") in st.conf.use_stale or st.stale_error:
                return self._answer_from(entry, "STALE")
        if entry is not None:
            entry.close()
            st.entry = None
        st.release()
        super().fail(err)

    def client_gone(self) -> None:
        st = self.ctx.cache
        self.writer = None
        if st.entry is not None:
            st.entry.close()
            st.entry = None
        st.release()
        super().client_gone()


class CacheWire(Http1Wire):
    """HTTP/1.x for a response that may be stored: Http1Wire.send_head with nginx's handling
    of a cacheable response's Last-Modified and Accept-Ranges (policy.split_cacheable); a HEAD
    sent upstream as GET gets its body read for the cache while the client gets the head."""
    __slots__ = ()

    def send_head(self, ex, status: int) -> None:
        ctx = ex.ctx
        st = ctx.cache
        headers, st.accept_ranges, listed_lm = policy.split_cacheable(
            st.conf, ex.resp_headers, time.time())
        out, ctype, length, lastmod, location, te_chunked, close = \
            ex.split_headers(headers, serve._CONSUMED_LISTED if listed_lm else serve._CONSUMED)
        if close or ex.uconn.parser.get_http_version() == "1.0":
            ex.uconn_reusable_flag(False)
        head_only = ex.write_head(status, ex.reason or as_sent(status, ex.reason), out,
                                  ctype, length, lastmod, location, te_chunked)
        if ex.state is DONE:
            return              # the range filter sent a 416 instead (filters/range.py)
        if st.converted:
            ex.until_close = ex.resp_length is None and not te_chunked and \
                status not in (204, 304)
        else:
            ex.until_close = (not head_only and status != 101 and ex.resp_length is None
                              and not te_chunked)
            if head_only and status != 101 and ctx.method == "HEAD" and status >= 200 \
                    and status not in (204, 304):
                ex.uconn_reusable_flag(False)
                return ex.response_end_head()
        if ex.state is STREAMING and ex.resp_length is None and not ex.until_close \
                and not ex.head_only:
            self.read_chunked(ex)


CACHE_HTTP1 = CacheWire()


class CachingExchange(CacheEnding, UpstreamExchange):
    """An HTTP/1.x exchange whose response may be stored (its response events are the
    exchange's, with the cache's decisions first)."""
    __slots__ = ("writer", "deferred")

    def __init__(self, ctx, upstream) -> None:
        super().__init__(ctx, upstream, CACHE_HTTP1, plan_for(ctx.conf))
        self.writer = None
        self.deferred = False

    # ------------------------------------------------------------ response head

    def response_head(self, status: int) -> None:
        if status >= 200 and status != 101 and self._cache_head(status):
            return
        super().response_head(status)

    def _cache_head(self, status: int) -> bool:
        """Decide what the cache does with this response; True when it took the response over
        (served from the entry, or deferred until it is stored)."""
        ctx = self.ctx
        st = ctx.cache
        if st.entry is not None:
            answered = self.answer_from_entry(status)
            if answered is not None:
                return answered
        if not st.store:
            return False
        meta = entry_meta(ctx, st, status, self.reason, self.resp_headers)
        if meta is None:
            return False
        if status >= 300 and cc_intercepts(ctx.conf, status):
            # proxy_intercept_errors: nginx stores the status alone (r->cache->error); a hit
            # then goes to the error_page as this response does now
            meta["error"] = status
            st.zone.writer(st.h, meta).commit()
            st.release()
            return False
        self.writer = st.zone.writer(st.h, meta)
        if status == 200 and ctx.method != "HEAD" and any(
                h in ctx.hdr for h in _CLIENT_VALIDATORS):
            return self._defer(status)
        return False

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

    def _answer_from(self, entry, status: str, code: int = 0) -> bool:
        ctx = self.ctx
        st = ctx.cache
        if code:
            self.attempt.status = code
        self._drop_upstream()
        st.status = status
        st.entry = None
        st.release()
        serve.send_entry(ctx, self, entry)
        return True

    def _drop_upstream(self) -> None:
        self.writer = None
        self.finish()

    def _refresh(self, entry) -> None:
        """A 304 to a revalidation: the entry is valid again (its headers updated from the
        304's validity headers, as nginx's ngx_http_file_cache_update_header)."""
        st = self.ctx.cache
        now = time.time()
        conf = st.conf
        stored = entry.headers
        # nginx: the 304's validity, else the stored headers' (re-read when the entry is sent),
        # else proxy_cache_valid for the stored status (headers_in re-parsed from the entry)
        valid = policy.header_valid(conf, self.resp_headers, now) or \
            policy.header_valid(conf, stored, now) or \
            policy.status_valid(conf, entry.status, now)
        if not valid:
            return
        meta = dict(entry.meta)
        meta["valid"] = valid
        swr, sie = policy.extensions(conf, self.resp_headers)
        if not (swr or sie):
            swr, sie = policy.extensions(conf, stored)
        meta["swr"], meta["sie"] = swr, sie
        w = st.zone.writer(st.h, meta)
        w.write(entry.read_body())
        w.commit()
        entry.valid = valid

    # ------------------------------------------------------------ body and end

    def response_body(self, body: bytes) -> None:
        w = self.writer
        if w is not None and self.state is not DONE:
            w.write(body)
            if w.size > _MEMORY_LIMIT:
                self.writer = None
                if self.deferred:
                    self.ctx.keep_alive = False
                    return self.fail(_too_big())
        if not self.deferred:
            super().response_body(body)

    def _store(self) -> bool:
        """The response is complete: write its entry (if it is to be stored)."""
        st = self.ctx.cache
        w = self.writer
        self.writer = None
        if st.entry is not None:
            st.entry.close()
            st.entry = None
        stored = w is not None and w.commit()
        if w is not None and not stored:
            ctx = self.ctx
            error_log.log("crit", f"cache entry not stored: {w.error}"
                          + error_log.request_suffix(ctx), ctx.conn.number)
        st.release()
        return stored

    def response_end_head(self) -> None:
        self._store()
        super().response_end_head()

    def response_end(self) -> None:
        state = self.state
        if state is SWITCHING or state is DONE or (self.status < 200 and self.status != 101):
            return
        self.complete_stored()


PROXY = Kind(lambda ctx: proxy_exchange(ctx, ctx.conf.proxy_pass.upstream), _start,
             CachingExchange, uncached_exchange, "proxy")


def _too_big():
    return UpstreamError(Failure.TOO_LARGE, Phase.BODY, "cached response is too large")
