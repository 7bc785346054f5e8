"""proxy_pass to HTTP upstreams: one ProxyExchange per request.

Exchange states:
  connecting   peer chosen (balancer), pooled connection reused or a new one opened
               (proxy_connect_timeout); connect errors try the next peer (proxy_next_upstream)
  sending      request head + body streamed from the client (backpressure both ways)
  reading head proxy_read_timeout re-armed on every read
  streaming    response body to the client; the upstream socket pauses while the client's
               write buffer is above its high-water mark
  tunnel       a 101 to an Upgrade request: proxy/tunnel.py takes both transports
  done         the upstream connection goes back to the keepalive pool or is closed

A pooled connection that fails before any response byte is retried once on a fresh connection
when the request can be replayed (no body, or a body still held in memory).
"""
from __future__ import annotations

import asyncio
import ssl
import time
from functools import partial

import httptools

from ngate.config.model import Upstream, UpstreamServer
from ngate.filters import Chain, HeadersOut, header_filter, postpone, trailers
from ngate.filters import charset as charset_filter, drain, range as range_filter, validators
from ngate.http1 import charset
from ngate.http1 import response as resp
from ngate.http1.discard import test_expect
from ngate.observability import error_log
from ngate.http import downstream, log, phases, respond, rewrite
from ngate.proxy import request_body as rb
from ngate.proxy.bind import BindError, connect_bound, local_address
from ngate.proxy.body_spool import SpoolError
from ngate.proxy.cookies import rewrite as rewrite_cookie
from ngate.proxy.proxy_request import build_request_head, plan_for, upstream_uri
from ngate.proxy.throttle import ReadThrottle
from ngate.proxy.upstream_chunked import ChunkedResponseBody
from ngate.proxy.upstream_conn import Connect, TlsUpstreamConnection, UpstreamConnection
from ngate.proxy.tunnel import start_tunnel
from ngate.routing.uri import escape_uri
from ngate.upstream import attempts, retry
from ngate.upstream.balancer import (PEER_HEALTH, balancer_for, release,
                                     report_failure, report_success)
from ngate.upstream.failure import (Failure, Phase, UpstreamError, closed, connect_failed,
                                    invalid_header, timed_out)
from ngate.upstream.tls import handshake_error, open_tls, upstream_tls

# what an X-Accel-Redirect carries to the redirected response (nginx's `redirect` headers)
_ACCEL_CARRIED = frozenset({b"content-type", b"set-cookie", b"content-disposition",
                            b"cache-control", b"expires", b"accept-ranges"})

# consumed by the proxy: never copied to the client as-is (Last-Modified is not: nginx's
# ngx_http_upstream_copy_last_modified keeps it among the headers, in the upstream's order)
_CONSUMED = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length",
                       b"content-type", b"location"})
# statuses proxy_next_upstream can retry on (http_403 and http_404 do not count as failures)
NEXT_ON_STATUS = {500: "http_500", 502: "http_502", 503: "http_503", 504: "http_504",
                   403: "http_403", 404: "http_404", 429: "http_429"}
_MAX_TRIES = 64


class _PassedRaw(Exception):
    """Raised from a parser callback to stop llhttp: the rest of the read was passed on raw."""


def _head_end(buf: bytes) -> int:
    """Where the first response head in buf ends (after its empty line; CRLF or bare LF)."""
    crlf, lf = buf.find(b"\n\r\n"), buf.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf + 3
    return lf + 2 if lf >= 0 else len(buf)


def log_spooled(ctx, name: str) -> None:
    """nginx: [warn] (client_body_in_file_only: [notice]) when a body goes to a temp file."""
    text = f"a client request body is buffered to a temporary file {name}" + \
        error_log.request_suffix(ctx)
    if ctx.conf.client_body_in_file_only == "off":
        error_log.warn(text, ctx.conn.number)
    else:
        error_log.notice(text, ctx.conn.number)


# ---------------------------------------------------------------- the exchange

