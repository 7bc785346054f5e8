"""The per-request context: every phase reads and writes this one object (a Context, made by
the RequestContext(...) function below: Context has no __init__, which CPython would call from
C at more cost than a function call and the object together).

Kept flat with __slots__ for speed: what the common paths (a `return`, a static file, a proxied
request, over HTTP/1.x and HTTP/2) read or write is a slot, stored by RequestContext(). State
that only some modules' requests have (`_RARE`: gzip, SSI, $request_id, limit_rate, the
resolver's result, error_page's, pipelining, internal redirects' count, try_files' alias, a
request body read whole, regex captures, `set` and map values) is not stored per request: its
default is a class attribute, and a request that sets it gets an instance __dict__ (made on
that first store). A store less per attribute on every request; a read of a default takes
CPython's generic attribute path (~30 ns instead of ~5), so an attribute read on the common
paths stays a slot.
Variables (each module's getters, routing/variables.py) read it lazily.
"""
from __future__ import annotations

import time

_OLD = ("1.0", "0.9")    # versions without keep-alive by default, chunked responses, Host
# the `hdr` key of Host: an HTTP/1.x head's parse makes its key this very object
# (server/request_head.py header_key), so a lookup with it (the parse's, RequestContext's
# `host_raw`) is an identity hit, without comparing the bytes
HOST = b"host"


class Context:
    __slots__ = (
        # connection (downstream): server/connection.py's HttpConnection
        "conn",
        # request line + headers, as received
        "method", "request_uri", "http_version", "http_minor", "keep_alive",
        "headers",          # sequence of (bytes, bytes): names as sent, values raw
        "hdr",              # mapping bytes(lower name) -> bytes(value): first occurrence
                            # (HTTP/1.x and HTTP/2: a tuple and a read-only mapping shared by
                            # the requests of the same head, server/request_head.py and
                            # http2/request.py: never written)
        "host_raw",         # bytes | None: Host's value in `hdr` (nginx's headers_in.host):
                            # http/phases.py begin's route key, without a lookup in `hdr`
        "host",             # str: $host (lower-cased, no port)
        "request_length",   # bytes of request head (+ body when read)
        # URI
        "uri",              # str: normalised, decoded path ($uri), changes with rewrites
        "args",             # str | None: query string without "?"
        # routing
        "server", "loc", "conf", "internal",
        # response
        "status", "body_bytes_sent", "bytes_sent", "content_length_in",
        "body_chunked",     # client request body is chunked
        # upstream
        "upstream_tries",   # upstream/attempts.py: [Attempt, ...] ($upstream_*), or None
        # timing
        "start",            # time.monotonic() at the request's start (start_wall: below)
        # logging
        "logged",
        # phases bookkeeping (http/phases.py)
        "req",              # server/connection.py Request (body events)
        "status_override",  # error_page "=code" / original status for an internal redirect
        "head_sent",        # the response head was written to the client
        "rare",             # True once a module stored one of _GUARDED (below): finish_request,
                            # log_request and send_response read those only then
        "main",             # the main request's context in a subrequest (proxy/subrequest.py)
        "cache",            # cache/lookup.py CacheState under proxy_cache, else None
        "trailers",         # filters/trailers.py Trailers when the response expects add_trailer
        "expect_tested",    # Expect: 100-continue answered or not due (http1/discard.py)
        # a front end's pending request (server/request_head.py Request(ctx): the context
        # itself, no object of its own; body events are routed through it): `complete`, the
        # whole message (body included) was received; the rest of its state is _BODY's
        "complete",
        "__dict__",         # the _RARE attributes a request sets (made by the first such store)
    )

    # _RARE: class defaults, an instance value once a module sets one (see the module's text)
    error_pages_done = False    # error_page ran (recursive_error_pages off: no second one)
    pipelined = False   # the head arrived while an earlier request was in progress ($pipe)
    request_id = None   # $request_id once asked for
    gzip = None         # filters/gzip.py Deflate of this response ($gzip_ratio)
    limit_rate = None   # None: from limit_rate at the first write; else $limit_rate's value
    ssi = None          # filters/ssi.py SsiBody of this response (or the main's Shared)
    resolved = None     # resolver/hook.py: (host, port, group) a resolution left, or None
    add_uri_to_alias = False    # try_files matched under a regex location's alias: alias + $uri
    redirects = 0       # rewrite/internal redirect cycles (nginx allows 10)
    body_spool = None   # proxy/body_spool.py BodySpool of a body read whole, or None
    captures = ()       # regex captures for $1..$9 (last successful regex with groups)
    vars = None         # dict: `set` values, map caches, named captures (made by the first)
    # _GUARDED: read on every request's end only behind `rare`, which the module storing one
    # sets too (a falsy slot test on the common path instead of six reads, and six slots less
    # stored and freed per request)
    location_out = None     # a `return 3xx text` Location kept across its error_page redirect
                            # (http/driver.py)
    limits = None           # limits/phase.py LimitState once limit_req/limit_conn ran
    www_authenticate = None     # str: the access phase's challenge, sent with its 401
                                # (access/basic.py, access/phase.py, proxy/exchange.py)
    realip = None           # (addr, port) of the connection before realip replaced them
    stat_writing = False    # counted as writing by stub_status (observability/stub_status.py)
    accel_headers = None    # headers an X-Accel-Redirect carries to the new response
                            # (proxy/response_head.py)
    # an upstream's (set by the proxy and FastCGI modules before any read: an instance
    # __dict__'s value reads as fast as a slot's; only a default's read is slow)
    resp_headers = None     # the response's header list as sent ($sent_http_*), or None
    proxy_host = ""         # $proxy_host
    upstream_headers = None     # the upstream response's header list ($upstream_http_*)
    # _BODY: the pending request's body state (server/request_head.py Request), defaults alike
    body = None         # list of buffered body chunks until a consumer attaches
    body_size = 0
    consumer = None     # object with body_data(bytes) and body_end()
    upgrade = False     # a protocol switch: what follows the head is held, not a body
    discard = False     # the response is done; drop remaining body bytes

    @property
    def ctx(self) -> "Context":
        """The request's context, as a pending request (`req.ctx`, `conn.current.ctx`): the
        context itself."""
        return self

    @property
    def start_wall(self) -> float:
        """The wall clock at the request's start (limit_rate's seconds), from `start`: one
        clock read per request instead of two."""
        return _time() - (_monotonic() - self.start)


