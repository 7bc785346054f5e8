"""Request heads of the HTTP/1.x downstream connection (server/connection.py): a complete head is
parsed as nginx does (http1/request.py's request line and header rules), made into a Request and
dispatched.

Clients send the same heads again and again: the parse of a whole head is kept in a bounded table
shared by the connections with the same parse settings (head_table), short header lines in
line_table, header names as sent in name_table (one table per underscores_in_headers,
ignore_invalid_headers setting). An HTTP/0.9 request (no version) is answered through
Http09Transport, which drops the response head.

HeadParsing is a mixin of HttpConnection (no state of its own: the slots are HttpConnection's).
"""
from __future__ import annotations

from types import MappingProxyType

from ngate.http.context import _OLD, HOST, Context, RequestContext, _monotonic
from ngate.server.turn_writes import CLOCK as _CLOCK
from ngate.http1.request import (MAX_OFF_T, ChunkedDecoder, HeadError, parse_request_line,
                                 split_header, user_agent_before_bare_cr, user_agent_of)

_VALID_NAME = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
_VALID_NAME_US = _VALID_NAME + b"_"
_MAX_HEADERS = 1000         # nginx: more header lines get 400 "client sent too many header lines"
_DISCARD = -1               # _left: nothing more is read as HTTP (after HTTP/0.9 or a refusal)
_SINGLE_HEADERS = {b"host": "Host", b"content-length": "Content-Length",
                   b"transfer-encoding": "Transfer-Encoding"}
_NAME_CACHE_MAX = 4096
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}
_LINE_CACHE_LEN = 64        # short header lines recur (Accept, Host ...): their parse is kept
# header name as sent -> its lower-case key, or b"" when nginx ignores it; one table per
# (underscores_in_headers, ignore_invalid_headers) setting
_NAME_TABLES: dict[tuple, dict] = {}
_LINE_TABLES: dict[tuple, dict] = {}
_HEAD_TABLES: dict[tuple, dict] = {}
_HEAD_CACHE_LEN = 1024      # longer heads are parsed every time (cookies vary, memory)
_HEAD_CACHE_MAX = 1024      # heads kept per table (emptied when full)


def name_table(underscores: bool, ignore_invalid: bool) -> dict:
    """The header-name cache shared by every connection with these settings."""
    return _NAME_TABLES.setdefault((underscores, ignore_invalid), {})


def line_table(underscores: bool, ignore_invalid: bool) -> dict:
    """Short header lines as sent -> ((name, value), lower-case key or b""): the parse of a
    line depends on these settings alone, and the same lines recur from request to request
    (the (name, value) pair goes into the request's header list as it is)."""
    return _LINE_TABLES.setdefault((underscores, ignore_invalid), {})


def head_table(listen) -> dict:
    """Whole request heads as sent -> their parse (HttpConnection._head), shared by the
    connections whose parse settings are the same (the header rules and the size limits)."""
    return _HEAD_TABLES.setdefault((listen.underscores, listen.ignore_invalid, listen.limit_line,
                                    listen.limit_total), {})


def header_key(name: bytes, underscores: bool, ignore_invalid: bool) -> bytes:
    """The lower-case key for a request header name, or b"" if nginx would ignore the header
    (Host's is http/context.py HOST itself: lookups with it compare no bytes)."""
    if name.translate(None, _VALID_NAME_US if underscores else _VALID_NAME):
        if ignore_invalid or b"_" in name and not name.translate(None, _VALID_NAME_US):
            return b""
    key = name.lower()
    return HOST if key == HOST else key


class Http09Transport:
    """The transport of an HTTP/0.9 request: the response goes out without its head (nginx
    writes no status line or headers to HTTP/0.9 clients)."""

    def __init__(self, transport) -> None:
        self._transport = transport
        self._head = b""        # the head so far; None once it has been dropped

    def write(self, data) -> None:
        if self._head is not None:
            data = self._head + bytes(data)
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._head = data
                return
            self._head = None
            data = data[end + 4:]
        if data:
            self._transport.write(data)

    def writelines(self, chunks) -> None:
        for c in chunks:
            self.write(c)

    def __getattr__(self, name):
        return getattr(self._transport, name)


def Request(ctx: Context) -> Context:
    """A parsed request waiting for, or in, the HTTP core (body events are routed through it):
    its context itself, no object of its own (http/context.py: `complete`, a slot, False from
    RequestContext; the rest of its body state are class defaults, _BODY; `req.ctx` is the
    context). A front end sets `complete` and, for a protocol switch, `upgrade`."""
    return ctx


