"""Known response heads: an upstream's repeated response head without llhttp (proxy_pass).

Upstreams send the same heads again and again. A plain final head that llhttp accepted whole in
a response's first read is kept with its parse and split per location (Plan.heads, `learn`,
called by Http1Wire.send_head); the same bytes again, with exactly Content-Length bytes of body
in the read, go the known way (`known_response`, a method of Http1Wire: the events llhttp's
callbacks would produce, in their order, without the parser). For a Plan.plain location the
client's head is pre-rendered around its Date and Connection lines (`known_head`).

A 101 that starts a WebSocket tunnel repeats too, but for its Sec-WebSocket-Accept value (a
digest of the client's key): it is kept under its head with that value taken out (`upgrade_key`,
a tuple key, so no received head can collide with it) and goes the known way for every other
28-character base64 value (`known_upgrade`).
"""
from __future__ import annotations

import time
from binascii import Error as BinasciiError, a2b_base64

from ngate.http import respond
from ngate.http1 import response as resp
from ngate.proxy.exchange_state import DONE, STREAMING, SWITCHING, TRANSITIONS
from ngate.proxy.response_head import as_sent
from ngate.upstream.balancer import report_success
from ngate.upstream.pool import NEVER

monotonic = time.monotonic


def head_end(buf: bytes) -> int:
    """Where the first response head in buf ends (after its empty line; CRLF or bare LF)."""
    crlf, lf = buf.find(b"\n\r\n"), buf.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf + 3
    return lf + 2 if lf >= 0 else len(buf)


_KNOWN_MAX = 64         # response heads kept per Plan (emptied when full: Date changes)
_KNOWN_LEN = 1024       # longer heads are parsed by llhttp every time (memory per location)


def learn(ex, split: tuple, http10: bool) -> None:
    """Keep the parse of a response head that llhttp accepted whole in the response's first read
    (ex.learn: its bytes, CRLF line ends only), with its split (headers passed on, slots) when
    nothing in it depends on the request: Plan.heads[head] = (status, reason, headers, length,
    HTTP/1.0?, size as headers_complete counts it, split). Only plain final responses with one
    Content-Length, whose size fits proxy_buffer_size: no Transfer-Encoding, Upgrade, Location, X-Accel-*, nor Refresh or
    Set-Cookie when proxy_redirect or proxy_cookie_* could rewrite them."""
    head = ex.learn
    ex.learn = None
    status = ex.status
    if status == 101:
        return _learn_upgrade(ex, head, split, http10)
    if status < 200 or status == 204 or status == 304 or ex.accel is not None \
            or len(head) > _KNOWN_LEN:
        return
    if head.count(b"\n") != head.count(b"\r\n") or head.count(b"\r") != head.count(b"\n") \
            or head_end(head) != len(head):
        return
    plan = ex.plan
    length = None
    size = 17 + len(ex.reason or b"")
    for name, value in ex.resp_headers:
        size += len(name) + len(value) + 4
        lname = name.lower()
        if lname == b"content-length":
            if length is not None or not value.isdigit() or len(value) > 18:
                return
            length = int(value)
        elif lname in _NOT_KNOWN or lname[:8] == b"x-accel-" or (
                lname == b"refresh" and plan.redirects) or (
                lname == b"set-cookie" and plan.cookies is not None):
            return
    if length is None or size > ex.conf.proxy.buffer_size:
        # a head whose size (headers_complete's count: about its length, a byte more per
        # line without a space after the colon) is over proxy_buffer_size is parsed by llhttp
        # every time, which tests the read and that size as before; a kept head fits, so
        # Http1Wire.data takes it whatever the read's length (as it did for a short read)
        return
    heads = plan.heads
    if len(heads) >= _KNOWN_MAX:
        heads.clear()
    out, ctype, clen, lastmod, location, te_chunked, close = split
    pieces = None
    if plan.plain:
        # the client's head but Date and Connection: pieces around them (_known_head)
        reason = ex.reason or as_sent(status, ex.reason)
        tokens = ex.conf.server_tokens
        pre = resp.build_head(status, 1, server_tokens=tokens, reason=reason,
                              server=plan.own_server, date=False)[:-2]
        full = resp.build_head(status, 1, server_tokens=tokens, content_type=ctype,
                               content_length=length, last_modified=lastmod,
                               connection=_MARK, headers=out, reason=reason,
                               server=plan.own_server, date=False)
        mid, post = full[len(pre):].split(_MARK)
        pieces = (pre, mid, post)
    heads[head] = (status, ex.reason, tuple(ex.resp_headers), length, http10, size,
                   (tuple(out), ctype, clen, lastmod, location, te_chunked, close), pieces,
                   pieces is not None and 200 <= status < 300)      # _plain_2xx


