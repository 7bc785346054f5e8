"""HTTP/1.x to an upstream (proxy_pass): the wire protocol strategy of proxy/exchange.py.

Request: proxy/proxy_request.py builds the head; the body follows as the client sent it
(Content-Length), chunked (a chunked client body streamed with proxy_http_version 1.1), from
memory or from the spool's temp file, or proxy_set_body's.
Response: the connection's llhttp parser (httptools) calls upstream_conn.py, which hands the
head to headers_complete here (1xx, proxy_buffer_size) and the body and end to the exchange.
A repeated plain response head goes without llhttp: proxy/known_head.py (known_response), and
so does a repeated 101 but for its Sec-WebSocket-Accept value (known_upgrade).
HTTP/0.9, and every byte after an interim 1xx head (nginx 1.22), pass raw until the upstream
closes (PASSTHROUGH). A 101 hands both connections to the tunnel.
"""
from __future__ import annotations

import httptools

from ngate.http1 import response as resp
from ngate.observability import error_log
from ngate.proxy import known_head
from ngate.proxy import request_body as rb
from ngate.proxy.exchange_state import BEFORE_HEAD, DONE, PASSTHROUGH, STREAMING, SWITCHING
from ngate.proxy.proxy_request import build_request_head, upstream_uri
from ngate.proxy.response_head import as_sent
from ngate.proxy.upstream_chunked import ChunkedResponseBody
from ngate.server import flow
from ngate.upstream.failure import Failure, Phase, UpstreamError, invalid_header
from ngate.upstream.tls import upstream_tls

# consumed by the proxy: never copied to the client as-is (Last-Modified is not: nginx's
# ngx_http_upstream_copy_last_modified keeps it among the headers, in the upstream's order)
_LAST_READ = 2048        # a read Plan.last_read keeps (a whole response of a known head) at most
CONSUMED = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length",
                      b"content-type", b"location"})


def _response_parser(u) -> httptools.HttpResponseParser:
    """The llhttp response parser of upstream connection `u` (upstream_conn.py's callbacks); it
    lives as long as the connection, or until a chunked body's parser replaces it."""
    parser = httptools.HttpResponseParser(u)
    if hasattr(parser, "set_dangerous_leniencies"):
        # nginx's ngx_http_parse_status_line/header_line take a bare LF as a line end
        parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
    return parser


class _PassedRaw(Exception):
    """Raised from a parser callback to stop llhttp: the rest of the read was passed on raw."""