class HeadParsing:
    """A complete request head: its parse (cached), its Request, its dispatch."""
    __slots__ = ()

    def _head(self, head: bytes, parsed=None) -> None:
        """A complete request head: parse it as nginx does, make its Request, dispatch it.

        Clients send the same heads again and again (the same request line and headers, on
        one connection and on many): heads accepted are kept with their parse in a bounded
        table shared by the connections with the same parse settings (head_table), and an
        identical head reuses it (the parse depends on the bytes and those settings alone;
        `parsed`: the caller found it already). The parse's header tuple and read-only
        header mapping are shared by the requests of that head: nothing writes to them.
        (A caller with `parsed` found the head whole and alone in a read, no head begun: no
        stub_status, no buffer, so `_in_head` is False.)"""
        # (the timer armed, keepalive_timeout's or client_header_timeout's, is left as it is:
        # both do nothing while a request is current, and the response re-arms it)
        if parsed is None:
            if self._in_head:
                self._end_head()
            heads = self.listen.heads
            parsed = heads.get(head)
            if parsed is None:
                parsed = self._parse_head(head)
                if parsed is None:
                    return
                if len(head) <= _HEAD_CACHE_LEN:
                    if len(heads) >= _HEAD_CACHE_MAX:
                        heads.clear()
                    heads[head] = parsed
        # RequestContext(self, method, uri, version, headers, hdr), written out (a frame less
        # per request, each field stored once; tests/unit/test_request_context.py compares the
        # two slot by slot); the parse's fields go straight into their slots (no local between)
        ctx = Context()
        ctx.conn = self
        (ctx.method, ctx.request_uri, ctx.http_version, ctx.headers, ctx.hdr, ctx.host_raw,
         self._url, ctx.keep_alive, ctx.http_minor, ctx.request_length, body) = parsed
        ctx.host = ""
        ctx.uri = "/"
        ctx.args = None
        ctx.server = None
        ctx.loc = None
        ctx.conf = None
        ctx.internal = False
        ctx.status = 0
        ctx.body_bytes_sent = 0
        ctx.bytes_sent = 0
        ctx.content_length_in = None
        ctx.body_chunked = False
        ctx.upstream_tries = None
        start = _CLOCK.mono     # the loop turn's (server/turn_writes.py TurnClock)
        if start is None:
            start = _monotonic()
            turn = _CLOCK.turn
            if turn is not None and turn.scheduled:     # (its turn_end clears it)
                _CLOCK.mono = start
        ctx.start = start
        ctx.logged = False
        ctx.req = None
        ctx.status_override = None
        ctx.head_sent = False
        ctx.rare = False
        ctx.main = None
        ctx.cache = None
        ctx.trailers = None
        ctx.expect_tested = False
        # the pending request is the context itself (Request(ctx)): `complete`, the whole
        # message (body included) was received
        ctx.complete = True
        self.requests += 1
        if body is not None:        # (None: no Content-Length, Transfer-Encoding or Upgrade)
            length, chunked, upgrade = body
            if upgrade:
                # a protocol switch: what follows is held unparsed until the upstream answers
                self.held = bytearray()
                ctx.upgrade = True
            elif chunked:
                ctx.body_chunked = True
                self._chunked = ChunkedDecoder()
                ctx.complete = False
            elif length is not None:
                ctx.content_length_in = length
                if length:
                    self._left = length
                    ctx.complete = False
        self._body_req = ctx
        if self.current is None:
            self.current = ctx
            if self.runtime.stats is not None:
                self.runtime.stats.request_started(ctx)
            self.start_request(ctx, ctx)
        else:
            self._dispatch(ctx)

    def _parse_head(self, head: bytes):
        """The parse of a head: (method, request URI (str), version, headers (a tuple), hdr
        (a read-only mapping), Host's value or None, target (bytes), keep-alive, the context's
        http_minor, the head's length, the body's framing: None without Content-Length,
        Transfer-Encoding or Upgrade, else (Content-Length, chunked, upgrade)), or None when it
        was refused (or was an HTTP/0.9 request, dispatched here)."""
        lines = head.split(b"\r\n")
        crlf = len(lines) - 1
        if head.count(b"\r") != crlf:             # a bare CR (nginx: 400)
            self._url = b""
            err = HeadError(400, "client sent invalid request")
            err.user_agent = user_agent_before_bare_cr(head)
            return self._reject(err)
        if head.count(b"\n") != crlf:            # some lines end in LF alone
            lines = head.replace(b"\r\n", b"\n").split(b"\n")
        del lines[-2:]
        line = lines[0]
        try:
            method, target, version = parse_request_line(line)
        except HeadError as exc:
            self._url = line.strip()
            return self._reject(exc)
        self._url = target
        if version == "0.9":
            return self._http09(method, target)
        limit_line = self.listen.limit_line
        if len(target) > limit_line:
            return self._reject(HeadError(414, "client sent too long URI"))
        try:
            if b"\0" in head:
                err = HeadError(400, "client sent invalid header line")
                bad = next((i for i, x in enumerate(lines) if b"\0" in x), 1)
                err.user_agent = user_agent_of(lines[1:bad])   # the lines parsed before it
                raise err
            if len(head) > limit_line:
                self._header_sizes(lines)
            headers, hdr = self._headers_of(lines)
        except HeadError as exc:
            return self._reject(exc)
        te = hdr.get(b"transfer-encoding")
        cl = hdr.get(b"content-length")
        length = None
        try:
            if te is not None:
                if version == "1.0":
                    raise HeadError(400, 'client sent HTTP/1.0 request with "Transfer-Encoding" header')
                if te.lower() != b"chunked":
                    raise HeadError(501, 'client sent unknown "Transfer-Encoding": "%s"' % te.decode("latin-1"))
                if cl is not None:
                    raise HeadError(400, 'client sent "Content-Length" and "Transfer-Encoding" headers at the same time')
            elif cl is not None:
                if not cl.isdigit() or len(cl) > 18 and int(cl) > MAX_OFF_T:
                    raise HeadError(400, 'client sent invalid "Content-Length" header')
                length = int(cl)
        except HeadError as exc:
            # counted as a request, as before the parse was split out (nginx: $connection_requests)
            self.requests += 1
            exc.user_agent = hdr.get(b"user-agent")      # every header line was parsed
            return self._reject(exc)
        conn = hdr.get(b"connection")
        if conn is None:
            keep_alive = version != "1.0"
        else:       # nginx: "close" anywhere wins, else "keep-alive" anywhere (HTTP/1.0)
            conn = conn.lower()
            keep_alive = b"close" not in conn and (version != "1.0" or b"keep-alive" in conn)
        upgrade = b"upgrade" in hdr and conn is not None and b"upgrade" in conn
        body = (length, te is not None, upgrade) \
            if length is not None or te is not None or upgrade else None
        return (_METHODS.get(method) or method.decode("latin-1"), target.decode("latin-1"),
                version, tuple(headers), MappingProxyType(hdr), hdr.get(HOST), target,
                keep_alive, 1 if version == "1.1" or version not in _OLD else 0, len(head), body)

    def _header_sizes(self, lines: list) -> None:
        """large_client_header_buffers: no header line longer than one buffer, all of them
        within all the buffers (checked only for heads that could exceed them)."""
        limit_line = self.listen.limit_line
        limit_total = self.listen.limit_total
        total = 0
        for i, line in enumerate(lines[1:], 1):
            size = len(line) + 2
            total += size
            if size > limit_line or total > limit_total:
                err = HeadError(494, "client sent too long header line")
                err.user_agent = user_agent_of(lines[1:i])     # the lines parsed before it
                raise err

    def _headers_of(self, lines: list) -> tuple[list, dict]:
        """The header lines of a head, after its request line (nginx's names and values)."""
        it = iter(lines)
        next(it)
        headers = []
        hdr = {}
        listen = self.listen
        names = listen.names
        seen = listen.lines
        for line in it:
            known = seen.get(line)
            if known is not None:
                pair, lname = known
            else:
                name, sep, value = line.partition(b":")
                lname = names.get(name) if sep else None
                if lname is None:
                    try:
                        name, value = split_header(line)
                    except HeadError as err:
                        err.user_agent = hdr.get(b"user-agent")   # the lines parsed before it
                        raise
                    lname = header_key(name, listen.underscores, listen.ignore_invalid)
                    if len(names) < _NAME_CACHE_MAX:
                        names[name] = lname
                else:
                    value = value.strip(b" ")
                pair = (name, value)
                if len(line) <= _LINE_CACHE_LEN and len(seen) < _NAME_CACHE_MAX:
                    seen[line] = (pair, lname)
            if not lname:
                continue        # nginx ignores invalid header names (and "_" ones by default)
            headers.append(pair)
            if lname in hdr:
                if lname in _SINGLE_HEADERS:
                    err = HeadError(400, 'client sent duplicate header line: "%s"'
                                    % _SINGLE_HEADERS[lname])
                    err.user_agent = hdr.get(b"user-agent")     # the lines parsed before it
                    raise err
            else:
                hdr[lname] = pair[1]
        if len(headers) > _MAX_HEADERS:
            err = HeadError(494, "client sent too many header lines")
            err.user_agent = hdr.get(b"user-agent")
            raise err
        return headers, hdr

    def _http09(self, method: bytes, target: bytes) -> None:
        """An HTTP/0.9 request (a request line without a version): GET only, no headers; the
        response is its body alone (nginx writes no status line or headers), then close."""
        self._left = _DISCARD
        t = self.transport          # server/turn_writes.py DeferredTransport stays outermost
        t.transport = Http09Transport(t.transport)
        if method != b"GET":
            return self._reject(HeadError(400, "client sent invalid method in HTTP/0.9 request"))
        ctx = RequestContext(self, "GET", target.decode("latin-1"), "0.9", [], {})
        ctx.keep_alive = False
        ctx.request_length = len(target) + 6
        self.requests += 1
        ctx.complete = True         # (Request(ctx) is ctx)
        self._dispatch(ctx)
