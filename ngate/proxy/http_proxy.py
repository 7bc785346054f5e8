"""proxy_pass: the content handler for HTTP upstreams.

Each request gets one proxy/exchange.py UpstreamExchange speaking HTTP/1.x
(proxy/wire_http1.py) with the location's compiled plan (proxy/proxy_request.py). A proxy_pass
with variables is resolved first (an `upstream` block's name, or an address).
"""
from __future__ import annotations

import time

from ngate.observability import error_log
from ngate.http import phases
from ngate.proxy.exchange import UpstreamExchange
from ngate.proxy import request_body as rb
from ngate.proxy.exchange_base import fill, new
from ngate.proxy.exchange_state import READING, SENDING
from ngate.proxy.proxy_request import METHODS, _PASSED_LEN, build_request_head, passed_lines, \
    upstream_uri
from ngate.proxy.throttle import ReadThrottle
from ngate.upstream.attempts import Attempt
from ngate.upstream.pool import NEVER
from ngate.proxy.proxy_request import plan_for
from ngate.proxy.wire_http1 import HTTP1
from ngate.routing.uri import escape_uri

monotonic = time.monotonic


def proxy_exchange(ctx, upstream, plan=None) -> UpstreamExchange:
    """An HTTP/1.x exchange to `upstream` with the location's plan (or `plan`)."""
    ex = new(UpstreamExchange)          # UpstreamExchange(...) without the __init__ call
    fill(ex, ctx, upstream, HTTP1, plan_for(ctx.conf) if plan is None else plan)
    return ex


def proxy_handler(ctx) -> None:
    conf = ctx.conf
    pp = conf.proxy.pass_
    ctx.proxy_host = pp.host_header
    if pp.template is not None:
        return _variable_proxy(ctx, pp)
    up = pp.upstream
    plan = conf.upstream_plan           # plan_for
    key = plan.pool_key
    if key is not None and ctx.content_length_in is None and not ctx.body_chunked \
            and ctx.upstream_tries is None and (ctx.expect_tested or b"expect" not in ctx.hdr):
        # a request without a body to a keepalive group's one server (http://, no counting,
        # no proxy_set_body: Plan.pool_key) that the balancer takes without a pick: when an
        # idle connection is at hand, start_pooled does start, connect and attach at once
        b = up.state.value
        if b is not None and b.single is not None:
            pool = ctx.conn.runtime.pool
            ps = plan.pool_stack    # (the worker's pool, its idle stack for the key): kept
            if ps is not None and ps[0] is pool:    # (a pool never replaces a key's stack)
                stack = ps[1]
            else:
                stack = pool.idle.get(key)
                if stack is not None:
                    plan.pool_stack = (pool, stack)
            if stack and not stack[-1].closed:
                return start_pooled(ctx, conf, pp, up, plan, b.single, key, pool, stack)
    ex = new(UpstreamExchange)          # UpstreamExchange(...) without the __init__ call
    fill(ex, ctx, up, HTTP1, plan)
    ex.start()