class ProxyExchange:
    __slots__ = (
        "ctx", "conn", "conf", "plan", "upstream", "peer", "uconn", "tried", "tries", "loop",
        "parser", "reason", "resp_headers", "status", "chunked_out", "head_only", "until_close",
        "resp_length", "state", "timer", "deadline", "timeout",
        "body",             # proxy/request_body.py RequestBody: replay, spooling, pending bytes
        "started", "sent_bytes", "reused", "got_bytes", "tail",
        "head_bytes",       # bytes read while the response head is incomplete (proxy_buffer_size)
        "head_buf",         # those bytes (usually one read, not copied): a 1xx passes the rest raw
        "feeding",          # inside parser.feed_data: a finished connection is pooled after it
        "pool_pending",     # that connection, pooled once the read is parsed to its end
        "upgrade", "connecting", "uri", "tls",
        "out",              # response bytes gathered during one upstream read: one write
        "counts",           # least_conn or max_conns: connections per peer are counted
        "counted",          # the peer this exchange counts a connection for
        "deadlines",
        "filter",           # filters/: the body filter of this response, or None
        "filter_flush",     # flush the body filter per upstream read (response not buffered)
        "accel",            # the response's X-Accel-* headers (hidden ones), or None
        "throttle",         # proxy/throttle.py ReadThrottle (proxy_limit_rate), or None
        "drain",            # filters/drain.py: None, "draining" or "complete" (gunzip's output)
        "corked",           # chunked body data of this client read, not yet written: one chunk
        "in_read",          # a chunked body piece came in this client read (nginx: one buffer)
        "attempt",          # upstream/attempts.py Attempt: the current try ($upstream_*)
    )
    plan_for = staticmethod(plan_for)   # the compiled per-location plan (overridden by FastCGI)

    def __init__(self, ctx, upstream: Upstream) -> None:
        self.ctx = ctx
        self.conn = ctx.conn
        self.conf = ctx.conf
        self.plan = self.plan_for(ctx.conf)
        self.upstream = upstream
        self.peer = None
        self.uconn = None
        self.tried: set = set()
        self.tries = 0
        self.loop = ctx.conn.runtime.loop
        self.deadlines = ctx.conn.runtime.deadlines
        self.counts = upstream is not None and upstream.counts_conns
        self.counted = None
        self.parser = None
        self.state = "connecting"
        self.drain = None
        self.timer = None
        self.deadline = 0.0
        self.timeout = 0.0
        self.body = None            # set by start()
        self.corked = None
        self.in_read = False
        self.started = time.monotonic()
        self.sent_bytes = 0
        self.reused = False
        self.got_bytes = False
        self.tail = b""
        self.upgrade = False
        self.connecting = None
        self.uri = ""
        self.reason = None
        self.resp_headers = []
        self.status = 0
        self.chunked_out = False
        self.head_only = False
        self.until_close = False
        self.resp_length = None
        self.tls = None             # (SSLContext, server_hostname) for proxy_pass https://
        self.out = None
        self.feeding = False
        self.pool_pending = None
        self.filter = None
        self.filter_flush = False
        self.accel = None
        rate = self.plan.limit_rate
        self.throttle = ReadThrottle(self, rate) if rate else None
        self.attempt = None

    # ------------------------------------------------------------ start

    def start(self) -> None:
        ctx = self.ctx
        conf = self.conf
        self.uri = upstream_uri(ctx, conf.proxy_pass) if conf.proxy_pass.template is None else self.uri
        if conf.proxy_pass.scheme == "https":
            self.tls = upstream_tls(ctx, conf, conf.proxy_pass.scheme, ctx.proxy_host)
        self.start_body(self.body_mode(ctx, conf))

    def body_mode(self, ctx, conf) -> str:
        """How the client's body goes upstream (proxy/request_body.py's modes)."""
        if conf.proxy_set_body is not None or not conf.proxy_pass_request_body:
            return rb.NONE
        if ctx.body_chunked:
            return rb.CHUNKED if (not conf.proxy_request_buffering
                                  and conf.client_body_in_file_only == "off"
                                  and self.plan.version == b"HTTP/1.1") else rb.BUFFER
        if ctx.content_length_in:
            return rb.BUFFER if (conf.proxy_request_buffering
                                 or conf.client_body_in_file_only != "off") else rb.LENGTH
        return rb.NONE

    def start_body(self, mode: str) -> None:
        """Read the client's body (100 Continue first when asked), then connect: at once for a
        streamed body, at its end for a buffered one (body_end)."""
        ctx = self.ctx
        body = self.body = rb.NO_BODY if mode is rb.NONE else rb.RequestBody(self.conf, mode)
        self.conn.writer = self
        test_expect(ctx)        # nginx reads the body (if any) first: 100 Continue even without
        if mode is not rb.NONE:
            ctx.body_spool = body           # $request_body, $request_body_file
            self.conn.attach_body(ctx.req, self)
            if mode is rb.BUFFER or self.state == "done":
                return          # body_end connects once the whole body is here
        self.connect()

    def connect(self) -> None:
        if self.tries >= _MAX_TRIES:
            return self.fail(UpstreamError(Failure.TOO_MANY_TRIES, Phase.CONNECT))
        if self.counted is not None:
            self._count(-1)
        peer = balancer_for(self.upstream).take(self.ctx, self.tried)
        if peer is None:
            # tries remain but every peer is down or failed (also after a failure in this
            # request): nginx names the group as the peer in $upstream_addr and the log's
            # upstream: "...", with status 502
            a = self.attempt = attempts.add(self.ctx, self.upstream.name, time.monotonic(),
                                            self.attempt is None)
            a.status = 502
            return self.fail(self._logged(UpstreamError(Failure.NO_LIVE, Phase.CONNECT,
                                                        "no live upstreams")))
        self.tries += 1
        self.peer = peer
        if self.counts:
            self._count(1)
        ctx = self.ctx
        if ctx.upstream_tries is None:      # the usual first try, written out (hot path)
            a = self.attempt = attempts.Attempt(peer.name, time.monotonic())
            ctx.upstream_tries = [a]
        else:
            self.attempt = attempts.add(ctx, peer.name, time.monotonic(), self.attempt is None)
        up = self.upstream
        if up.keepalive:
            pooled = self.conn.runtime.pool.get(id(up), self._pool_key(peer))
            if pooled is not None:
                pooled.take()
                self.reused = True
                self.attach(pooled)
                return
        self.reused = False
        self.state = "connecting"
        self.arm(self.plan.connect_timeout)
        self.connecting = Connect(self.loop, self._open(peer))

    def _pool_key(self, peer: UpstreamServer) -> tuple:
        """A pooled connection is reused for the same peer and the same TLS identity."""
        key = (peer.unix or peer.host, peer.port)
        return key if self.tls is None else key + self.tls

    async def _open(self, peer: UpstreamServer) -> None:
        loop = self.loop
        try:
            local = self.plan.bind and local_address(self.ctx, self.plan.bind)
            sock = local and await connect_bound(loop, peer, local)
            if self.tls is not None:     # proxy_connect_timeout: the "connecting" deadline
                proto = TlsUpstreamConnection(peer)
                proto.session_key = await open_tls(loop, peer, self.tls, proto, sock)
            elif sock:
                _, proto = await loop.create_connection(partial(UpstreamConnection, peer),
                                                        sock=sock)
            elif peer.unix:
                _, proto = await loop.create_unix_connection(partial(UpstreamConnection, peer),
                                                             peer.unix)
            else:
                _, proto = await loop.create_connection(partial(UpstreamConnection, peer),
                                                        peer.host, peer.port)
        except BindError as exc:
            self.connecting = None
            return self.bind_failed(exc)
        except ssl.SSLError as exc:
            self.connecting = None
            return self.next_peer(UpstreamError(Failure.TLS_FAILED, Phase.CONNECT,
                                                handshake_error(exc)))
        except OSError as exc:
            self.connecting = None
            return self.next_peer(connect_failed(exc))
        except asyncio.CancelledError:
            return
        self.connecting = None
        if self.state == "done":
            proto.close()
            return
        self._cancel_timer()
        self.attach(proto)

    def _count(self, delta: int, peer=None) -> None:
        """The peer's count of active connections (least_conn, max_conns; no bookkeeping for
        other groups): taken when the peer is selected, as nginx does, given back once (a
        pooled keep-alive connection is not active)."""
        if not self.counts:
            return
        if delta > 0:
            self.counted = self.peer        # counted by the balancer's take()
        elif self.counted is not None:
            release(self.upstream, self.counted)
            self.counted = None

    def attach(self, uconn: UpstreamConnection) -> None:
        a = self.attempt
        if a.connect_time is None:      # nginx: when the request is first sent (0 when pooled)
            a.connect_time = 0.0 if self.reused else time.monotonic() - a.start
        self.uconn = uconn
        uconn.exchange = self
        uconn.requests += 1
        parser = uconn.parser
        if parser is None:
            parser = uconn.parser = httptools.HttpResponseParser(uconn)
            if hasattr(parser, "set_dangerous_leniencies"):
                # nginx's ngx_http_parse_status_line/header_line take a bare LF as a line end
                parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self.parser = parser
        self.resp_headers = []
        self.reason = None
        self.status = 0
        self.got_bytes = False
        self.head_bytes = 0
        self.head_buf = b""
        self.tail = b""
        self.state = "sending"
        self.send_request()

    def send_request(self) -> None:
        ctx = self.ctx
        conf = self.conf
        body_len = None
        chunked = False
        rbody = self.body
        mode = rbody.mode
        if conf.proxy_set_body is not None:
            body = conf.proxy_set_body.render(ctx).encode("latin-1", "replace")
            body_len = len(body)
        else:
            body = None
            if mode is rb.LENGTH:
                body_len = ctx.content_length_in
            elif mode is rb.BUFFER:
                body_len = rbody.total
            elif mode is rb.CHUNKED:
                if rbody.done:      # read whole by now: nginx then sends Content-Length
                    body_len = rbody.total
                else:
                    chunked = True
            elif ctx.content_length_in == 0 and conf.proxy_pass_request_body:
                body_len = 0
        head = build_request_head(ctx, self.plan, self.uri, body_len, chunked)
        t = self.uconn.transport
        parts = [head]
        sp = rbody.spool
        held = rbody.pending_size
        if body is not None:
            parts.append(body)
        elif sp is not None and not sp.in_file:
            parts.extend(sp.chunks)
        elif rbody.streamed:
            chunks = rbody.take()
            if chunked:
                parts.extend(resp.chunk(c) for c in chunks)
            else:
                parts.extend(chunks)
        if chunked and rbody.done:
            parts.append(resp.LAST_CHUNK)
        data = b"".join(parts)
        self.sent_bytes = len(data)
        t.write(data)
        if held and not self.uconn.write_paused and not self.conn.closing:
            self.conn.transport.resume_reading()
        if sp is not None and sp.in_file and body is None:
            sp.rewind()
            if not self._send_spool():
                return
        if rbody.done:
            self.request_sent()
        elif self.uconn.write_paused:
            self.conn.transport.pause_reading()

    def _send_spool(self) -> bool:
        """Stream the spooled body until the upstream pauses; True when it is all written
        (else upstream_write_resumed goes on, proxy_send_timeout re-armed by each step)."""
        sp = self.body.spool
        start = sp.pos
        done = sp.send_to(self.uconn)
        self.sent_bytes += sp.pos - start
        if not done:
            self.arm(self.plan.send_timeout)
        return done

    # ------------------------------------------------------------ client body (consumer API)

    def body_data(self, data: bytes) -> None:
        """A piece of the client's body: spooled (BUFFER), sent on, or held until the upstream
        connection takes it (the client pauses while too much is held: RequestBody.hold)."""
        body = self.body
        n = len(data)
        limit = self.conf.client_max_body_size
        if limit and self.ctx.body_chunked and body.total + n > limit:
            body.done = True
            error_log.error(f"client intended to send too large chunked body: "
                            f"{body.total}+{n} bytes" + error_log.request_suffix(self.ctx),
                            self.conn.number)
            return self.abort_with(413)
        if body.mode is rb.BUFFER:
            try:
                name = body.spool_add(data)
            except SpoolError as err:
                return self.spool_failed(err)
            if name is not None:
                log_spooled(self.ctx, name)
            return
        u = self.uconn
        if u is None or self.state != "sending":
            # nginx sends the chunks of one client read as one chunk
            merge = body.mode is rb.CHUNKED and self._same_read()
            body.received(data, merge)
            if body.hold(data, merge):
                self.conn.transport.pause_reading()
            return
        body.received(data)
        if body.mode is rb.CHUNKED:
            self._cork(data)
        else:
            u.transport.write(data)
        self.sent_bytes += n
        if u.write_paused:
            self.conn.transport.pause_reading()
        self._touch_send()

    def body_end(self) -> None:
        body = self.body
        body.done = True
        if body.mode is rb.BUFFER:
            if self.state == "connecting" and self.uconn is None and self.connecting is None:
                self.connect()
            return
        u = self.uconn
        if u is not None and self.state == "sending":
            if body.mode is rb.CHUNKED:
                self._uncork(last=True)
            self.request_sent()

    def _same_read(self) -> bool:
        """Whether a chunked body piece came in the same client read as the previous one (each
        chunk is passed on alone, for client_max_body_size's per-chunk check)."""
        if self.in_read:
            return True
        self.in_read = True
        self.loop.call_soon(self._read_over, self.uconn)
        return False

    def _read_over(self, uconn) -> None:
        self.in_read = False
        if self.corked is not None:
            self._uncork(False, uconn)

    def _cork(self, data: bytes) -> None:
        """nginx sends the chunks it read at once as one chunk, with the last chunk when the body
        ends there: the data of this client read is written once it is parsed (or at its end)."""
        self._same_read()
        corked = self.corked
        if corked is None:
            self.corked = [data]
        else:
            corked.append(data)

    def _uncork(self, last: bool = False, uconn=None) -> None:
        corked = self.corked
        self.corked = None
        u = self.uconn
        if u is None or (uconn is not None and u is not uconn) or u.closed:
            return
        out = resp.chunk(b"".join(corked)) if corked else b""
        if last:
            out += resp.LAST_CHUNK
        if out:
            u.transport.write(out)

    def request_sent(self) -> None:
        if self.state == "sending":
            self.state = "reading"
        self.attempt.bytes_sent += self.sent_bytes
        self.arm(self.plan.read_timeout)

    # ------------------------------------------------------------ timeouts (lazily re-armed)

    def arm(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = self.loop.time() + timeout
        if self.timer is None:
            self.timer = True
            self.deadlines.watch(self)

    def _touch_send(self) -> None:
        if self.timer is None:
            self.arm(self.plan.send_timeout)

    def expired(self) -> None:
        """The deadline passed with no progress (server/clock.py)."""
        self.timer = None
        if self.state == "connecting":
            connecting = self.connecting
            if connecting is not None:
                self.connecting = None
                connecting.cancel()
                return self.next_peer(timed_out(Phase.CONNECT))
            return
        if self.state in ("sending", "reading"):
            return self.next_peer(timed_out(Phase.HEADER))
        if self.state == "streaming" or self.state == "http09":
            self.ctx.keep_alive = False
            self.fail(self._logged(timed_out(Phase.BODY)))

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer = None
            self.deadlines.unwatch(self)

    # ------------------------------------------------------------ upstream events

    def upstream_data(self, data: bytes) -> None:
        if self.throttle is not None:
            data = self.throttle.admit(data)
            if not data:
                return
        self.got_bytes = True
        self.attempt.bytes_received += len(data)
        if self.timer is not None:
            self.deadline = self.loop.time() + self.timeout   # re-armed by progress
        if self.state == "tunnel":
            return
        if self.state == "http09":
            self.ctx.body_bytes_sent += len(data)
            self.conn.write(data)
            return
        if self.tail is not None and self._http09(data):
            return
        if self.state == "reading" or self.state == "sending":
            self.head_bytes += len(data)
            self.head_buf = self.head_buf + data if self.head_buf else data
        self.out = []
        parser = self.parser
        u = self.uconn
        self.feeding = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(data, exc.args[0] if exc.args else None)
        except httptools.HttpParserError as exc:
            if self.parser is not parser or self.state == "done":
                pass        # abandoned for the next peer (next_on_status), passed on raw (a
                #             1xx), or bytes after the end of the response (leftover below)
            elif self.status == 101 and self.state == "switching":
                self._upgraded(data, None)
            elif self.state in ("reading", "sending"):
                self._flush()
                self.next_peer(invalid_header(f"upstream sent invalid header: {exc}"))
            else:
                self._flush()
                self.ctx.keep_alive = False
                self.fail(self._logged(UpstreamError(
                    Failure.INVALID_BODY, Phase.BODY, "upstream sent invalid chunked response")))
        self.feeding = False
        pending = self.pool_pending
        if pending is not None:
            self.pool_pending = None
            self._pool(pending)
        if (self.state == "reading" or self.state == "sending") \
                and self.head_bytes > self.conf.proxy_buffer_size:
            self.out = None     # the head is still incomplete past proxy_buffer_size
            return self.next_peer(invalid_header("upstream sent too big header"))
        if self.filter_flush:
            self.filter_read_done()
        self._flush()
        if self.filter is not None and getattr(self.filter, "pending", False):
            drain.step(self)
        if u is not None and u.leftover and self.state == "done":
            self._log_leftover()

    def _log_leftover(self) -> None:
        """nginx's warning for bytes after the end of a response (ngx_http_proxy_copy_filter,
        ngx_http_proxy_chunked_filter); the bytes are dropped with the connection."""
        chunked = self.resp_length is None and not self.head_only and not self.until_close
        what = ("upstream sent data after final chunk" if chunked else
                'upstream sent more data than specified in "Content-Length" header')
        error_log.warn(what + " while reading upstream"
                       + error_log.request_suffix(self.ctx, self._upstream_url()),
                       self.conn.number)

    def _filter_out(self, data: bytes) -> None:
        """Bytes the body filter produced outside on_body (flush, finish)."""
        if data:
            if self.chunked_out:
                data = resp.chunk(data)
            self.ctx.body_bytes_sent += len(data)
            self._emit(data)

    def filter_read_done(self) -> None:
        """The end of one upstream read: flush the body filter when the response is not
        buffered (nginx passes each read on with its flush flag then)."""
        if self.filter_flush and self.state == "streaming" and not self.head_only:
            self._filter_out(self.filter.flush())

    def _emit(self, data: bytes) -> None:
        out = self.out
        if out is not None:
            out.append(data)
        else:
            self.conn.write(data)

    def _flush(self) -> None:
        out = self.out
        if out is not None:
            self.out = None
            if out:
                self.conn.write(out[0] if len(out) == 1 else b"".join(out))

    def _http09(self, data: bytes) -> bool:
        """A response that does not start with "HTTP/" is HTTP/0.9: logged and passed raw until
        the upstream closes, as nginx does (proxy_read_timeout still applies).

        `tail` holds the first bytes until five are seen, then becomes None (checked)."""
        probe = self.tail + data
        if len(probe) < 5:
            if b"HTTP/".startswith(probe):
                self.tail = probe
                return False
        elif probe.startswith(b"HTTP/"):
            self.tail = None
            return False
        self.tail = None
        self.state = "http09"
        ctx = self.ctx
        error_log.error("upstream sent no valid HTTP/1.0 header while reading response header "
                        "from upstream" + error_log.request_suffix(ctx, self._upstream_url()),
                        self.conn.number)
        ctx.status = 200
        self.attempt.status = 200       # nginx: u->state->status = NGX_HTTP_OK
        ctx.head_sent = True
        ctx.keep_alive = False
        ctx.body_bytes_sent += len(probe)
        self.conn.write(probe)
        return True

    def upstream_lost(self, exc) -> None:
        th = self.throttle
        if th is not None and (th.held or th.resting) and self.state != "done":
            th.lost = (exc,)        # told once the held bytes went through
            return
        self.uconn = None
        st = self.state
        if st == "done" or st == "tunnel":
            return
        if st == "http09":
            self.state = "done"
            self._count(-1)
            self.attempt.end(time.monotonic())
            self.conn.writer = None
            return self.conn.finish_request(self.ctx)
        if st in ("sending", "reading"):
            self._count(-1)
            if self.reused and not self.got_bytes and self.body.replayable:
                # a pooled connection the peer had closed: retry on a fresh one
                self.state = "connecting"
                return self._reconnect_fresh()
            return self.next_peer(closed(Phase.HEADER, exc))
        if st == "streaming":
            if self.until_close:
                return self.on_message_complete()
            self._count(-1)
            self.ctx.keep_alive = False
            self.fail(self._logged(closed(Phase.BODY)))

    def _reconnect_fresh(self) -> None:
        self.reused = False
        peer = self.peer
        self._count(1)
        self.arm(self.plan.connect_timeout)
        self.connecting = Connect(self.loop, self._open(peer))

    def upstream_write_paused(self) -> None:
        self.conn.transport.pause_reading()

    def upstream_write_resumed(self) -> None:
        sp = self.body.spool
        if sp is not None and sp.in_file and self.state == "sending" and sp.pos < sp.size:
            if self._send_spool():
                self.request_sent()
        if not self.conn.closing:
            self.conn.transport.resume_reading()

    # ------------------------------------------------------------ httptools callbacks

    def on_headers_complete(self) -> None:
        ctx = self.ctx
        status = self.parser.get_status_code()
        if status < 200 and status != 101:
            return self.interim_as_final(status)
        limit = self.conf.proxy_buffer_size
        if self.head_bytes > limit and 17 + len(self.reason or b"") + sum(
                [len(n) + len(v) + 4 for n, v in self.resp_headers]) > limit:
            return self.next_peer(invalid_header("upstream sent too big header"))
        self.got_head(status, self.resp_headers)
        kind = NEXT_ON_STATUS.get(status)
        if kind is not None and self.may_try_next(kind):
            return self.next_on_status(status, kind)
        # an early response (e.g. a 413 before the whole body was sent) is streamed the same way
        self.state = "streaming"
        conf = self.conf
        if status >= 300 and conf.proxy_intercept_errors and phases.error_page_for(conf, status):
            if status == 401:       # nginx keeps the upstream's (first) WWW-Authenticate
                auth = next(((n, v) for n, v in self.resp_headers
                             if n.lower() == b"www-authenticate"), None)
                if auth is not None:
                    ctx.www_authenticate = auth[1].decode("latin-1")
            self.state = "done"
            self._cancel_timer()
            self.attempt.end(time.monotonic())
            self.release(reuse=False)
            self.conn.writer = None
            return phases.finalize(ctx, status)
        if status == 101:
            if b"upgrade" in ctx.hdr and ctx.main is None:    # never in a subrequest
                self.state = "switching"
                self.upgrade = True
            self.send_head(status)
            return
        self.send_head(status)
        if self.state == "streaming" and self.resp_length is None and not self.until_close \
                and not self.head_only:
            self._read_chunked()

    def _read_chunked(self) -> None:
        """A chunked body is parsed as nginx parses it (proxy/upstream_chunked.py), not by
        llhttp: the rest of this read goes to it, later reads through `self.parser`."""
        u = self.uconn
        self.parser = body = ChunkedResponseBody(self, u)
        u.parser = None             # llhttp is mid-response: a reused connection gets a new one
        rest = self.head_buf[_head_end(self.head_buf):]
        self.head_buf = b""
        if rest:
            try:
                body.feed_data(rest)
            except httptools.HttpParserError:
                self._flush()
                self.ctx.keep_alive = False
                self.fail(self._logged(UpstreamError(
                    Failure.INVALID_BODY, Phase.BODY, "upstream sent invalid chunked response")))
        raise _PassedRaw            # stops llhttp in this read (upstream_data catches it)

    def interim_as_final(self, status: int) -> None:
        """nginx 1.22 takes an upstream's 1xx (100 Continue, 103) for the response: its head goes
        to the client (no body framing, keep-alive as usual) and every byte after it (the real
        response included) is passed on raw until the upstream closes."""
        ctx = self.ctx
        self.got_head(status, self.resp_headers)
        self.uconn_reusable_flag(False)
        self.state = "streaming"
        self.send_head(status)
        self.parser = None          # llhttp would parse the rest as a response of its own
        if self.state != "done":    # (a HEAD request is done with the head)
            self.state = "http09"
            rest = self.head_buf[_head_end(self.head_buf):]
            if rest:
                ctx.body_bytes_sent += len(rest)
                self._emit(rest)
        self.head_buf = b""
        raise _PassedRaw            # stops llhttp in this read (upstream_data catches it)

    def got_head(self, status: int, headers) -> None:
        """The try's response head is parsed: its status and header time ($upstream_*)."""
        self.status = status
        a = self.attempt
        a.status = status
        a.header_time = time.monotonic() - a.start
        self.ctx.upstream_headers = headers

    def buffering(self) -> bool:
        return self.conf.proxy_buffering

    def on_body(self, body: bytes) -> None:
        if self.head_only or self.state == "done":
            return
        ctx = self.ctx
        self.attempt.response_length += len(body)
        if self.filter is not None:
            body = self.filter.data(body)
            if not body:
                return
        if self.chunked_out:
            body = b"%x\r\n%b\r\n" % (len(body), body)
        ctx.body_bytes_sent += len(body)       # with the chunk framing, as nginx counts it
        self._emit(body)

    def on_message_complete(self) -> None:
        if self.state == "switching" or self.state == "done":
            return
        if self.status < 200 and self.status != 101:
            return          # the end of an interim response
        if self.filter is not None and getattr(self.filter, "pending", False) \
                and not self.head_only and not self.conn.closing:
            self.drain = "complete"     # filters/drain.py ends the response once drained
            return
        self.state = "done"
        self._cancel_timer()
        deferred = False
        if self.filter is not None and not self.head_only:
            self._filter_out(self.filter.finish())
            deferred = postpone.defer_end(self.filter, self.ctx, self._end_response)
        ctx = self.ctx
        self.attempt.end(time.monotonic())      # for add_trailer too
        if not deferred and self.chunked_out and not self.head_only:
            last = trailers.last_chunk(ctx)
            self._emit(last)
            ctx.body_bytes_sent += len(last)
        self._flush()
        if PEER_HEALTH:     # else no failure was ever counted in this worker
            report_success(self.upstream, self.peer)
        self.release(reuse=self._reusable())
        if deferred:
            return          # subrequests still run: filters/postpone.py ends the response
        self.conn.writer = None
        ctx.bytes_sent += ctx.body_bytes_sent
        self.conn.finish_request(ctx)

    def _end_response(self) -> None:
        """The end of a response whose subrequests outlived the upstream response."""
        ctx = self.ctx
        if self.chunked_out:
            last = trailers.last_chunk(ctx)
            self.conn.write(last)
            ctx.body_bytes_sent += len(last)
        ctx.bytes_sent += ctx.body_bytes_sent
        self.conn.finish_request(ctx)

    # ------------------------------------------------------------ response head

    def send_head(self, status: int) -> None:
        ctx = self.ctx
        if ctx.status_override is not None and status != 101:
            # an error_page target keeps the error's status (ngx_http_send_header: err_status)
            status, self.reason, ctx.status_override = ctx.status_override, None, None
        out, ctype, length, lastmod, location, te_chunked, close = \
            self.split_headers(self.resp_headers, _CONSUMED)
        if self.accel is not None and self.accel_headers():
            return
        if close or self.parser.get_http_version() == "1.0":
            self.uconn_reusable_flag(False)
        head_only = self.write_head(status, self.reason or _as_sent(status, self.reason), out,
                                    ctype, length, lastmod, location, te_chunked)
        if self.state == "done":
            return              # the range filter sent a 416 instead (filters/range.py)
        # an HTTP/1.0-style response without length or chunking ends when the upstream closes
        self.until_close = (not head_only and status != 101 and self.resp_length is None
                            and not te_chunked)
        if head_only and status != 101:
            # the parser cannot be told this was a HEAD: the response ends with its head
            if ctx.method == "HEAD" and status >= 200 and status not in (204, 304):
                self.uconn_reusable_flag(False)
                self.state = "streaming"
                self.parser = None
                self.on_message_complete_head()

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
        if conf.add_header or conf.userid is not None:
            out.extend(respond.add_headers(ctx, conf, status, skip=validators.NAMES))
            found = validators.overrides(ctx, conf, status) if conf.add_header else None
            if found is not None:
                validators.apply(out, found)     # they replace the upstream's own
        force = self.force_ranges()     # filters/range.py; the upstream's Accept-Ranges goes
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
                charset_filter.accel(ctx, conf.charset_accel, ho, accel)
            self.filter = header_filter(ctx, filters, ho) if filters is not None else None
            if recode is not None:
                self.filter = charset_filter.prepend(recode, self.filter)
            if force and self.range_filter(ho):
                return True                 # a 416 went out instead
            if ho.status != status:
                status, reason = ho.status, None        # 206
            if self.filter is not None:
                postpone.attach(self.filter, self._filter_out)
                self.filter_flush = not self.buffering() or any(
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
        if conf.charset:
            ctype = charset.content_type(conf, status, ctype, ctx)
        head = resp.build_head(
            status, 1, server_tokens=conf.server_tokens, content_type=ctype,
            content_length=clen if status != 101 else None, last_modified=lastmod,
            location=location, chunked=chunked_out, connection=connection, headers=out,
            reason=reason, server=self.plan.own_server, date=self.plan.own_date)
        ctx.head_sent = True
        ctx.bytes_sent = len(head)
        self._emit(head)
        return head_only

    def force_ranges(self) -> bool:
        return self.conf.proxy_force_ranges

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
            self.state = "done"
            self._cancel_timer()
            self.release(reuse=False)
            self.conn.writer = None
            ctx = self.ctx
            respond.send_response(ctx, 416, resp.status_page(416, self.conf.server_tokens),
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
        self.state = "done"
        self._cancel_timer()
        self.attempt.end(time.monotonic())
        self.release(reuse=False)
        self.conn.writer = None
        carried = [(n, v) for n, v in self.resp_headers if n.lower() in _ACCEL_CARRIED]
        if carried:
            ctx.accel_headers = carried
        phases.accel_redirect(ctx, target.decode("latin-1"))
        return True

    def uconn_reusable_flag(self, ok: bool) -> None:
        if not ok and self.uconn is not None:
            self.uconn.requests = 1 << 30   # never pooled again

    def on_message_complete_head(self) -> None:
        self._flush()
        self.state = "done"
        self._cancel_timer()
        ctx = self.ctx
        self.attempt.end(time.monotonic())
        report_success(self.upstream, self.peer)
        self.release(reuse=False)
        self.conn.writer = None
        self.conn.finish_request(ctx)

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

    def _reusable(self) -> bool:
        u = self.uconn
        up = self.upstream
        if u is None or not up.keepalive or u.closed or self.until_close:
            return False
        if self.plan.version != b"HTTP/1.1" or u.requests >= up.keepalive_requests \
                or self.started - u.born > up.keepalive_time:
            return False
        return self.body.done

    def release(self, reuse: bool) -> None:
        body = self.body
        if body is not None and body.spool is not None:
            body.close()
        self._count(-1)
        u = self.uconn
        if u is None:
            return
        self.uconn = None
        u.exchange = None
        if not reuse:
            u.close()
        elif self.feeding:
            # llhttp may still hold bytes of this read after the response's end: pooled only once
            # they are parsed (they close the connection), never handed to the next request
            self.pool_pending = u
        else:
            self._pool(u)

    def _pool(self, u) -> None:
        if u.leftover or u.closed:
            u.close()
            return
        if self.throttle is not None and u.transport is not None:
            u.transport.resume_reading()        # proxy_limit_rate may have paused it
        up = self.upstream
        self.conn.runtime.pool.put(id(up), self._pool_key(self.peer), u,
                                   up.keepalive, up.keepalive_timeout)

    # ------------------------------------------------------------ tunnel

    def _upgraded(self, data: bytes, offset) -> None:
        """The upstream said 101: the bytes after its head belong to the tunnel."""
        self._flush()
        if offset is None:
            end = data.find(b"\r\n\r\n")
            offset = end + 4 if end >= 0 else len(data)
        rest = data[offset:]
        self._cancel_timer()
        if not self.upgrade:
            self.state = "done"
            self.attempt.end(time.monotonic())
            self.release(reuse=False)
            self.conn.writer = None
            self.ctx.keep_alive = False
            self.conn.finish_request(self.ctx)
            return
        self.state = "tunnel"
        u = self.uconn
        self.uconn = None
        self._count(-1)
        u.exchange = None
        self.conn.writer = None
        start_tunnel(self.ctx, self.conn, u, rest)

    # ------------------------------------------------------------ failures

    def next_peer(self, err: UpstreamError) -> None:
        """A try failed: log, count it against the peer, and try the next one when
        proxy_next_upstream allows (upstream/retry.py), else answer with err's status."""
        if self.state == "done":
            return
        self._cancel_timer()
        peer = self.peer
        u = self.uconn
        if u is not None:
            u.exchange = None
            u.close()
            self._count(-1, peer)
            self.uconn = None
        a = self.attempt
        if not a.status:
            a.status = err.status
        self._logged(err)
        if report_failure(self.upstream, peer):
            self._disabled(err.phase)
        self.tried.add(peer)
        if self.may_try_next(err.kind.condition if err.retry_safe else None):
            self.state = "connecting"
            return self.connect()
        self.fail(err)

    def _logged(self, err: UpstreamError) -> UpstreamError:
        """Log err (once) with nginx's context: `..., upstream: "http://peer/uri", ...`."""
        if not err.logged:
            err.logged = True
            if err.detail:
                error_log.error(err.message + error_log.request_suffix(self.ctx,
                                                                       self._upstream_url()),
                                self.conn.number)
        return err

    def _disabled(self, phase: Phase) -> None:
        error_log.warn(f"upstream server temporarily disabled while {phase.value}"
                       + error_log.request_suffix(self.ctx, self._upstream_url()),
                       self.conn.number)

    def may_try_next(self, condition: str | None) -> bool:
        """upstream/retry.py's rule for this exchange's request and tries."""
        plan = self.plan
        return retry.may_retry(
            condition, plan.next_upstream, tries=self.tries,
            servers=sum(not s.down for s in self.upstream.servers),
            tries_limit=plan.next_upstream_tries, timeout=plan.next_upstream_timeout,
            elapsed=time.monotonic() - self.started if plan.next_upstream_timeout else 0.0,
            head_sent=self.ctx.head_sent, method=self.ctx.method, sent=bool(self.sent_bytes),
            replayable=self.body.replayable)

    def next_on_status(self, status: int, kind: str) -> None:
        """proxy_next_upstream http_XXX: the peer's response is discarded with its connection and
        the next peer tried; a failure for the peer's health except for 403 and 404."""
        self._cancel_timer()
        u = self.uconn
        self.uconn = None
        self.parser = None
        u.exchange = None
        u.close()
        peer = self.peer
        self._count(-1, peer)
        self.status = 0
        if status not in (403, 404) and report_failure(self.upstream, peer):
            self._disabled(Phase.HEADER)
        self.tried.add(peer)
        self.state = "connecting"
        self.connect()

    def _upstream_url(self) -> str:
        """The URI part of nginx's `upstream: "..."` log context (scheme and peer come from ctx)."""
        return self.uri

    def fail(self, err: UpstreamError) -> None:
        self._flush()
        self.state = "done"
        self._cancel_timer()
        u = self.uconn
        if u is not None:
            self.release(reuse=False)
        self._count(-1)
        self.conn.writer = None
        a = self.attempt
        if a is not None:
            a.end(time.monotonic())
        phases.fail(self.ctx, self._logged(err))

    def _stop(self) -> None:
        """Done with the upstream side: no timer, no pending connect, the connection closed."""
        self.state = "done"
        self._cancel_timer()
        if self.throttle is not None:
            self.throttle.cancel()
        t = self.connecting
        if t is not None:
            t.cancel()
        if self.uconn is not None:
            self.release(reuse=False)
        self._count(-1)

    def spool_failed(self, err) -> None:
        self.body.done = True
        error_log.crit(str(err) + error_log.request_suffix(self.ctx), self.conn.number)
        self.abort_with(500)

    def bind_failed(self, exc) -> None:
        """proxy_bind could not bind: nginx logs [crit] and answers 500 (no next upstream)."""
        error_log.crit(exc.strerror + " while connecting to upstream"
                       + error_log.request_suffix(self.ctx, self._upstream_url()), self.conn.number)
        self._stop()
        self.conn.writer = None
        phases.finalize(self.ctx, 500)

    def abort_with(self, status: int) -> None:
        self._stop()
        self.conn.writer = None
        self.ctx.keep_alive = False
        phases.finalize(self.ctx, status)

    def client_gone(self) -> None:
        """The client closed (or timed out): stop everything, never pool the upstream connection;
        log 499 when no head was sent, nginx's "so upstream connection is closed too" mid-body."""
        if self.state == "done":
            return
        streaming = self.state == "streaming"
        self._stop()
        if self.attempt is not None:
            self.attempt.end(time.monotonic())
        ctx = self.ctx
        conn = self.conn
        if conn.writer is not self:
            pass            # downstream.client_timeout: status and log line are decided there
        elif not ctx.head_sent:
            ctx.status = 499
            error_log.info("client prematurely closed connection" + error_log.request_suffix(ctx),
                           conn.number)
        elif streaming:
            lost = conn.lost
            err = f" ({lost.errno}: {lost.strerror})" if isinstance(lost, OSError) and lost.errno else ""
            error_log.info("epoll_wait() reported that client prematurely closed connection, so "
                           f"upstream connection is closed too{err} while reading upstream"
                           + error_log.request_suffix(ctx, self.uri), conn.number)
        log.log_request(ctx)

    # ------------------------------------------------------------ downstream backpressure

    def downstream_paused(self) -> None:
        """The client's write buffer is full: stop reading the upstream. Its read timeout stops
        too (the connection's send_timeout watches the client meanwhile), as nginx does."""
        u = self.uconn
        if u is not None and u.transport is not None:
            u.transport.pause_reading()
            if self.state == "streaming":
                self._cancel_timer()

    def downstream_resumed(self) -> None:
        if self.drain is not None and drain.step(self):
            return                  # gunzip's output still waits for the client
        u = self.uconn
        if u is not None and u.transport is not None and not u.closed:
            u.transport.resume_reading()
            if self.state == "streaming" and self.timer is None:
                self.arm(self.plan.read_timeout)


# ---------------------------------------------------------------- content handler

def _as_sent(status: int, reason: bytes | None) -> resp.StatusText:
    """An upstream status line without a reason phrase, passed on as it came (nginx copies the
    status line from the code to the end of the line): `200` or `200 `."""
    return resp.StatusText(b"" if reason is None else b" " + reason)


def proxy_handler(ctx) -> None:
    pp = ctx.conf.proxy_pass
    ctx.proxy_host = pp.host_header
    if pp.template is not None:
        return _variable_proxy(ctx, pp)
    ProxyExchange(ctx, pp.upstream).start()


def _variable_proxy(ctx, pp) -> None:
    """proxy_pass with variables: the rendered URL; its host is first looked up among upstreams."""
    target = resolve_variable(ctx, pp)
    if target is not None:
        start_exchange(ctx, ProxyExchange, *target)


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


def start_exchange(ctx, cls, upstream, uri) -> None:
    """Start a `cls` exchange to upstream; `uri`: a variable proxy_pass's (None: the request's)."""
    ex = cls(ctx, upstream)
    if uri is None:
        raw = ctx.request_uri
        ex.uri = raw if (raw[:1] == "/" and not ctx.internal) else \
            escape_uri(ctx.uri) + ("?" + ctx.args if ctx.args else "")
    else:
        ex.uri = uri
    ex.start()
