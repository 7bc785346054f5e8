"""How an upstream's response head becomes the client's (HTTP/1.x and CGI heads alike).

HeadTranslation is the part of proxy/exchange.py's UpstreamExchange that reads nothing from
the wire: hidden and consumed headers, proxy_redirect on Location and Refresh, proxy_cookie_*,
X-Accel-* (X-Accel-Redirect ends the exchange with an internal redirect), add_header, the body
filters' header filter, framing to the client (Content-Length, chunked, close-delimited) and
keep-alive, in nginx's header order.
"""
from __future__ import annotations

from ngate.filters import Chain, HeadersOut, header_filter, postpone
from ngate.filters import charset as charset_filter, range as range_filter, validators
from ngate.http import msie, phases, respond, rewrite
from ngate.http1 import charset
from ngate.http1 import response as resp
from ngate.http2.head import response_fields
from ngate.proxy.cookies import rewrite as rewrite_cookie

# what an X-Accel-Redirect carries to the redirected response (nginx's `redirect` headers)
_ACCEL_CARRIED = frozenset({b"content-type", b"set-cookie", b"content-disposition",
                            b"cache-control", b"expires", b"accept-ranges"})


def as_sent(status: int, reason: bytes | None) -> resp.StatusText:
    """An upstream status line without a reason phrase, passed on as it came (nginx copies the
    status line from the code to the end of the line): `200` or `200 `."""
    return resp.StatusText(b"" if reason is None else b" " + reason)


