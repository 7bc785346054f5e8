"""fastcgi_pass: the FastCGI wire protocol of the upstream exchange, and its content handler.

One proxy/exchange.py UpstreamExchange per request with a FastCGIWire: the exchange does peer
selection and fastcgi_next_upstream, connect (fastcgi_connect_timeout), the keepalive pool,
timers, the request body (fastcgi_request_buffering on, the default: read whole first into a
BodySpool, memory up to client_body_buffer_size, then a temp file; CONTENT_LENGTH is then
known), backpressure, failures and 499 on client close. The wire writes the request as
FastCGI records (BEGIN_REQUEST, PARAMS, STDIN following the client's body) and reads the
response's records (fastcgi/records.py): the CGI head (fastcgi/cgi.py) becomes the exchange's
response head, STDOUT its body, STDERR is logged, END_REQUEST ends it (the connection goes
back to the pool with fastcgi_keep_conn on and an upstream `keepalive`).
"""
from __future__ import annotations

from ngate.config.model import Upstream, UpstreamServer
from ngate.fastcgi import known as known_heads
from ngate.fastcgi import records as fcgi
from ngate.fastcgi import rest as body_rest
from ngate.fastcgi.cgi import HeadReader
from ngate.fastcgi.params import STATIC, TEMPLATE, ParamsPlan, fold
from ngate.fastcgi.records import (MAX_CONTENT, PAD_PARAMS_STDIN_END, STDERR, STDOUT,
                                   RecordParser, params_header)
from ngate.fastcgi.rest import UNBOUNDED
from ngate.observability import error_log
from ngate.http import phases
from ngate.proxy import request_body as rb
from ngate.proxy.exchange import UpstreamExchange
from ngate.proxy.exchange_base import fill, new
from ngate.proxy import upstream_plan
from ngate.proxy.exchange_state import BEFORE_HEAD, DONE, STREAMING
from ngate.proxy.resolve import resolve_proxy_url
from ngate.resolver.hook import lookup as resolver_lookup
from ngate.server import flow
from ngate.upstream.failure import Failure, Phase, UpstreamError, invalid_header

# ngx_http_fastcgi_hide_headers
DEFAULT_HIDE = frozenset({b"status", b"x-accel-expires", b"x-accel-redirect",
                          b"x-accel-limit-rate", b"x-accel-buffering", b"x-accel-charset"})
# consumed here: written in their nginx slot, or regenerated. A relative Location stays as the
# application wrote it, among the other headers (nginx does not make it absolute here).
CONSUMED = frozenset({b"content-length", b"content-type",
                       b"connection", b"keep-alive", b"transfer-encoding"})


class FastCGIPlan:
    """What a location sends to the FastCGI server; built once per LocConf."""
    __slots__ = ("params", "begin", "keep_conn", "head_limit", "redirects", "cookies",
                 "own_server", "own_date", "heads", "plain", *upstream_plan.SLOTS)

    def __init__(self, conf) -> None:
        items = []      # (STATIC, encoded pair) | (TEMPLATE, name, Template, if_not_empty)
        for p in conf.fastcgi.param:
            name = p.name.encode("latin-1")
            value = fold(p.value, conf)
            if not value.static:
                items.append((TEMPLATE, name, value, p.if_not_empty))
            elif value.text or not p.if_not_empty:
                items.append((STATIC, fcgi.pair(name, value.text.encode("latin-1"))))
        names = [p.name for p in conf.fastcgi.param]
        if conf.fastcgi.cache is not None:
            from ngate.cache.fastcgi import cache_params
            extra, added = cache_params(names)
            items.extend(extra)
            names.extend(added)
        # client headers already given as HTTP_* params are not sent again (as nginx)
        skip = frozenset(n[5:].lower().encode("latin-1") for n in names if n.startswith("HTTP_"))
        self.params = ParamsPlan(items, skip, conf.fastcgi.pass_request_headers, conf)
        self.begin = fcgi.begin_request(conf.fastcgi.keep_conn)
        upstream_plan.take(self, conf.fastcgi, DEFAULT_HIDE)
        self.keep_conn = conf.fastcgi.keep_conn
        self.head_limit = conf.fastcgi.buffer_size
        self.own_server = self.own_date = True
        self.redirects = ()     # proxy_redirect is the proxy module's: CGI headers pass as sent
        self.cookies = None     # so are proxy_cookie_*
        # CGI heads seen and learned (fastcgi/known.py); none under fastcgi_cache
        self.heads = {} if conf.fastcgi.cache is None else None
        # no add_header, userid, body filters, charset nor fastcgi_force_ranges: a known head
        # translates to the same bytes but Date and Connection
        self.plain = not conf.headers.add_header and conf.userid is None \
            and conf.filters is None and not conf.charset.charset \
            and not conf.fastcgi.force_ranges


