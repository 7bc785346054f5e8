"""fastcgi_pass: the FastCGI transport of the proxy engine, one FastCGIExchange per request.

It reuses http_proxy.ProxyExchange for everything that is not the wire protocol: peer selection
and fastcgi_next_upstream, connect (fastcgi_connect_timeout), the keepalive pool, timers,
downstream backpressure, failures (502/504 through phases.fail), 499 on client close. What
differs is the request (FastCGI records: BEGIN_REQUEST, PARAMS, STDIN), the response (records
decoded by fastcgi/records.py, the CGI head by fastcgi/cgi.py) and the request body.

Exchange states (as ProxyExchange):
  connecting   waiting for a peer connection (with fastcgi_request_buffering on, the default,
               the body is read whole first into a proxy/body_spool.py BodySpool: memory up to
               client_body_buffer_size, then a temp file; CONTENT_LENGTH is then known)
  sending      records written; STDIN follows the client body with backpressure
  reading      the whole request is sent; fastcgi_read_timeout re-armed on every read
  streaming    the CGI head was sent to the client; STDOUT is streamed, STDERR is logged
  done         END_REQUEST: the connection goes back to the pool (fastcgi_keep_conn on and
               an upstream `keepalive`) or is closed
"""
from __future__ import annotations

import time

from ngate.config.model import Upstream, UpstreamServer
from ngate.fastcgi import records as fcgi
from ngate.fastcgi import rest as body_rest
from ngate.fastcgi.cgi import HeadReader
from ngate.http1 import response as resp
from ngate.observability import error_log
from ngate.filters import drain
from ngate.http import phases
from ngate.proxy import request_body as rb
from ngate.proxy.body_spool import SpoolError
from ngate.proxy.http_proxy import NEXT_ON_STATUS, ProxyExchange, log_spooled
from ngate.proxy.resolve import resolve_proxy_url
from ngate.resolver.hook import lookup as resolver_lookup
from ngate.upstream.failure import Failure, Phase, UpstreamError, invalid_header

STATIC, TEMPLATE = 0, 1
# ngx_http_fastcgi_hide_headers
DEFAULT_HIDE = frozenset({b"status", b"x-accel-expires", b"x-accel-redirect",
                          b"x-accel-limit-rate", b"x-accel-buffering", b"x-accel-charset"})
# consumed here: written in their nginx slot, or regenerated. A relative Location stays as the
# application wrote it, among the other headers (nginx does not make it absolute here).
_CONSUMED = frozenset({b"content-length", b"content-type",
                       b"connection", b"keep-alive", b"transfer-encoding"})


class FastCGIPlan:
    """What a location sends to the FastCGI server; built once per LocConf."""
    __slots__ = ("params", "skip", "hide", "keep_conn", "head_limit", "connect_timeout",
                 "send_timeout", "read_timeout", "next_upstream", "next_upstream_tries",
                 "next_upstream_timeout", "redirects", "cookies", "ignore_headers",
                 "limit_rate", "bind", "own_server", "own_date")

    def __init__(self, conf) -> None:
        params = []     # (STATIC, encoded pair) | (TEMPLATE, name, Template, if_not_empty)
        for p in conf.fastcgi_param:
            name = p.name.encode("latin-1")
            if not p.value.static:
                params.append((TEMPLATE, name, p.value, p.if_not_empty))
            elif p.value.text or not p.if_not_empty:
                params.append((STATIC, fcgi.pair(name, p.value.text.encode("latin-1"))))
        names = [p.name for p in conf.fastcgi_param]
        if conf.fastcgi_cache is not None:
            from ngate.cache.fastcgi import cache_params
            extra, added = cache_params(names)
            params.extend(extra)
            names.extend(added)
        self.params = tuple(params)
        # client headers already given as HTTP_* params are not sent again (as nginx)
        self.skip = frozenset(n[5:].lower().encode("latin-1") for n in names
                              if n.startswith("HTTP_"))
        self.hide = (DEFAULT_HIDE | conf.fastcgi_hide_header) - conf.fastcgi_pass_header
        self.keep_conn = conf.fastcgi_keep_conn
        self.head_limit = conf.fastcgi_buffer_size
        self.connect_timeout = conf.fastcgi_connect_timeout
        self.send_timeout = conf.fastcgi_send_timeout
        self.read_timeout = conf.fastcgi_read_timeout
        self.next_upstream = conf.fastcgi_next_upstream
        self.next_upstream_tries = conf.fastcgi_next_upstream_tries
        self.next_upstream_timeout = conf.fastcgi_next_upstream_timeout
        self.ignore_headers = conf.fastcgi_ignore_headers
        self.limit_rate = conf.fastcgi_limit_rate if conf.fastcgi_buffering else 0
        self.bind = conf.fastcgi_bind       # proxy/bind.py
        self.own_server = self.own_date = True
        self.redirects = ()     # proxy_redirect is the proxy module's: CGI headers pass as sent
        self.cookies = None     # so are proxy_cookie_*