_MARK = b"\0connection\0"     # where build_head puts the Connection line (_learn)


_NOT_KNOWN = frozenset({b"transfer-encoding", b"upgrade", b"location"})


def known_response(self, ex, u, data: bytes, end: int, known: tuple) -> None:
    """A whole response in one read (its Content-Length's bytes exactly) whose head llhttp
    parsed and accepted before (Plan.heads, kept by _learn): the events llhttp's callbacks
    would produce, in their order, without the parser (left between two messages, as it
    would be after this one). data() goes on as after llhttp (_read_end). (Http1Wire.data
    sends plain_2xx's responses there itself.)"""
    ctx = ex.ctx
    if known[8] and ctx.status_override is None and ctx.http_minor == 1 and ctx.cache is None \
            and ex.filter is None and not ex.chunked_out:
        return plain_2xx(self, ex, u, ctx, data, end, known)
    u.tail = None
    ex.out = []
    ex.feeding = True
    ex.reason = known[1]
    ex.resp_headers = list(known[2])
    ex.known = known
    ex.response_head(known[0])      # on_headers_complete (headers_complete's checks passed)
    ex.known = None
    if u.exchange is not None:      # on_body, on_message_complete
        n = known[3]
        if n:
            if ex.filter is None and not ex.chunked_out and ex.state is STREAMING \
                    and not ex.head_only:
                ex.attempt.response_length += n     # response_body, written out
                ex.ctx.body_bytes_sent += n
                ex.out.append(data[end:])
            else:
                ex.response_body(data[end:])
        if u.exchange is not None:
            ex.response_end()
    self._read_end(ex, u)


def known_head(ex, ctx, known: tuple) -> None:
    """write_head for a known response head (known_response) of a Plan.plain location to an
    HTTP/1.1 client: the pieces _learn rendered around the Date and Connection lines."""
    split = known[6]
    if split[6] or known[4]:           # Connection: close, or HTTP/1.0
        ex.uconn_reusable_flag(False)
    ctx.resp_headers = list(split[0])
    ex.head_only = False
    ex.resp_length = known[3]
    ex.until_close = False
    respond.check_keepalive(ctx)
    pre, mid, post = known[7]
    conn = ex.conf.keepalive_line if ctx.keep_alive else resp.CONN_CLOSE
    ctx.status = known[0]
    if ex.plan.own_date:
        head = b"".join((pre, resp.DATE.get(), mid, conn, post))
    else:
        head = b"".join((pre, mid, conn, post))
    ctx.head_sent = True
    ctx.bytes_sent = len(head)
    ex.out.append(head)             # (known_response gathers the read's output)