def plan_for(conf) -> FastCGIPlan:
    """The location's plan, built when the config was compiled (http/modules.py)."""
    return conf.upstream_plan


def _open_empty(ctx, conf) -> bool:
    """An HTTP/2 request with `content-length: 0` whose stream is still open: with
    fastcgi_request_buffering off nginx sends the end of STDIN only with END_STREAM."""
    return ctx.content_length_in == 0 and not conf.fastcgi.request_buffering \
        and ctx.req is not None and not ctx.req.complete


class FastCGIWire:
    """The FastCGI wire protocol strategy of proxy/exchange.py's UpstreamExchange."""
    __slots__ = ("records", "head_reader", "rest", "stdin_hold", "keeping", "head_end", "known")
    upgrades = False            # a CGI 101 is no tunnel
    body_after_head = True      # the script may read its input after its head: STDIN goes on
    frame_file = staticmethod(fcgi.stdin)   # spooled file blocks as STDIN records

    # records: fastcgi/records.py RecordParser of the try's response; head_reader: the CGI
    # head (fastcgi/cgi.py), made when a head is parsed (not for a known one); rest: body
    # bytes still expected (fastcgi/rest.py); stdin_hold:
    # STDIN records of this event-loop turn, written at its end; keeping: the body is also
    # stored (cache/fastcgi.py: the exchange's keep_body); head_end: the offset of the CGI
    # head's end in the bytes read ($upstream_response_length); known: the head's entry of
    # FastCGIPlan.heads while response_head runs (fastcgi/known.py). Set by send_request.

    # ------------------------------------------------------------ configuration

    @staticmethod
    def upstream_url(ex) -> str:
        return ""               # nginx logs `upstream: "fastcgi://127.0.0.1:9000"`

    # ------------------------------------------------------------ request

    @staticmethod
    def prepare(ex) -> str:
        """How the client's body goes upstream (proxy/request_body.py's modes)."""
        ctx = ex.ctx
        conf = ex.conf
        length = ctx.content_length_in      # None for most requests: no _open_empty call
        if not conf.fastcgi.pass_request_body or not (
                ctx.body_chunked or length or (length == 0 and _open_empty(ctx, conf))):
            return rb.NONE
        if conf.fastcgi.request_buffering or conf.client_body_in_file_only != "off":
            return rb.BUFFER
        return rb.STREAM     # a chunked body too (nginx 1.22): no CONTENT_LENGTH then

    @staticmethod
    def body_read(ex) -> None:
        """A buffered body is read whole: its length is $content_length (CONTENT_LENGTH)."""
        ex.ctx.content_length_in = ex.ctx.req.body_size

    def send_request(self, ex, uconn) -> int:
        """Start the request on `uconn` (a new try): write its records and the body at hand;
        the bytes held from the client (or 1 while the body goes on: the client may read)."""
        self.records = RecordParser()
        self.head_end = -1
        self.head_reader = None
        self.rest = UNBOUNDED
        self.stdin_hold = None
        self.keeping = False
        self.known = None
        ctx = ex.ctx
        body = ex.body
        plan = ex.plan
        if body.mode is rb.NONE:        # no body: PARAMS and the end of STDIN, one write
            content = plan.params.build(ctx)
            n = len(content)
            if 0 < n <= MAX_CONTENT:    # fcgi.params' one record, written out (hot path)
                pad = -n & 7
                data = b"".join((plan.begin, params_header(n, pad), content,
                                 PAD_PARAMS_STDIN_END[pad]))
            else:
                data = fcgi.params(content, plan.begin, fcgi.STDIN_END)
            ex.sent_bytes = len(data)
            uconn.transport.write(data)
            return False
        if body.done and ctx.body_chunked and body.mode is rb.STREAM:
            ctx.content_length_in = ctx.req.body_size   # read whole by now: nginx knows its length
        out = [fcgi.params(plan.params.build(ctx), plan.begin)]
        sp = body.spool
        if sp is not None and not sp.in_file:
            out.extend(fcgi.stdin(chunk) for chunk in sp.chunks)
        held = body.pending_size
        for chunk in body.take():
            out.append(fcgi.stdin(chunk))
        if body.done and not (sp is not None and sp.in_file):
            out.append(fcgi.STDIN_END)
        data = b"".join(out)       # one send: writelines() costs a syscall per piece
        ex.sent_bytes = len(data)
        ex.uconn.transport.write(data)
        return held or not body.done

    def write_body(self, ex, u, data: bytes) -> None:
        """A piece of the client's body (also after an early response head: the script may
        still read its input)."""
        self._hold_stdin(ex, fcgi.stdin(data))

    def end_body(self, ex, u) -> None:
        self._hold_stdin(ex, fcgi.stdin_end())
        self.flush_stdin(ex)

    @staticmethod
    def end_of_body(ex) -> bytes:
        """After a spooled body's file."""
        return fcgi.stdin_end()

    def _hold_stdin(self, ex, record: bytes) -> None:
        """STDIN records of one client read go out in one write, the end of STDIN with the
        last data as nginx's writev sends them (a responder may read them as one)."""
        hold = self.stdin_hold
        if hold is None or hold[0] is not ex.uconn:
            self.stdin_hold = (ex.uconn, [record])
            ex.loop.call_soon(self.flush_stdin, ex)
        else:
            hold[1].append(record)

    def flush_stdin(self, ex) -> None:
        hold = self.stdin_hold
        if hold is None:
            return
        self.stdin_hold = None
        u, records = hold
        if u is not ex.uconn or u.closed or ex.state is DONE:
            return
        u.transport.write(records[0] if len(records) == 1 else b"".join(records))
        if u.write_paused:
            flow.pause(ex.conn)

    def reusable(self, ex) -> bool:
        u = ex.uconn
        up = ex.upstream
        return (u is not None and ex.plan.keep_conn and up.keepalive > 0 and not u.closed
                and ex.body.done and self.records is not None and self.records.done
                and u.requests < up.keepalive_requests
                and ex.started - u.born <= up.keepalive_time)

    # ------------------------------------------------------------ response

    def data(self, ex, data: bytes) -> None:
        try:
            events = self.records.feed(data)
        except ValueError as exc:
            return self._bad_response(ex, str(exc))
        ex.out = []                 # everything this read produces goes out in one write
        u = ex.uconn
        for kind, content, end in events:
            if kind == STDOUT:
                self._stdout(ex, content, end)
            elif kind == STDERR:
                self._stderr(ex, content)
            else:
                self._end_request(ex)
            if ex.state is DONE or ex.uconn is not u:
                break               # finished, or failed over to another peer
        if ex.uconn is u:
            self._count(ex)
        ex.read_done()

    def _count(self, ex) -> None:
        """$upstream_response_length: every byte read after the CGI head, record headers,
        padding and END_REQUEST included (nginx: the event pipe's read_length with
        fastcgi_buffering on, each recv() with it off), not the decoded body."""
        if self.head_end >= 0:
            ex.attempt.response_length = self.records.read - self.head_end

    def _stdout(self, ex, data: bytes, end: int = -1) -> None:
        if ex.state in BEFORE_HEAD:
            heads = ex.plan.heads
            reader = self.head_reader
            known = None
            if heads is not None and reader is None:    # a response's first STDOUT bytes
                known, cut = known_heads.lookup(heads, data)
            if known is None or known is True:
                if known is True:       # seen before: send_head may learn it
                    ex.learn = data[:cut]
                    known = None
                if reader is None:
                    reader = self.head_reader = HeadReader(ex.plan.head_limit)
                try:
                    got = reader.feed(data)
                except ValueError as exc:
                    return ex.next_peer(invalid_header(str(exc)))
                if got is None:
                    return
                head, data = got
                status = head.status
                ex.reason = head.reason
                ex.resp_headers = head.headers
            else:
                data = data[cut:]
                status = known[0]
                ex.reason = known[1]
                ex.resp_headers = list(known[2])
                self.known = known
            self.head_end = end - len(data)
            ex.response_head(status)
            self.known = ex.learn = None
            if ex.state is not STREAMING or not data:
                return
        if self.rest != UNBOUNDED:
            data, self.rest, over = body_rest.cut(self.rest, data, ex.resp_length)
            if over:
                return self._more_data(ex, data)
        if self.keeping:
            ex.keep_body(data)
        ex.response_body(data)

    def _more_data(self, ex, data: bytes) -> None:
        """Body bytes past the Content-Length: the part within it goes out, the response ends
        there and the connection is not kept (nginx's upstream_done without keepalive)."""
        error_log.warn(body_rest.MORE_DATA + " while reading upstream"
                       + error_log.request_suffix(ex.ctx, ""), ex.conn.number)
        self.rest = body_rest.UNBOUNDED
        if data:
            self._stdout(ex, data)
        self._count(ex)
        ex.response_end()

    @staticmethod
    def _stderr(ex, data: bytes) -> None:
        """nginx: `FastCGI sent in stderr: "..." while reading response header from upstream`."""
        text = data.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
        phase = Phase.BODY if ex.state is STREAMING else Phase.HEADER
        error_log.error(f'FastCGI sent in stderr: "{text}" while {phase.value}'
                        + error_log.request_suffix(ex.ctx, ""), ex.conn.number)
        if ex.state in BEFORE_HEAD:
            for pattern in ex.conf.fastcgi.catch_stderr:     # an invalid response, as nginx
                if pattern in data:
                    return ex.next_peer(invalid_header("caught", logged=True))

    def _end_request(self, ex) -> None:
        if ex.state in BEFORE_HEAD:
            return ex.next_peer(invalid_header("upstream sent unexpected FastCGI record: 3"))
        if self.rest > 0 and not ex.head_only:      # the body ended short of its length
            return self._bad_response(ex, body_rest.premature(self.rest,
                                                              ex.plan.section.buffering))
        if self.head_end >= 0:      # _count, written out: the log phase runs in response_end
            ex.attempt.response_length = self.records.read - self.head_end
        ex.response_end()

    @staticmethod
    def _bad_response(ex, message: str) -> None:
        if ex.state in BEFORE_HEAD:
            return ex.next_peer(invalid_header(message))
        ex._flush()
        ex.ctx.keep_alive = False
        ex.fail(ex._logged(UpstreamError(Failure.INVALID_BODY, Phase.BODY, message)))

    def send_head(self, ex, status: int, headers=None) -> None:
        known = self.known
        if known is not None and headers is None:
            ctx = ex.ctx
            if known[5] is not None and ctx.http_minor == 1 and ctx.method != "HEAD" \
                    and ctx.cache is None:
                known_heads.send_known(ex, ctx, known)
                self.rest = body_rest.initial(status, ctx.method, ex.resp_length)
                return
            out, ctype, length, lastmod = known[3][:4]
            out = list(out)
        else:
            split = ex.split_headers(ex.resp_headers if headers is None else headers, CONSUMED)
            out, ctype, length, lastmod = split[:4]
            if ex.learn is not None and headers is None:
                known_heads.learn(ex, ex.learn, split)
        if ex.accel is not None and ex.accel_headers():
            return
        head_only = ex.write_head(status, ex.reason, out, ctype, length, lastmod)
        if ex.state is DONE:
            return              # the range filter sent a 416 instead (filters/range.py)
        self.rest = body_rest.initial(status, ex.ctx.method, ex.resp_length)
        if head_only and ex.ctx.method == "HEAD" and self.rest != 0 \
                and not self.reads_head_body(ex):
            ex.response_end_head()      # nginx does not read the body: no keepalive

    @staticmethod
    def reads_head_body(ex) -> bool:
        """Whether the body of a response to HEAD is read (for the cache)."""
        return False


# ---------------------------------------------------------------- content handler

def fastcgi_handler(ctx) -> None:
    target = ctx.conf.fastcgi.pass_
    if target.__class__ is not Upstream:
        target = variable_upstream(ctx, target.render(ctx))
        if target is None:
            return
    ex = new(UpstreamExchange)          # UpstreamExchange(...) without the __init__ call
    fill(ex, ctx, target, FastCGIWire(), ctx.conf.upstream_plan)     # plan_for
    ex.start()


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