def start_pooled(ctx, conf, pp, up, plan, peer, key, pool, stack) -> None:
    """UpstreamExchange(ctx, up, HTTP1, plan).start() for a request without a body whose peer
    is the group's one server, with an idle connection to it in the pool (proxy_handler's
    test): the same steps, in their order, written out in one function (the usual proxied
    request). Each step names the copy it follows: fill (the fields, each with the value the
    steps below give it), UpstreamExchange.start (Http1Wire.prepare: rb.NONE; test_expect
    without an Expect header), PeerSide.connect (a first try: no balancer take, no count),
    KeepalivePool.get, RequestSide.attach (the try's fields reset: fill's values already),
    Http1Wire.send_request's first branch (HeadWrites.write's held case inline) and
    request_sent (READING, the read timeout armed: on the pooled connection, already watched;
    ExchangeBase's `timer`)."""
    ex = new(UpstreamExchange)
    # fill
    ex.ctx = ctx
    ex.conn = conn = ctx.conn
    ex.conf = conf
    ex.upstream = up
    runtime = conn.runtime
    ex.loop = loop = runtime.loop
    ex.deadlines = deadlines = runtime.deadlines
    ex.plan = plan
    ex.wire = HTTP1
    ex.peer = peer
    ex.tried = ()
    ex.tries = 1
    ex.reused = True
    ex.counts = False
    ex.counted = None
    ex.connecting = None
    ex.pool_key = key
    ex.tls = None
    ex.feeding = False
    ex.pool_pending = None
    ex.body = rb.NO_BODY
    ex.body_open = False
    ex.corked = None
    ex.in_read = False
    ex.got_bytes = False
    ex.status = 0
    ex.reason = None
    ex.resp_headers = []
    ex.head_only = False
    ex.chunked_out = False
    ex.until_close = False
    ex.resp_length = None
    ex.upgrade = False
    ex.out = None
    ex.filter = None
    ex.filter_flush = False
    ex.accel = None
    ex.drain = None
    ex.known = ex.learn = None
    rate = plan.limit_rate
    ex.throttle = ReadThrottle(ex, rate) if rate else None
    # start: Http1Wire.prepare's URI (upstream_uri's usual answer written out), the writer,
    # test_expect (no Expect header, or tested)
    raw = ctx.request_uri
    headers = ctx.headers           # (a list for an extended CONNECT's copy)
    method = ctx.method
    last = plan.last_head
    if last is not None and last[0] is headers and last[1] == raw and last[2] == ctx.args \
            and last[3] == method and not ctx.internal:
        # the location's last request head again (the same client header tuple, kept with
        # its parse by server/request_head.py, URI, arguments and method): its URI took the
        # first branch below, and its bytes are the ones build_request_head made
        ex.uri = uri = raw
        data = last[4]
    else:
        data = None
        keep = pp.uri is None and not ctx.internal and raw[:1] == "/" \
            and ((raw[raw.find("?") + 1:] if "?" in raw else None) == ctx.args)
        if keep:
            ex.uri = uri = raw
        else:
            ex.uri = uri = upstream_uri(ctx, pp)
    conn.writer = ex
    ctx.expect_tested = True
    # connect
    ex.started = now = monotonic()
    a = ex.attempt = new(Attempt)           # new_attempt(peer.name, now), written out
    a.addr = peer.name
    a.start = now
    a.status = 0
    a.connect_time = 0.0                    # (attach: 0 for a pooled connection)
    a.header_time = None
    a.response_time = None
    a.bytes_received = 0
    a.response_length = 0
    a.redirected = False
    ctx.upstream_tries = [a]                # (bytes_sent: request_sent's, below)
    # KeepalivePool.get (the connection on top is open: proxy_handler's test; put kept its
    # group's order on it)
    uconn = stack.pop()
    uconn.idle_order.pop(uconn, None)
    uconn.pool = None                       # (its deadline: the read timeout's, below)
    # attach (the try's connect_time: above)
    ex.uconn = uconn
    uconn.exchange = ex
    uconn.requests += 1
    ex.state = SENDING                      # (CONNECTING -> SENDING: the table's first step)
    # Http1Wire.send_request, its first branch
    uconn.head_bytes = 0
    uconn.head_buf = b""
    uconn.tail = b""
    if data is None:
        fixed = plan.fixed
        if fixed is not None:   # build_request_head's first branch, written out (no body)
            hkey = tuple(headers)   # (the tuple itself when it is one)
            passed = plan.passed.get(hkey)
            if passed is None:
                passed = passed_lines(ctx, plan, hkey)
            data = b"".join((METHODS.get(method) or method.encode("latin-1"), b" ",
                             uri.encode("latin-1", "replace"), plan.version_line, fixed, passed))
            if keep and hkey is headers and ctx.request_length <= _PASSED_LEN:
                plan.last_head = (headers, raw, ctx.args, method, data)
        else:
            data = build_request_head(ctx, plan, uri, None, False)
    ex.sent_bytes = n = len(data)
    hw = pool.head_writes           # HeadWrites.write, written out (a quiet loop's request
    hw.count += 1                   # turn writes at once: bench/PROFILE.md, Session 12 (s12-p99))
    if not hw.scheduled:
        hw.scheduled = True
        hw.loop.call_soon(hw.end)
        if not hw.busy:
            t = uconn.transport
            try:
                t.write(data)
            except (OSError, RuntimeError):
                t.abort()           # connection_lost tells the exchange
        else:
            hw.pending.append((uconn.transport, data))
    else:
        hw.pending.append((uconn.transport, data))
    # request_sent (SENDING -> READING: the table's next step)
    ex.state = READING
    a.bytes_sent = n
    t = ex.timeout = plan.read_timeout
    if deadlines.handle is not None and uconn.idle_timer is not None:
        # the connection is watched (since its first time in the pool): it carries the
        # exchange's timer (ExchangeBase's `timer`), its deadline stamped from the tick's time
        # (server/clock.py says why): no watch and unwatch of the exchange per request
        ex.timer = uconn
        ex.deadline = 0.0
        uconn.deadline = deadlines.now + t
    else:
        uconn.deadline = NEVER
        ex.timer = True
        ex.deadline = loop.time() + t
        deadlines.watch(ex)


def _variable_proxy(ctx, pp) -> None:
    """proxy_pass with variables: the rendered URL; its host is first looked up among upstreams."""
    target = resolve_variable(ctx, pp)
    if target is not None:
        start_exchange(ctx, proxy_exchange, *target)


def resolve_variable(ctx, pp):
    """(upstream, uri) for a proxy_pass with variables, ctx.proxy_host set; None when the
    request was answered (an invalid URL, a name to resolve)."""
    from ngate.proxy.resolve import resolve_proxy_url
    from ngate.resolver.hook import lookup as resolver_lookup
    url = pp.template.render(ctx)
    try:
        upstream, host_header, uri = resolve_proxy_url(ctx.conn.runtime.config, url, ctx)
    except ValueError:
        error_log.error(f"invalid URL prefix in \"{url}\"" + error_log.request_suffix(ctx), ctx.conn.number)
        phases.finalize(ctx, 500)
        return None
    except LookupError as exc:
        resolver_lookup(ctx, *exc.args)     # 502, or the content handler again once resolved
        return None
    ctx.proxy_host = host_header
    return upstream, uri


def start_exchange(ctx, make, upstream, uri) -> None:
    """Start the exchange `make(ctx, upstream)` makes; `uri`: a variable proxy_pass's (None:
    the request's)."""
    ex = make(ctx, upstream)
    if uri is None:
        raw = ctx.request_uri
        ex.uri = raw if (raw[:1] == "/" and not ctx.internal) else \
            escape_uri(ctx.uri) + ("?" + ctx.args if ctx.args else "")
    else:
        ex.uri = uri
    ex.start()