def plain_2xx(self, ex, u, ctx, data: bytes, end: int, known: tuple) -> None:
    """known_response for a 2xx head of a Plan.plain location, to an HTTP/1.1 client, without a
    body filter, error_page status or cache (Http1Wire.data tests it, known[8] and the rest: the
    usual proxied request): the same steps as the general way, written out in one function.
    Each step names the copy it follows: known_response's start, UpstreamExchange.response_head
    (no proxy_next_upstream http_XXX nor *_intercept_errors for a 2xx, no 101), known_head,
    response_body (the read's output gathered), response_end (report_success; finish with
    Http1Wire.reusable, release: the connection pooled after the read, as `feeding` does), the
    flush, then _read_end (the pooling; no output left, no filter)."""
    # known_response (ex.out and ex.feeding stay unset: the read's output is `head` here, and
    # release is written out below)
    u.tail = None
    ex.reason = known[1]
    # the kept tuples themselves, not list copies: the response ends in this call, and what
    # reads them after it ($upstream_http_*, $sent_http_*, auth_request) only iterates them
    ex.resp_headers = hdrs = known[2]
    status = known[0]
    # response_head
    ex.status = status
    a = ex.attempt
    a.status = status
    now = monotonic()
    a.header_time = now - a.start
    ctx.upstream_headers = hdrs
    ex.body_open = False            # Http1Wire.body_after_head is False
    if STREAMING not in TRANSITIONS[ex.state]:
        ex._refused(STREAMING)
    # known_head
    split = known[6]
    if split[6] or known[4]:           # Connection: close, or HTTP/1.0
        ex.uconn_reusable_flag(False)
    ctx.resp_headers = split[0]
    ex.head_only = False
    n = ex.resp_length = known[3]
    ex.until_close = False
    conf = ex.conf
    if ctx.keep_alive:              # respond.check_keepalive, written out (ctx.conf is set)
        conn = ctx.conn
        cf = ctx.conf
        if conn.closing or conn.runtime.draining or cf.keepalive_timeout == 0 \
                or conn.requests >= cf.keepalive_requests \
                or ctx.start - conn.started > cf.keepalive_time \
                or (ctx.method == "POST" or "safari" in cf.keepalive_disable) \
                and respond._disabled_for(ctx, cf.keepalive_disable):
            ctx.keep_alive = False
    pre, mid, post = known[7]
    line = conf.keepalive_line if ctx.keep_alive else resp.CONN_CLOSE
    ctx.status = status
    plan = ex.plan
    # the head and the body (the read's n bytes after the head: Http1Wire.data's test) joined
    # once: the read's output gathered
    if plan.own_date:
        head = b"".join((pre, resp.DATE.get(), mid, line, post, data[end:]))
    else:
        head = b"".join((pre, mid, line, post, data[end:]))
    ctx.head_sent = True
    ctx.bytes_sent = len(head) - n
    # response_body
    if n:
        a.response_length += n
        ctx.body_bytes_sent += n
    # response_end
    ups = ex.upstream
    if ups.state.peers:     # else no peer of this group has state in this worker
        report_success(ups, ex.peer)
    # Http1Wire.reusable (u is ex.uconn; until_close is False)
    reuse = ups.keepalive and not u.closed and plan.version == b"HTTP/1.1" \
        and u.requests < ups.keepalive_requests and ex.started - u.born <= ups.keepalive_time \
        and ex.body.done
    # finish(reuse, detach=False): STREAMING -> DONE
    ex.state = DONE
    t = ex.timer
    if t is not None:
        ex.timer = None
        if t is True:
            ex.deadlines.watched.discard(ex)    # Deadlines.unwatch
        else:
            t.deadline = NEVER                  # the connection's timer (stays watched)
    th = ex.throttle
    if th is not None:
        th.cancel()
    t = ex.connecting
    if t is not None:
        ex.connecting = None
        t.cancel()
    if a.response_time is None:     # the try ends (Attempt.end; the head's clock reading:
        a.response_time = now - a.start     # one event, as nginx's cached time)
    body = ex.body                  # release, written out
    if body.spool is not None:
        body.close()
    if ex.counted is not None:
        ex._count(-1)
    ex.uconn = None
    u.exchange = None
    if not reuse:
        u.close()
    ex.out = None
    conn = ex.conn
    conn.write(head)
    conn.writer = None
    ctx.bytes_sent += ctx.body_bytes_sent
    conn.finish_request(ctx)
    # _read_end: the connection pooled once the read is done
    if reuse:
        stack = u.idle_stack
        if stack is None or u.leftover or u.closed or th is not None or u.idle_timer is None:
            ex._pool(u)
        else:
            # _pool and KeepalivePool.put for a connection pooled before, written out: put
            # kept its key's idle stack and its group's order on it (always the same key: the
            # same group id, already in u.group_id; the idle deadline watched already)
            stack.append(u)
            order = u.idle_order
            order[u] = ex.pool_key
            pool = u.pool = conn.runtime.pool   # UpstreamConnection.on_idle
            d = pool.deadlines
            u.deadline = (d.now if d.handle is not None else d.loop.time()) \
                + ups.keepalive_timeout
            if len(order) > ups.keepalive:
                pool.trim(u.group_id, ups.keepalive)
    if u.leftover:
        self.log_leftover(ex)