def plan_for(conf) -> FastCGIPlan:
    """The location's plan, built when the config was compiled (http/modules.py)."""
    return conf.upstream_plan


_HEADER_KEYS: dict[bytes, tuple[bytes, bytes]] = {}


def header_key(name: bytes) -> tuple[bytes, bytes]:
    """(`x_foo`, `HTTP_X_FOO`) for the header `X-Foo`; cached (header names repeat)."""
    key = _HEADER_KEYS.get(name)
    if key is None:
        low = name.lower().replace(b"-", b"_")
        key = (low, b"HTTP_" + low.upper())
        if len(_HEADER_KEYS) < 4096:
            _HEADER_KEYS[name] = key
    return key


def build_params(ctx, plan: FastCGIPlan) -> bytes:
    """PARAMS content: fastcgi_param values in order (if_not_empty ones skipped when empty),
    then the client's headers as HTTP_* (upper case, `-` -> `_`) when
    fastcgi_pass_request_headers is on."""
    out = []
    for item in plan.params:
        if item[0] == STATIC:
            out.append(item[1])
            continue
        _, name, template, if_not_empty = item
        value = template.render(ctx)
        if value or not if_not_empty:
            out.append(fcgi.pair(name, value.encode("latin-1", "replace")))
    if ctx.conf.fastcgi_pass_request_headers:
        skip = plan.skip
        for name, value in ctx.headers:
            low, param = header_key(name)
            if low not in skip:
                out.append(fcgi.pair(param, value))
    return b"".join(out)


def _open_empty(ctx, conf) -> bool:
    """An HTTP/2 request with `content-length: 0` whose stream is still open: with
    fastcgi_request_buffering off nginx sends the end of STDIN only with END_STREAM."""
    return ctx.content_length_in == 0 and not conf.fastcgi_request_buffering \
        and ctx.req is not None and not ctx.req.complete