def RequestContext(conn, method: str, request_uri: str, http_version: str, headers, hdr
                   ) -> Context:
    """A request's context: a function, not Context's __init__ (which CPython would call
    from C, costing more than this call and the object together). HTTP/1.x's heads make theirs
    in server/request_head.py's _head, a copy written out: a slot added here is added there
    (tests/unit/test_request_context.py compares the two)."""
    ctx = Context()
    ctx.conn = conn
    ctx.method = method
    ctx.request_uri = request_uri
    ctx.http_version = http_version
    ctx.http_minor = 1 if http_version == "1.1" or http_version not in _OLD else 0
    ctx.keep_alive = True
    ctx.headers = headers
    ctx.hdr = hdr
    ctx.host_raw = hdr.get(HOST)
    ctx.host = ""
    ctx.request_length = 0
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
    ctx.start = _monotonic()
    ctx.logged = False
    ctx.req = None
    ctx.status_override = None
    ctx.head_sent = False
    ctx.rare = False
    ctx.main = None
    ctx.cache = None
    ctx.trailers = None
    ctx.expect_tested = False
    ctx.complete = False
    return ctx


_RARE = ("error_pages_done", "pipelined", "request_id", "gzip", "limit_rate", "ssi", "resolved",
         "add_uri_to_alias", "redirects", "body_spool", "captures", "vars", "resp_headers",
         "proxy_host", "upstream_headers")
_GUARDED = ("location_out", "limits", "www_authenticate", "realip", "stat_writing",
            "accel_headers")
_BODY = ("body", "body_size", "consumer", "upgrade", "discard")
_time = time.time
_monotonic = time.monotonic