# ---------------------------------------------------------------- 101 Switching Protocols

_ACCEPTS = (b"\r\nSec-WebSocket-Accept: ", b"\r\nsec-websocket-accept: ")
_ACCEPT_MARK = b"\0accept\0"      # where build_head puts the accept value (_learn_upgrade)
_NOT_KNOWN_101 = frozenset({b"transfer-encoding", b"content-length", b"location",
                            b"set-cookie", b"refresh"})


def upgrade_key(head: bytes):
    """(Plan.heads key, Sec-WebSocket-Accept value) of a 101 head whose accept value is a
    SHA-1 digest in base64 (28 characters: a value llhttp accepts whatever its digits), else
    (None, None)."""
    for spelling in _ACCEPTS:
        i = head.find(spelling)
        if i >= 0:
            break
    else:
        return None, None
    i += 24
    value = head[i:i + 28]
    if head[i + 28:i + 30] != b"\r\n":
        return None, None
    try:    # 27 base64 digits and "=" (strict: no other byte, "=" only at the end) = 20 bytes
        if len(a2b_base64(value, strict_mode=True)) != 20:
            return None, None
    except BinasciiError:
        return None, None
    return (head[:i] + head[i + 28:],), value


def _learn_upgrade(ex, head: bytes, split: tuple, http10: bool) -> None:
    """learn() for a 101 that starts a tunnel (response_head's SWITCHING: ex.upgrade), whose
    accept value upgrade_key can take out: Plan.heads[key] = (101, reason, headers, index of
    the accept in headers, HTTP/1.0?, size as headers_complete counts it, split, index of the
    accept in the headers passed on or -1). No X-Accel-*, framing, Location, Refresh,
    Set-Cookie (what the split of the same bytes may not repeat as it is)."""
    if not ex.upgrade or ex.accel is not None or len(head) > _KNOWN_LEN:
        return
    if head.count(b"\n") != head.count(b"\r\n") or head.count(b"\r") != head.count(b"\n") \
            or head_end(head) != len(head):
        return
    key, value = upgrade_key(head)
    if key is None:
        return
    size = 17 + len(ex.reason or b"")
    at = -1
    for i, (name, v) in enumerate(ex.resp_headers):
        size += len(name) + len(v) + 4
        lname = name.lower()
        if lname in _NOT_KNOWN_101 or lname[:8] == b"x-accel-":
            return
        if lname == b"sec-websocket-accept":
            if at >= 0 or v != value:
                return
            at = i
    out = split[0]
    passed = [i for i, (name, _v) in enumerate(out) if name.lower() == b"sec-websocket-accept"]
    if at < 0 or len(passed) > 1 or passed and out[passed[0]][1] != value:
        return
    plan = ex.plan
    heads = plan.heads
    if len(heads) >= _KNOWN_MAX:
        heads.clear()
    out_at = passed[0] if passed else -1
    pieces = None
    if plan.plain:
        # the client's head but Date and the accept value: pieces around them (_plain_101)
        reason = ex.reason or as_sent(101, ex.reason)
        tokens = ex.conf.server_tokens
        marked = list(out)
        if out_at >= 0:
            marked[out_at] = (marked[out_at][0], _ACCEPT_MARK)
        pre = resp.build_head(101, 1, server_tokens=tokens, reason=reason,
                              server=plan.own_server, date=False)[:-2]
        full = resp.build_head(101, 1, server_tokens=tokens, content_type=split[1],
                               last_modified=split[3], location=split[4],
                               connection=resp.CONN_UPGRADE, headers=marked, reason=reason,
                               server=plan.own_server, date=False)
        pieces = (pre, *full[len(pre):].split(_ACCEPT_MARK)) if out_at >= 0 \
            else (pre, full[len(pre):], b"")
    heads[key] = (101, ex.reason, tuple(ex.resp_headers), at, http10, size,
                  (tuple(out), *split[1:]), out_at, pieces)


