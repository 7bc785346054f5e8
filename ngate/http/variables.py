"""The HTTP core's variables (nginx's ngx_http_core_variables): the request line, its headers
and arguments, the response's status and sizes, times.

A getter is `f(ctx) -> str | None` (None: "not found", rendered as ""). The tables at the end are
read by the variables registry (routing/variables.py), assembled from the list of modules in
ngate/http/modules.py; nothing here registers itself.
"""
from __future__ import annotations

import os
import socket
import time

from ngate import NGINX_VERSION
from ngate.routing.variables import Getter


# ---------------------------------------------------------------- request headers & args

def _hdr(name: bytes) -> Getter:
    def get(ctx):
        v = ctx.hdr.get(name)
        return None if v is None else v.decode("latin-1")
    return get


def _http(suffix: str) -> Getter:
    key = suffix.lower().replace("_", "-").encode("latin-1")
    if key == b"cookie":
        def get_cookie(ctx):
            vals = [v for n, v in ctx.headers if n.lower() == b"cookie"]
            return "; ".join(v.decode("latin-1") for v in vals) if vals else None
        return get_cookie
    plain = _hdr(key)

    def get(ctx):
        v = plain(ctx)
        if v is None:       # nginx compares names with '-' as '_': a "x_foo" header too
            for k, val in ctx.hdr.items():
                if b"_" in k and k.replace(b"_", b"-") == key:
                    return val.decode("latin-1")
        return v
    get.header = key        # proxy_request.py's HEADER lines read ctx.hdr[key] themselves
    return get


def _arg(suffix: str) -> Getter:
    want = suffix.lower()

    def get(ctx):
        a = ctx.args
        if not a:
            return None
        for pair in a.split("&"):
            k, _, v = pair.partition("=")
            if k.lower() == want:
                return v
        return None
    return get


def _cookie(suffix: str) -> Getter:
    want = suffix

    def get(ctx):
        for n, v in ctx.headers:
            if n.lower() == b"cookie":
                for part in v.decode("latin-1").split(";"):
                    k, _, val = part.strip().partition("=")
                    if k == want:
                        return val
        return None
    return get


def _sent_http(suffix: str) -> Getter:
    key = suffix.lower().replace("_", "-").encode("latin-1")
    if key == b"connection":
        return _sent_connection

    def get(ctx):
        for n, v in ctx.resp_headers or ():
            if n.lower() == key:
                return v.decode("latin-1")
        return None
    return get


def _sent_connection(ctx):
    """ngx_http_variable_sent_connection: the Connection header nginx writes."""
    if ctx.status == 101:
        return "upgrade"
    return "keep-alive" if ctx.keep_alive else "close"


def _referer(ctx):
    v = ctx.hdr.get(b"referer")
    return None if v is None else v.decode("latin-1")


def _ua(ctx):
    v = ctx.hdr.get(b"user-agent")
    return None if v is None else v.decode("latin-1")


def _content_type(ctx):
    v = ctx.hdr.get(b"content-type")
    return None if v is None else v.decode("latin-1")


def _content_length(ctx):
    v = ctx.hdr.get(b"content-length")
    if v is None:
        # a chunked body read whole (request buffering) has a length, as in nginx
        n = ctx.content_length_in
        return None if n is None else str(n)
    return v.decode("latin-1")


# ---------------------------------------------------------------- the request

def _host(ctx):
    return ctx.host


def _hostname(ctx):
    return HOSTNAME


def _request_method(ctx):
    main = ctx.main         # a subrequest (GET) reports its main request's method, as nginx
    return ctx.method if main is None else main.method


def _request_uri(ctx):
    return ctx.request_uri


def _uri(ctx):
    return ctx.uri


def _args(ctx):
    return ctx.args or None     # "/x?" has no args in nginx: not found, as without "?"


def _is_args(ctx):
    return "?" if ctx.args else ""


def _request(ctx):
    # an HTTP/2 WebSocket's extended CONNECT runs as a GET (ngate/http2/websocket.py)
    method = getattr(ctx.conn, "line_method", None) or ctx.method
    return f"{method} {ctx.request_uri} HTTP/{ctx.http_version}"


def _server_protocol(ctx):
    return f"HTTP/{ctx.http_version}"


def _server_name(ctx):
    return ctx.server.names.first if ctx.server is not None else ""


def _request_length(ctx):
    return str(ctx.request_length)


def _request_id(ctx):
    """16 random bytes from the OS's CSPRNG in hex, made once per request when first read; a
    subrequest shares its main request's (nginx shares r->variables)."""
    ctx = ctx.main or ctx
    rid = ctx.request_id
    if rid is None:
        rid = ctx.request_id = os.urandom(16).hex()
    return rid


def _request_body(ctx):
    """The body read whole (proxy_request_buffering, FastCGI) while in memory, as nginx."""
    sp = ctx.body_spool
    body = None if sp is None else sp.memory()
    return None if body is None else body.decode("latin-1")


def _request_body_file(ctx):
    sp = ctx.body_spool
    return None if sp is None else sp.name


# ---------------------------------------------------------------- the response

def _status(ctx):
    return "%03d" % ctx.status if ctx.status else "000"


def _body_bytes_sent(ctx):
    return str(ctx.body_bytes_sent)


def _bytes_sent(ctx):
    return str(ctx.bytes_sent)


def _limit_rate(ctx):
    """The response's rate: set by `set $limit_rate` or X-Accel-Limit-Rate, else decided at the
    first write (0 before it, as nginx)."""
    return str(ctx.limit_rate or 0)


# ---------------------------------------------------------------- times, the process

def _ms(seconds: float) -> str:
    """nginx's "%T.%03M": whole milliseconds, truncated, never negative."""
    ms = max(int(seconds * 1000 + 1e-6), 0)     # 60.1 s is 60100 ms, not 60099
    return "%d.%03d" % (ms // 1000, ms % 1000)


def _request_time(ctx):
    return _ms(time.monotonic() - ctx.start)


def _msec(ctx):
    return _ms(time.time())


def _time_local(ctx):
    return time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime())


def _time_iso8601(ctx):
    t = time.localtime()
    z = time.strftime("%z", t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + z[:3] + ":" + z[3:]


def _pid(ctx):
    return str(os.getpid())


def _nginx_version(ctx):
    return NGINX_VERSION


HOSTNAME = socket.gethostname()

VARIABLES = {
    "http_referer": _referer, "http_user_agent": _ua,
    "content_type": _content_type, "content_length": _content_length,
    "host": _host, "hostname": _hostname, "request_method": _request_method,
    "request_uri": _request_uri, "uri": _uri, "document_uri": _uri,
    "args": _args, "query_string": _args, "is_args": _is_args,
    "request": _request, "server_protocol": _server_protocol, "server_name": _server_name,
    "request_length": _request_length, "request_id": _request_id,
    "request_body": _request_body, "request_body_file": _request_body_file,
    "status": _status, "body_bytes_sent": _body_bytes_sent, "bytes_sent": _bytes_sent,
    "limit_rate": _limit_rate,
    "request_time": _request_time, "msec": _msec, "time_local": _time_local,
    "time_iso8601": _time_iso8601, "pid": _pid, "nginx_version": _nginx_version,
}

PREFIXES = {"http_": _http, "arg_": _arg, "cookie_": _cookie, "sent_http_": _sent_http}