class FastCGIExchange(ProxyExchange):
    __slots__ = ("records", "head_reader", "stdin_open", "rest", "stdin_hold", "keeping")
    plan_for = staticmethod(plan_for)

    def __init__(self, ctx, upstream) -> None:
        super().__init__(ctx, upstream)
        self.records = None
        self.head_reader = None
        self.stdin_open = False     # records sent, STDIN not ended: body bytes go straight out
        self.rest = body_rest.UNBOUNDED     # body bytes still expected (fastcgi/rest.py)
        self.stdin_hold = None      # STDIN records of this event-loop turn, written at its end
        self.keeping = False        # the body is also stored (cache/fastcgi.py: keep_body)

    # ------------------------------------------------------------ start

    def start(self) -> None:
        self.start_body(self.body_mode(self.ctx, self.conf))

    def body_mode(self, ctx, conf) -> str:
        if not conf.fastcgi_pass_request_body or not (
                ctx.body_chunked or ctx.content_length_in or _open_empty(ctx, conf)):
            return rb.NONE
        if conf.fastcgi_request_buffering or conf.client_body_in_file_only != "off":
            return rb.BUFFER
        return rb.STREAM     # a chunked body too (nginx 1.22): no CONTENT_LENGTH then

    def attach(self, uconn) -> None:
        self.uconn = uconn
        uconn.exchange = self
        uconn.requests += 1
        self.records = fcgi.RecordParser()
        self.head_reader = HeadReader(self.plan.head_limit)
        self.status = 0
        self.got_bytes = False
        self.sent_bytes = 0
        self.state = "sending"
        self.send_request()

    def send_request(self) -> None:
        ctx = self.ctx
        body = self.body
        if body.done and ctx.body_chunked and body.mode is rb.STREAM:
            ctx.content_length_in = ctx.req.body_size   # read whole by now: nginx knows its length
        out = [fcgi.begin_request(self.plan.keep_conn),
               fcgi.params(build_params(self.ctx, self.plan))]
        sp = body.spool
        if sp is not None and not sp.in_file:
            out.extend(fcgi.stdin(chunk) for chunk in sp.chunks)
        for chunk in body.take():
            out.append(fcgi.stdin(chunk))
        from_file = sp is not None and sp.in_file
        if body.done and not from_file:
            out.append(fcgi.stdin_end())
        self.stdin_open = not body.done
        data = b"".join(out)       # one send: writelines() costs a syscall per piece
        self.sent_bytes = len(data)
        self.uconn.transport.write(data)
        if from_file:
            sp.rewind()
            if not self._send_spool():
                return          # upstream_write_resumed goes on
        if body.done:
            self.request_sent()
        else:
            if self.uconn.write_paused:
                self.conn.transport.pause_reading()
            elif not self.conn.closing:
                self.conn.transport.resume_reading()

    # ------------------------------------------------------------ client body (consumer API)

    def _send_spool(self) -> bool:
        sp = self.body.spool
        start = sp.pos
        done = sp.send_to(self.uconn, fcgi.stdin)
        self.sent_bytes += sp.pos - start
        if done:
            self.uconn.transport.write(fcgi.stdin_end())
        else:
            self.arm(self.plan.send_timeout)
        return done

    def body_data(self, data: bytes) -> None:
        if self.state == "done":
            return              # answered already (413, client gone): the rest is dropped
        ctx = self.ctx
        body = self.body
        limit = self.conf.client_max_body_size
        if limit and ctx.body_chunked and ctx.req.body_size > limit:
            body.done = True
            before = ctx.req.body_size - len(data)      # nginx: received + chunk size
            error_log.error(f"client intended to send too large chunked body: "
                            f"{before}+{len(data)} bytes" + error_log.request_suffix(ctx),
                            self.conn.number)
            return self.abort_with(413)
        if body.mode is rb.BUFFER:
            try:
                name = body.spool_add(data)
            except SpoolError as err:
                return self.spool_failed(err)
            if name is not None:
                log_spooled(ctx, name)
            return
        body.received(data)
        u = self.uconn
        if u is not None and self.stdin_open:
            # also after an early response head: the script may still read its input
            self.hold_stdin(fcgi.stdin(data))
            self.sent_bytes += len(data)
            self._touch_send()
            return
        if body.hold(data):
            self.conn.transport.pause_reading()

    def body_end(self) -> None:
        if self.state == "done":
            return
        self.body.done = True
        if self.body.mode is rb.BUFFER:
            self.ctx.content_length_in = self.ctx.req.body_size    # $content_length
            return self.connect()
        u = self.uconn
        if u is not None and self.stdin_open:
            self.stdin_open = False
            self.hold_stdin(fcgi.stdin_end())
            self.flush_stdin()
            self.request_sent()

    def hold_stdin(self, record: bytes) -> None:
        """STDIN records of one client read go out in one write, the end of STDIN with the
        last data as nginx's writev sends them (a responder may read them as one)."""
        hold = self.stdin_hold
        if hold is None or hold[0] is not self.uconn:
            self.stdin_hold = (self.uconn, [record])
            self.loop.call_soon(self.flush_stdin)
        else:
            hold[1].append(record)

    def flush_stdin(self) -> None:
        hold = self.stdin_hold
        if hold is None:
            return
        self.stdin_hold = None
        u, records = hold
        if u is not self.uconn or u.closed or self.state == "done":
            return
        u.transport.write(records[0] if len(records) == 1 else b"".join(records))
        if u.write_paused:
            self.conn.transport.pause_reading()

    # ------------------------------------------------------------ upstream events

    def upstream_data(self, data: bytes) -> None:
        if self.throttle is not None:
            data = self.throttle.admit(data)
            if not data:
                return
        self.got_bytes = True
        self.attempt.bytes_received += len(data)
        if self.timer is not None:
            self.deadline = self.loop.time() + self.timeout
        try:
            events = self.records.feed(data)
        except ValueError as exc:
            return self._bad_response(str(exc))
        self.out = []               # everything this read produces goes out in one write
        u = self.uconn
        for event in events:
            kind = event[0]
            if kind == fcgi.STDOUT:
                self.stdout(event[1])
            elif kind == fcgi.STDERR:
                self.stderr(event[1])
            else:
                self.end_request()
            if self.state == "done" or self.uconn is not u:
                break               # finished, or failed over to another peer
        if self.filter_flush:
            self.filter_read_done()
        self._flush()
        if self.filter is not None and getattr(self.filter, "pending", False):
            drain.step(self)

    def stdout(self, data: bytes) -> None:
        if self.state in ("sending", "reading"):
            try:
                got = self.head_reader.feed(data)
            except ValueError as exc:
                return self.next_peer(invalid_header(str(exc)))
            if got is None:
                return
            head, data = got
            self.on_cgi_head(head)
            if self.state != "streaming" or not data:
                return
        if self.rest != body_rest.UNBOUNDED:
            data, self.rest, over = body_rest.cut(self.rest, data, self.resp_length)
            if over:
                return self.more_data(data)
        if self.keeping:
            self.keep_body(data)
        if self.head_only:
            return
        self.attempt.response_length += len(data)
        if self.filter is not None:
            data = self.filter.data(data)
            if not data:
                return
        if self.chunked_out:
            data = resp.chunk(data)
        self.ctx.body_bytes_sent += len(data)      # with the chunk framing, as nginx counts it
        self._emit(data)

    def stderr(self, data: bytes) -> None:
        """nginx: `FastCGI sent in stderr: "..." while reading response header from upstream`."""
        text = data.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
        phase = "reading upstream" if self.state == "streaming" else \
            "reading response header from upstream"
        error_log.error(f'FastCGI sent in stderr: "{text}" while {phase}'
                        + error_log.request_suffix(self.ctx, ""), self.conn.number)
        if self.state in ("sending", "reading"):
            for pattern in self.conf.fastcgi_catch_stderr:   # an invalid response, as nginx
                if pattern in data:
                    return self.next_peer(invalid_header("caught", logged=True))

    def end_request(self) -> None:
        if self.state in ("sending", "reading"):
            return self.next_peer(invalid_header("upstream sent unexpected FastCGI record: 3"))
        error = body_rest.premature(self.rest, self.buffering())
        if error is not None and not self.head_only:
            return self._bad_response(error)
        self.on_message_complete()

    def more_data(self, data: bytes) -> None:
        """Body bytes past the Content-Length: the part within it goes out, the response ends
        there and the connection is not kept (nginx's upstream_done without keepalive)."""
        error_log.warn(body_rest.MORE_DATA + " while reading upstream"
                       + error_log.request_suffix(self.ctx, ""), self.conn.number)
        self.rest = body_rest.UNBOUNDED
        if data:
            self.stdout(data)
        self.on_message_complete()

    def _bad_response(self, message: str) -> None:
        if self.state in ("sending", "reading"):
            return self.next_peer(invalid_header(message))
        self._flush()
        self.ctx.keep_alive = False
        self.fail(self._logged(UpstreamError(Failure.INVALID_BODY, Phase.BODY, message)))

    # ------------------------------------------------------------ response head

    def on_cgi_head(self, head) -> None:
        ctx = self.ctx
        status = head.status
        self.got_head(status, head.headers)
        kind = NEXT_ON_STATUS.get(status)
        if kind is not None and self.may_try_next(kind):
            return self.next_on_status(status, kind)     # fastcgi_next_upstream http_XXX
        self.state = "streaming"
        conf = self.conf
        if status >= 300 and conf.fastcgi_intercept_errors and phases.error_page_for(conf, status):
            self.state = "done"
            self._cancel_timer()
            self.attempt.end(time.monotonic())
            self.release(reuse=False)
            self.conn.writer = None
            return phases.finalize(ctx, status)
        self.send_cgi_head(status, head.reason, head.headers)

    def send_cgi_head(self, status: int, reason, headers) -> None:
        out, ctype, length, lastmod, _, _, _ = self.split_headers(headers, _CONSUMED)
        if self.accel is not None and self.accel_headers():
            return
        head_only = self.write_head(status, reason, out, ctype, length, lastmod)
        self.rest = body_rest.initial(status, self.ctx.method, self.resp_length)
        if head_only and self.ctx.method == "HEAD" and self.rest != 0 \
                and not self.reads_head_body():
            self.on_message_complete_head()     # nginx does not read the body: no keepalive

    def keep_body(self, data: bytes) -> None:
        """Body bytes within the Content-Length, for the cache (cache/fastcgi.py)."""

    def reads_head_body(self) -> bool:
        """Whether the body of a response to HEAD is read (for the cache)."""
        return False

    # ------------------------------------------------------------ release

    def buffering(self) -> bool:
        return self.conf.fastcgi_buffering

    def force_ranges(self) -> bool:
        return self.conf.fastcgi_force_ranges

    def _reusable(self) -> bool:
        u = self.uconn
        up = self.upstream
        return (u is not None and self.plan.keep_conn and up.keepalive > 0 and not u.closed
                and self.body.done and self.records is not None and self.records.done
                and u.requests < up.keepalive_requests
                and self.started - u.born <= up.keepalive_time)

    def _upstream_url(self) -> str:
        return ""               # nginx logs `upstream: "fastcgi://127.0.0.1:9000"`


