"""proxy_cache's HTTP/1.x wire (proxy/wire_http1.py Http1Wire with the cache's head): nginx's
handling of a cacheable response's Last-Modified and Accept-Ranges, and a HEAD sent upstream as
GET (proxy_cache_convert_head) whose body is read for the entry while the client gets the head.
"""
from __future__ import annotations

import time

from ngate.cache import policy, serve
from ngate.proxy.exchange_state import DONE, STREAMING
from ngate.proxy.response_head import as_sent
from ngate.proxy.wire_http1 import Http1Wire


class CacheWire(Http1Wire):
    """HTTP/1.x for a response that may be stored: Http1Wire.send_head with nginx's handling
    of a cacheable response's Last-Modified and Accept-Ranges (policy.split_cacheable); a HEAD
    sent upstream as GET gets its body read for the cache while the client gets the head."""
    __slots__ = ()
    fast_heads = False          # send_head reads the version from llhttp

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
