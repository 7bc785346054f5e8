"""How a caching exchange ends (proxy's CachingExchange in cache/exchange.py, cache/fastcgi.py's
CachingFastCGI), nginx's ngx_http_upstream_send_response and ngx_http_file_cache_update parts:

  entry_meta        the stored description of a response, or None when it is not cached
  CacheEnding       the cache's decision on a response head (cache_head), the response
                    stored (_store), then sent from its entry when the client was
                    held back (`deferred`: Range or If-* on a cacheable 200); a 304 to a
                    revalidation (_refresh) or a status *_cache_use_stale names answered from the
                    entry (answer_from_entry); a failure answered from a stale entry; the key
                    released when the client leaves
"""
from __future__ import annotations

import time

from ngate.cache import policy, serve
from ngate.cache.lookup import CacheState, any_true
from ngate.http import phases
from ngate.http1.response import StatusText
from ngate.observability import error_log
from ngate.proxy.exchange import NEXT_ON_STATUS
from ngate.proxy.exchange_state import DONE
from ngate.upstream.balancer import report_success
from ngate.upstream.failure import Failure, Phase, UpstreamError

MEMORY_LIMIT = 64 << 20          # a body larger than this is passed on, not stored
CLIENT_VALIDATORS = (b"range", b"if-modified-since", b"if-none-match", b"if-match",
                     b"if-unmodified-since")


def entry_meta(ctx, st: CacheState, status: int, reason, headers) -> dict | None:
    """The stored description of a response (cache/store.py), or None when it is not to be
    cached (policy.valid_until, proxy_no_cache / fastcgi_no_cache). `reason` as the client
    gets it: a StatusText (the status line as sent: `404`, `200 `) is kept apart from a
    reason phrase, so a hit repeats the miss's line as nginx's (which parses the stored head
    again)."""
    cc = st.conf
    valid = policy.valid_until(cc, status, headers, time.time())
    if not valid or any_true(cc.no_cache, ctx):
        return None
    meta = {"key": st.key, "valid": valid, "date": int(time.time()), "status": status,
            "reason": (reason or b"").decode("latin-1"),
            "headers": [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]}
    if reason.__class__ is StatusText:
        meta["as_sent"] = reason.decode("latin-1")
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


class CacheEnding:
    """How a caching exchange (proxy's CachingExchange, cache/fastcgi.py's CachingFastCGI) ends:
    the response stored, then sent from its entry when the client was held back (`deferred`);
    a failure answered from a stale entry when *_cache_use_stale allows it."""
    __slots__ = ()

    def status_text(self):
        """The reason as the client gets it (FastCGI: the CGI head's; cache/exchange.py: an
        HTTP upstream's line as sent when it has no reason phrase)."""
        return self.reason

    def cache_head(self, status: int) -> bool:
        """Decide what the cache does with this response head; True when it took the response
        over (answered from the entry, or deferred until it is stored)."""
        ctx = self.ctx
        st = ctx.cache
        if st.entry is not None:
            answered = self.answer_from_entry(status)
            if answered is not None:
                return answered
        if not st.store:
            return False
        meta = entry_meta(ctx, st, status, self.status_text(), self.resp_headers)
        if meta is None:
            return False
        conf = ctx.conf
        if status >= 300 and self.plan.section.intercept_errors \
                and phases.error_page_for(conf, status):
            # *_intercept_errors: nginx stores the status alone (r->cache->error); a hit then
            # goes to the error_page as this response does now
            meta["error"] = status
            st.zone.writer(st.h, meta).commit()
            st.release()
            return False
        self.writer = st.zone.writer(st.h, meta)
        self.storing()
        if status == 200 and ctx.method != "HEAD" and any(
                h in ctx.hdr for h in CLIENT_VALIDATORS):
            return self._defer(status)
        return False

    def storing(self) -> None:
        """The body is being stored from now on (cache/fastcgi.py has its wire keep it)."""

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

    # ------------------------------------------------------------ the entry written

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


def too_big():
    return UpstreamError(Failure.TOO_LARGE, Phase.BODY, "cached response is too large")