def known_upgrade(self, ex, u, data: bytes, end: int, known: tuple, accept: bytes) -> None:
    """A 101 head llhttp parsed before but for its accept value (_learn_upgrade), to a request
    that asked for an Upgrade: the events llhttp's callbacks would produce (on_status, on_header,
    headers_complete's response_head), then the upgrade as HttpParserUpgrade would start it
    (Http1Wire._upgraded with the bytes after the head). on_message_complete is left out: its
    response_end returns at once while the exchange is SWITCHING."""
    u.tail = None
    ex.out = []
    ex.feeding = True
    ex.reason = known[1]
    hdrs = list(known[2])
    at = known[3]
    hdrs[at] = (hdrs[at][0], accept)
    ex.resp_headers = hdrs
    ctx = ex.ctx
    if known[8] is not None and ctx.http_minor == 1:
        return _plain_101(self, ex, u, ctx, data, end, known, accept)
    out, *slots = known[6]
    at = known[7]
    if at >= 0:
        out = list(out)
        out[at] = (out[at][0], accept)
    # send_head's known entry: (.., HTTP/1.0? at [4], the split at [6], no pre-rendered head)
    ex.known = (101, None, None, None, known[4], None, (out, *slots), None)
    ex.response_head(101)
    ex.known = None
    self._upgraded(ex, data, end)
    self._read_end(ex, u)


def _plain_101(self, ex, u, ctx, data: bytes, end: int, known: tuple, accept: bytes) -> None:
    """known_upgrade for a Plan.plain location (no add_header, userid, filters, charset,
    force_ranges, cache) and an HTTP/1.1 client: the same steps as the general way, written out
    in one function. Each step names the copy it follows: UpstreamExchange.response_head (no
    proxy_next_upstream http_XXX nor *_intercept_errors for a 101; its SWITCHING branch, as
    Http1Wire._upgrade_asked checked), Http1Wire.send_head and HeadTranslation.write_head for a
    101 (no body, Connection: upgrade, nothing framed), the head from the pieces
    _learn_upgrade rendered around Date and the accept value; then _upgraded and _read_end."""
    # response_head
    ex.status = 101
    a = ex.attempt
    a.status = 101
    a.header_time = time.monotonic() - a.start
    ctx.upstream_headers = ex.resp_headers
    ex.body_open = False            # Http1Wire.body_after_head is False
    if SWITCHING not in TRANSITIONS[ex.state]:
        ex._refused(SWITCHING)
    ex.state = SWITCHING
    ex.upgrade = True
    # send_head
    split = known[6]
    if split[6] or known[4]:           # Connection: close, or HTTP/1.0
        ex.uconn_reusable_flag(False)
    # write_head
    out = list(split[0])
    if known[7] >= 0:
        out[known[7]] = (out[known[7]][0], accept)
    ctx.resp_headers = out
    ex.head_only = True
    ex.resp_length = None
    ex.chunked_out = False
    ctx.status = 101
    pre, mid, post = known[8]
    date = resp.DATE.get() if ex.plan.own_date else b""
    head = b"".join((pre, date, mid, accept, post) if known[7] >= 0 else (pre, date, mid))
    ctx.head_sent = True
    ctx.bytes_sent = len(head)
    ex.out.append(head)
    # send_head's end
    ex.until_close = False
    self._upgraded(ex, data, end)
    self._read_end(ex, u)