# ---------------------------------------------------------------- content handler

def fastcgi_handler(ctx) -> None:
    target = ctx.conf.fastcgi_pass
    if target.__class__ is not Upstream:
        target = variable_upstream(ctx, target.render(ctx))
        if target is None:
            return
    FastCGIExchange(ctx, target).start()


_UNIX: dict[str, Upstream] = {}


def variable_upstream(ctx, addr: str) -> Upstream | None:
    """fastcgi_pass with variables: an `upstream` block's name, an IP literal with its port, or
    `unix:/path` (names other than upstream blocks would need a resolver, as in nginx)."""
    if addr[:5].lower() == "unix:":
        up = _UNIX.get(addr)
        if up is None and len(addr) > 5 and len(_UNIX) < 1024:
            up = _UNIX[addr] = Upstream(name=addr, implicit=True, servers=(
                UpstreamServer(host="", port=0, unix=addr[5:], name=addr),))
        if up is not None:
            return up
    else:
        try:
            up, _, uri = resolve_proxy_url(ctx.conn.runtime.config, "http://" + addr, ctx)
            if uri is None:
                return up
        except LookupError as exc:
            resolver_lookup(ctx, *exc.args)     # 502, or the content handler again once resolved
            return None
        except ValueError:
            pass
    error_log.error(f'invalid URL prefix in "{addr}"' + error_log.request_suffix(ctx),
                    ctx.conn.number)
    phases.finalize(ctx, 500)
    return None