class HeadTranslation:
    """Mixed into UpstreamExchange (which has the slots these methods use)."""
    __slots__ = ()

    def split_headers(self, headers, consumed: frozenset):
        """An upstream's response headers -> (headers passed on, Content-Type, Content-Length,
        Last-Modified, Location for its own slot, chunked?, Connection: close?).

        Hidden headers are dropped; `consumed` ones go to nginx's slots or are regenerated; a
        Location or Refresh is rewritten by proxy_redirect (a relative result goes to the
        Location slot and is made absolute, nginx's header filter)."""
        hide = self.plan.hide
        redirects = self.plan.redirects
        cookies = self.plan.cookies
        ctype = length = lastmod = location = None
        te_chunked = close = False
        out = []
        for name, value in headers:
            lname = name.lower()
            if lname in hide:
                if lname[:8] == b"x-accel-":
                    if self.accel is None:
                        self.accel = []
                    self.accel.append((lname, value))
                continue
            if lname in consumed:
                if lname == b"content-length":
                    length = value
                elif lname == b"content-type":
                    ctype = value
                elif lname == b"transfer-encoding":
                    te_chunked = b"chunked" in value.lower()
                elif lname == b"connection":
                    close = b"close" in value.lower()
                elif lname == b"last-modified":
                    lastmod = value
                elif lname == b"location":
                    v, slot = self.rewrite_location(value)
                    if slot:
                        location = v
                    else:
                        out.append((name, v))
                continue
            if lname == b"refresh" and redirects:
                value = self.rewrite_refresh(value)
            elif lname == b"set-cookie" and cookies is not None:
                value = rewrite_cookie(value, *cookies, self.ctx)
            out.append((name, value))
        return out, ctype, length, lastmod, location, te_chunked, close

    def write_head(self, status: int, reason, out: list, ctype, length, lastmod, location=None,
                   te_chunked: bool = False) -> bool:
        """The client's response head from an upstream's (HTTP or CGI): add_header, framing
        (Content-Length, chunked to HTTP/1.1, close-delimited to HTTP/1.0), keep-alive, nginx's
        header order. Returns whether the response has no body (HEAD, 1xx, 204, 304)."""
        ctx = self.ctx
        conf = self.conf
        ctx.resp_headers = out
        if conf.headers.add_header or conf.userid is not None:
            out.extend(respond.add_headers(ctx, conf, status, skip=validators.NAMES))
            found = validators.overrides(ctx, conf, status) if conf.headers.add_header else None
            if found is not None:
                validators.apply(out, found)     # they replace the upstream's own
        force = self.plan.section.force_ranges   # filters/range.py; the upstream's Accept-Ranges goes
        if force:
            out[:] = [h for h in out if h[0].lower() != b"accept-ranges"]
            force = status == 200
        elif ctx.cache is not None and ctx.cache.accept_ranges and status == 200:
            out.append((b"Accept-Ranges", b"bytes"))    # nginx's range filter, after add_header
        head_only = ctx.method == "HEAD" or status in (204, 304) or status < 200
        self.head_only = head_only
        clen = None
        if length is not None and not te_chunked:
            try:
                clen = int(length)
            except ValueError:
                clen = None
        filters = conf.filters
        accel = charset_filter.accel_name(self) if self.accel else None     # X-Accel-Charset
        if (filters is not None or force or accel is not None) and status >= 200 \
                and status != 101:
            ho = HeadersOut(status, ctype, clen, lastmod, out)
            recode = None if accel is None else \
                charset_filter.accel(ctx, conf.charset.accel, ho, accel)
            self.filter = header_filter(ctx, filters, ho) if filters is not None else None
            if recode is not None:
                self.filter = charset_filter.prepend(recode, self.filter)
            if force and self.range_filter(ho):
                return True                 # a 416 went out instead
            if ho.status != status:
                status, reason = ho.status, None        # 206
            if self.filter is not None:
                postpone.attach(self.filter, self._filter_out)
                self.filter_flush = not self.plan.section.buffering or any(
                    n.lower() == b"x-accel-buffering" and v.lower() == b"no"
                    for n, v in self.resp_headers)
            self.resp_length = clen         # the upstream's framing, not the client's
            clen = ho.content_length
            lastmod = ho.last_modified
            ctype = ho.content_type
        else:
            self.resp_length = clen
        chunked_out = False
        if status == 101:
            connection = resp.CONN_UPGRADE
            if not self.upgrade:
                ctx.keep_alive = False
        else:
            if not head_only and clen is None:
                if ctx.http_minor == 1 and conf.chunked_transfer_encoding:
                    chunked_out = True
                else:
                    ctx.keep_alive = False
            respond.check_keepalive(ctx)
            connection = conf.keepalive_line if ctx.keep_alive else resp.CONN_CLOSE
        self.chunked_out = chunked_out
        ctx.status = status
        if conf.charset.charset:
            ctype = charset.content_type(conf, status, ctype, ctx)
        if ctx.http_minor == 2 and status != 101 and not self.out:
            # an HTTP/2 stream takes the head as fields (http2/head.py), not bytes to re-parse
            hdrs, size = response_fields(
                status, server_tokens=conf.server_tokens, content_type=ctype,
                content_length=clen, last_modified=lastmod, location=location,
                connection=connection, headers=out, server=self.plan.own_server,
                date=self.plan.own_date)
            ctx.head_sent = True
            ctx.bytes_sent = size
            self.conn.write_fields(hdrs)
            return head_only
        head = resp.build_head(
            status, 1, server_tokens=conf.server_tokens, content_type=ctype,
            content_length=clen if status != 101 else None, last_modified=lastmod,
            location=location, chunked=chunked_out, connection=connection, headers=out,
            reason=reason, server=self.plan.own_server, date=self.plan.own_date)
        ctx.head_sent = True
        ctx.bytes_sent = len(head)
        self._emit(head)
        return head_only

    def range_filter(self, ho) -> bool:
        """proxy_force_ranges: nginx's range filter on this 200 (filters/range.py); True when
        the range cannot be satisfied and a 416 was sent instead (the upstream is dropped).
        add_trailer's chunking comes after nginx's range filter: it sees the dropped length."""
        chunk = ho.content_length is None and ho.trailers
        if chunk:
            ho.content_length = ho.trailers_length
        if ho.content_length is None:
            return False
        body = range_filter.header(self.ctx, self.conf, ho, single=True)
        if chunk and body is not range_filter.NOT_SATISFIABLE:
            ho.content_length = None
        if body is range_filter.NOT_SATISFIABLE:
            self.finish()
            ctx = self.ctx
            respond.send_response(ctx, 416, msie.status_page(ctx, self.conf, 416),
                                 b"text/html", extra=range_filter.not_satisfiable_headers(
                                     ho.headers, ho.content_length))
            return True
        if body is not None:
            self.filter = body if self.filter is None else Chain([body, self.filter])
        return False

    def accel_headers(self) -> bool:
        """X-Accel-Limit-Rate sets the response's rate; X-Accel-Redirect ends the exchange and
        redirects internally (True), unless proxy_ignore_headers names them. The others
        (X-Accel-Expires, -Buffering, -Charset) are read elsewhere: cache/policy.py,
        filter_flush, filters/charset.py accel_name."""
        accel = dict(reversed(self.accel))      # the first of each name, as nginx keeps it
        ignore = self.plan.ignore_headers
        ctx = self.ctx
        rate = accel.get(b"x-accel-limit-rate")
        if rate is not None and b"x-accel-limit-rate" not in ignore and rate.isdigit():
            ctx.limit_rate = int(rate)
            self.conn.rate_check = True
        target = accel.get(b"x-accel-redirect")
        if target is None or b"x-accel-redirect" in ignore:
            return False
        self.finish()
        carried = [(n, v) for n, v in self.resp_headers if n.lower() in _ACCEL_CARRIED]
        if carried:
            ctx.accel_headers = carried
            ctx.rare = True     # (http/context.py _GUARDED)
        phases.accel_redirect(ctx, target.decode("latin-1"))
        return True

    def rewrite_location(self, value: bytes) -> tuple[bytes, bool]:
        """proxy_redirect on a Location; (value, True) when it goes to the Location slot.

        nginx's header filter makes a rewritten relative Location absolute in its own slot; any
        other Location stays where the upstream put it among the headers.
        """
        v = self._apply_redirect_rules(value.decode("latin-1"))
        if v is None:
            return value, False
        if v.startswith("/"):
            return respond.absolute_location(self.ctx, v).encode("latin-1"), True
        return v.encode("latin-1"), False

    def rewrite_refresh(self, value: bytes) -> bytes:
        """proxy_redirect on the URL part of a Refresh header (`5; url=...`)."""
        text = value.decode("latin-1")
        i = text.lower().find("url=")
        if i < 0:
            return value
        v = self._apply_redirect_rules(text[i + 4:])
        return value if v is None else (text[:i + 4] + v).encode("latin-1")

    def _apply_redirect_rules(self, v: str):
        """nginx's ngx_http_proxy_rewrite_complex/regex_handler: a prefix (text, or rendered
        with variables) is replaced; a regex is searched and replaces the whole value."""
        for match, repl in self.plan.redirects:
            if isinstance(match, str) or hasattr(match, "render"):
                prefix = match if isinstance(match, str) else match.render(self.ctx)
                if v.startswith(prefix):
                    r = repl.render(self.ctx) if hasattr(repl, "render") else repl
                    return r + v[len(prefix):]
            else:
                m = match.search(v)
                if m is not None:
                    rewrite.store_captures(self.ctx, m)
                    return repl.render(self.ctx)
        return None