class Http1Wire:
    """Stateless (HTTP1 is the one instance): the response's parse state is the connection's
    (upstream_conn.py: the llhttp parser, head_bytes, head_buf, tail)."""
    __slots__ = ()
    upgrades = True             # a 101 may become a tunnel
    body_after_head = False     # an early response head ends sending the request's body
    frame_file = None           # spooled file blocks go as they are
    fast_heads = True           # known response heads skip llhttp (known_response)


    # ------------------------------------------------------------ configuration

    @staticmethod
    def upstream_url(ex) -> str:
        """The URI part of nginx's `upstream: "..."` log context (scheme and peer from ctx)."""
        return ex.uri

    # ------------------------------------------------------------ request

    @staticmethod
    def prepare(ex) -> str:
        """The URI and TLS identity of the exchange; how the client's body goes upstream
        (proxy/request_body.py's modes)."""
        ctx = ex.ctx
        conf = ex.conf
        proxy = conf.proxy
        pp = proxy.pass_
        if pp.template is None:
            raw = ctx.request_uri       # upstream_uri's usual answer, written out (hot path)
            if pp.uri is None and not ctx.internal and raw[:1] == "/" \
                    and ((raw[raw.find("?") + 1:] if "?" in raw else None) == ctx.args):
                ex.uri = raw
            else:
                ex.uri = upstream_uri(ctx, pp)
        if pp.scheme == "https":
            ex.tls = upstream_tls(ctx, conf, pp.scheme, ctx.proxy_host)
        if proxy.set_body is not None or not proxy.pass_request_body:
            return rb.NONE
        if ctx.body_chunked:
            return rb.CHUNKED if (not proxy.request_buffering
                                  and conf.client_body_in_file_only == "off"
                                  and ex.plan.version == b"HTTP/1.1") else rb.BUFFER
        if ctx.content_length_in:
            return rb.BUFFER if (proxy.request_buffering
                                 or conf.client_body_in_file_only != "off") else rb.LENGTH
        return rb.NONE

    @staticmethod
    def body_read(ex) -> None:
        """A buffered body is read whole (its length is then known)."""

    def send_request(self, ex, uconn) -> int:
        """Start the request on `uconn` (a new try): write its head and the body at hand;
        returns the bytes held from the client that went out."""
        # (the connection's llhttp parser is made by data() when a response needs it: a known
        # head on a new connection never does)
        uconn.head_bytes = 0
        uconn.head_buf = b""
        uconn.tail = b""
        ctx = ex.ctx
        conf = ex.conf
        rbody = ex.body
        if rbody is rb.NO_BODY and conf.proxy.set_body is None and ctx.content_length_in is None:
            # no body: the head alone (the usual GET)
            data = build_request_head(ctx, ex.plan, ex.uri, None, False)
            ex.sent_bytes = len(data)
            # written with the event loop turn's other heads (upstream/pool.py HeadWrites):
            # nothing else goes on this connection before the response
            ex.conn.runtime.pool.head_writes.write(uconn.transport, data)
            return 0
        body_len = None
        chunked = False
        rbody = ex.body
        mode = rbody.mode
        if conf.proxy.set_body is not None:
            body = conf.proxy.set_body.render(ctx).encode("latin-1", "replace")
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
            elif ctx.content_length_in == 0 and conf.proxy.pass_request_body:
                body_len = 0
        parts = [build_request_head(ctx, ex.plan, ex.uri, body_len, chunked)]
        sp = rbody.spool
        held = rbody.pending_size
        if body is not None:
            parts.append(body)
        elif sp is not None and not sp.in_file:
            parts.extend(sp.chunks)
        elif mode is rb.LENGTH or mode is rb.CHUNKED:
            chunks = rbody.take()
            parts.extend([resp.chunk(c) for c in chunks] if chunked else chunks)
        if chunked and rbody.done:
            parts.append(resp.LAST_CHUNK)
        data = b"".join(parts)
        ex.sent_bytes = len(data)
        ex.uconn.transport.write(data)
        return held

    @staticmethod
    def write_body(ex, u, data: bytes) -> None:
        """A piece of the client's body, as it came; chunked when the request is, the pieces of
        one client read as one chunk (the exchange's cork)."""
        if ex.body.mode is rb.CHUNKED:
            ex.cork(data)
        else:
            u.transport.write(data)
        if u.write_paused:
            flow.pause(ex.conn)

    @staticmethod
    def end_body(ex, u) -> None:
        if ex.body.mode is rb.CHUNKED:
            ex.uncork(last=True)

    @staticmethod
    def end_of_body(ex) -> bytes:
        """After a spooled body's file (never chunked: its length is known)."""
        return b""

    @staticmethod
    def reusable(ex) -> bool:
        u = ex.uconn
        up = ex.upstream
        if u is None or not up.keepalive or u.closed or ex.until_close:
            return False
        if ex.plan.version != b"HTTP/1.1" or u.requests >= up.keepalive_requests \
                or ex.started - u.born > up.keepalive_time:
            return False
        return ex.body.done

    # ------------------------------------------------------------ response

    def data(self, ex, data: bytes) -> None:
        """Bytes of the response (the exchange did the accounting): parsed by llhttp, whose
        callbacks produce the exchange's response events; a whole response in one read whose
        head llhttp accepted before goes the known way (known_response)."""
        u = ex.uconn
        tail = u.tail
        if tail is not None:
            if tail == b"" and self.fast_heads:         # a response's first bytes
                plan = ex.plan
                last = plan.last_read
                if last is not None and last[0] == data:
                    end = last[1]       # the read Plan.heads knew last, again: its head's
                    known = last[2]     # end and entry
                else:
                    end = data.find(b"\r\n\r\n") + 4
                    known = None
                    if end > 4:
                        head = data[:end]
                        known = plan.heads.get(head)
                        if known is None:
                            if head[9:13] == b"101 " and self._upgrade_asked(ex):
                                key, accept = known_head.upgrade_key(head)
                                up = plan.heads.get(key) if key is not None else None
                                if up is not None and (len(data) <= ex.conf.proxy.buffer_size
                                                       or up[5] <= ex.conf.proxy.buffer_size):
                                    return self.known_upgrade(ex, u, data, end, up, accept)
                            ex.learn = head     # send_head may keep its parse (known_head.learn)
                        elif len(data) <= _LAST_READ:
                            plan.last_read = (data, end, known)
                if known is not None:
                    ctx = ex.ctx
                    # (a kept head's size fits proxy_buffer_size: known_head.learn)
                    if len(data) - end == known[3] and ctx.method != "HEAD":
                        if known[8] and ctx.status_override is None and ctx.http_minor == 1 \
                                and ctx.cache is None and ex.filter is None \
                                and not ex.chunked_out:       # known_response's first test
                            return known_head.plain_2xx(self, ex, u, ctx, data, end, known)
                        return self.known_response(ex, u, data, end, known)
            if tail == b"" and data.startswith(b"HTTP/"):
                u.tail = None           # _http09's "HTTP/" case, written out (the usual one)
            elif self._http09(ex, u, data):
                return
        if ex.state in BEFORE_HEAD:
            u.head_bytes += len(data)
            u.head_buf = u.head_buf + data if u.head_buf else data
        ex.out = []
        ex.feeding = True
        parser = u.parser
        if parser is None:
            parser = u.parser = _response_parser(u)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(ex, data, exc.args[0] if exc.args else None)
        except httptools.HttpParserError as exc:
            st = ex.state
            if ex.uconn is not u or u.parser is not parser or st is DONE or st is PASSTHROUGH:
                pass        # abandoned for the next peer (next_on_status), passed on raw (a
                #             1xx) or to the chunked body's parser, or bytes after the end of
                #             the response (leftover below)
            elif ex.status == 101 and st is SWITCHING:
                self._upgraded(ex, data, None)
            elif st in BEFORE_HEAD:
                ex._flush()
                ex.next_peer(invalid_header(f"upstream sent invalid header: {exc}"))
            else:
                ex._flush()
                ex.ctx.keep_alive = False
                ex.fail(ex._logged(UpstreamError(
                    Failure.INVALID_BODY, Phase.BODY, "upstream sent invalid chunked response")))
        self._read_end(ex, u)

    def _read_end(self, ex, u) -> None:
        """After a read was parsed: the connection pooled, proxy_buffer_size, the output."""
        ex.feeding = False
        ex.learn = None
        pending = ex.pool_pending
        if pending is not None:
            ex.pool_pending = None
            if pending.leftover or pending.closed or ex.throttle is not None:
                ex._pool(pending)
            else:                               # _pool, written out (hot path)
                up = ex.upstream
                ex.conn.runtime.pool.put(ex.pool_key, pending, up.keepalive,
                                         up.keepalive_timeout)
        if ex.state in BEFORE_HEAD and ex.uconn.head_bytes > ex.conf.proxy.buffer_size:
            ex.out = None       # the head is still incomplete past proxy_buffer_size
            return ex.next_peer(invalid_header("upstream sent too big header"))
        if ex.out is not None or ex.filter is not None:
            ex.read_done()
        if u.leftover and ex.state is DONE:
            self.log_leftover(ex)

    known_response = known_head.known_response
    known_upgrade = known_head.known_upgrade

    @staticmethod
    def _upgrade_asked(ex) -> bool:
        """A 101 to this request starts a tunnel (UpstreamExchange.response_head's test)."""
        ctx = ex.ctx
        return b"upgrade" in ctx.hdr and ctx.main is None and ex.state in BEFORE_HEAD
    _known_head = staticmethod(known_head.known_head)

    def headers_complete(self, ex) -> None:
        """llhttp has the response head (upstream_conn.py's on_headers_complete)."""
        u = ex.uconn
        status = u.parser.get_status_code()
        if status < 200 and status != 101:
            return self._interim(ex, u, status)
        limit = ex.conf.proxy.buffer_size
        if u.head_bytes > limit and 17 + len(ex.reason or b"") + sum(
                [len(n) + len(v) + 4 for n, v in ex.resp_headers]) > limit:
            return ex.next_peer(invalid_header("upstream sent too big header"))
        ex.response_head(status)

    def _interim(self, ex, u, status: int) -> None:
        """nginx 1.22 takes an upstream's 1xx (100 Continue, 103) for the response: its head goes
        to the client (no body framing, keep-alive as usual) and every byte after it (the real
        response included) is passed on raw until the upstream closes."""
        ex.got_head(status, ex.resp_headers)
        ex.uconn_reusable_flag(False)
        ex.body_open = False
        ex._to(STREAMING)
        self.send_head(ex, status)
        if ex.state is not DONE:    # (a HEAD request is done with the head)
            ex._to(PASSTHROUGH)     # llhttp would parse the rest as a response of its own
            rest = u.head_buf[known_head.head_end(u.head_buf):]
            if rest:
                ex.ctx.body_bytes_sent += len(rest)
                ex._emit(rest)
        u.head_buf = b""
        raise _PassedRaw            # stops llhttp in this read (data() catches it)

    @staticmethod
    def _http09(ex, u, data: bytes) -> bool:
        """A response that does not start with "HTTP/" is HTTP/0.9: logged and passed raw until
        the upstream closes, as nginx does (proxy_read_timeout still applies)."""
        probe = u.tail + data
        if len(probe) < 5:
            if b"HTTP/".startswith(probe):
                u.tail = probe
                return False
        elif probe.startswith(b"HTTP/"):
            u.tail = None
            return False
        u.tail = None
        ex.body_open = False
        ex._to(PASSTHROUGH)
        ctx = ex.ctx
        error_log.error("upstream sent no valid HTTP/1.0 header while reading response header "
                        "from upstream" + error_log.request_suffix(ctx, ex.uri),
                        ex.conn.number)
        ctx.status = 200
        ex.attempt.status = 200         # nginx: u->state->status = NGX_HTTP_OK
        ctx.head_sent = True
        ctx.keep_alive = False
        ctx.body_bytes_sent += len(probe)
        ex.conn.write(probe)
        return True

    def _upgraded(self, ex, data: bytes, offset) -> None:
        """The upstream said 101: the bytes after its head belong to the tunnel."""
        if offset is None:
            end = data.find(b"\r\n\r\n")
            offset = end + 4 if end >= 0 else len(data)
        ex.upgraded(data[offset:])

    def send_head(self, ex, status: int) -> None:
        ctx = ex.ctx
        known = ex.known
        if ctx.status_override is not None and status != 101:
            # an error_page target keeps the error's status (ngx_http_send_header: err_status)
            # with nginx's own status line for it (status_line.len = 0)
            status, ex.reason, ctx.status_override = ctx.status_override, None, None
            reason = None
            ex.learn = None         # (the head is not sent as it came)
        elif known is not None and known[7] is not None and ctx.http_minor == 1 \
                and ctx.cache is None:
            return self._known_head(ex, ctx, known)
        else:
            reason = ex.reason or as_sent(status, ex.reason)
        if known is not None:
            out, ctype, length, lastmod, location, te_chunked, close = known[6]
            out = list(out)
            http10 = known[4]
        else:
            split = ex.split_headers(ex.resp_headers, CONSUMED)
            out, ctype, length, lastmod, location, te_chunked, close = split
            http10 = ex.uconn.parser.get_http_version() == "1.0"
            if ex.learn is not None:
                known_head.learn(ex, split, http10)
        if ex.accel is not None and ex.accel_headers():
            return
        if close or http10:
            ex.uconn_reusable_flag(False)
        head_only = ex.write_head(status, reason, out, ctype, length, lastmod, location,
                                  te_chunked)
        if ex.state is DONE:
            return              # the range filter sent a 416 instead (filters/range.py)
        # an HTTP/1.0-style response without length or chunking ends when the upstream closes
        ex.until_close = (not head_only and status != 101 and ex.resp_length is None
                          and not te_chunked)
        if head_only and status != 101:
            # the parser cannot be told this was a HEAD: the response ends with its head
            if ctx.method == "HEAD" and status >= 200 and status not in (204, 304):
                ex.uconn_reusable_flag(False)
                ex.response_end_head()
        elif ex.state is STREAMING and ex.resp_length is None and not ex.until_close:
            self.read_chunked(ex)

    @staticmethod
    def read_chunked(ex) -> None:
        """A chunked body is parsed as nginx parses it (proxy/upstream_chunked.py), not by
        llhttp: the rest of this read goes to it, later reads through the connection's parser
        (llhttp again for the connection's next response)."""
        u = ex.uconn
        u.parser = body = ChunkedResponseBody(ex, u)
        rest = u.head_buf[known_head.head_end(u.head_buf):]
        u.head_buf = b""
        if rest:
            try:
                body.feed_data(rest)
            except httptools.HttpParserError:
                ex._flush()
                ex.ctx.keep_alive = False
                ex.fail(ex._logged(UpstreamError(
                    Failure.INVALID_BODY, Phase.BODY, "upstream sent invalid chunked response")))
        raise _PassedRaw            # stops llhttp in this read (data() catches it)

    @staticmethod
    def log_leftover(ex) -> None:
        """nginx's warning for bytes after the end of a response (ngx_http_proxy_copy_filter,
        ngx_http_proxy_chunked_filter); the bytes are dropped with the connection."""
        chunked = ex.resp_length is None and not ex.head_only and not ex.until_close
        what = ("upstream sent data after final chunk" if chunked else
                'upstream sent more data than specified in "Content-Length" header')
        error_log.warn(what + " while reading upstream"
                       + error_log.request_suffix(ex.ctx, ex.uri), ex.conn.number)


HTTP1 = Http1Wire()
