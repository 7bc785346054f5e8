"""The cache lookup of one request under proxy_cache or fastcgi_cache (ngx_http_upstream_cache
and ngx_http_file_cache_open, nginx 1.22): the zone and the key, *_cache_bypass, the entry and its
Vary variant, then the answer:

  entry fresh                            HIT (served from the entry: cache/serve.py)
  entry expired, being fetched here      UPDATING when *_cache_use_stale has `updating`
  entry expired, background_update       STALE now, the update in a background subrequest
  entry expired                          EXPIRED: upstream (conditional under *_cache_revalidate)
  no entry                               MISS (*_cache_lock: wait for the request already
                                         fetching it, up to *_cache_lock_timeout;
                                         *_cache_min_uses: not stored below it)

It owns CacheState (ctx.cache) and Kind (what the proxy and fastcgi modules give the cache);
going upstream is the Kind's `start` with its `caching` or `uncached` exchange
(cache/exchange.py, cache/fastcgi.py), whose end is cache/ending.py's.
"""
from __future__ import annotations

import time

from ngate.cache import policy, serve
from ngate.cache.store import Zone
from ngate.http import phases
from ngate.http.context import RequestContext
from ngate.observability import error_log
from ngate.proxy.subrequest import SubrequestConn

_LOCK_POLL = 0.05


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

    def __init__(self, conf, zone, key: str, h: str, kind: Kind) -> None:
        self.kind = kind
        self.conf = conf
        self.zone = zone
        self.key = key
        self.h = h
        self.status = "MISS"
        self.entry = None           # an expired entry (revalidation, stale answers)
        self.store = True           # the response may be stored
        self.revalidate = False     # If-Modified-Since / If-None-Match go upstream
        self.converted = False      # a HEAD sent upstream as GET (proxy_cache_convert_head)
        self.owner = 0              # the busy mark this request holds (lock, updating)
        self.accept_ranges = False  # nginx's range filter adds Accept-Ranges (write_head)
        self.stale_error = False    # Cache-Control stale-if-error still covers the entry
        self.target = None          # (upstream, uri) of a proxy_pass with variables

    def release(self) -> None:
        if self.owner:
            mark, self.owner = self.owner, 0
            self.zone.keys.release(self.h, mark)

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


def any_true(templates, ctx) -> bool:
    """True when a template (*_cache_bypass, *_no_cache) renders non-empty and not "0"."""
    for t in templates:
        v = t.render(ctx)
        if v and v != "0":
            return True
    return False


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
    if any_true(cc.bypass, ctx):
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
        mark = zone.keys.claim(st.h, cc.lock_age)
        if mark:                                    # this request fetches it
            st.owner = mark
        elif time.monotonic() - started < cc.lock_timeout:
            if entry is not None:
                entry.close()
                st.entry = None
            return _wait(ctx, st, started)
        else:
            st.store = False        # nginx: after proxy_cache_lock_timeout, not cached
    _upstream(ctx, st)


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
                 "content_length_in", "start"):
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
    if not st.owner:
        st.owner = st.zone.keys.claim(st.h)
    if ctx.method == "HEAD" and st.conf.convert_head:
        st.converted = True
    kind.start(ctx, kind.caching, st.target)
