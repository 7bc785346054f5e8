"""The $upstream_* variables (nginx's ngx_http_upstream_module): the per-try figures of
upstream/attempts.py, formatted only when a log asks; the cache's status; the upstream
response's headers and cookies.

Read by the variables registry (routing/variables.py) from the list in ngate/http/modules.py.
"""
from __future__ import annotations

from ngate.routing.variables import Getter
from ngate.upstream import attempts


def _upstream_addr(ctx):
    t = ctx.upstream_tries
    return attempts.addrs(t) if t else None


def _upstream_status(ctx):
    t = ctx.upstream_tries
    return attempts.statuses(t) if t else None


def _upstream_cache_status(ctx):
    return ctx.cache.status if ctx.cache is not None else None


def _upstream_cache_last_modified(ctx):
    return ctx.cache.last_modified() if ctx.cache is not None else None


def _upstream_cache_etag(ctx):
    return ctx.cache.etag() if ctx.cache is not None else None


# the per-try figures of upstream/attempts.py, formatted only when a log asks

def _upstream_response_time(ctx):
    t = ctx.upstream_tries
    return attempts.seconds(t, "response_time") if t else None


def _upstream_connect_time(ctx):
    t = ctx.upstream_tries
    return attempts.seconds(t, "connect_time") if t else None


def _upstream_header_time(ctx):
    t = ctx.upstream_tries
    return attempts.seconds(t, "header_time") if t else None


def _upstream_bytes_received(ctx):
    t = ctx.upstream_tries
    return attempts.counts(t, "bytes_received") if t else None


def _upstream_bytes_sent(ctx):
    t = ctx.upstream_tries
    return attempts.counts(t, "bytes_sent") if t else None


def _upstream_response_length(ctx):
    """The response body's length as the upstream sent it (decoded from chunks)."""
    t = ctx.upstream_tries
    return attempts.counts(t, "response_length") if t else None


def _upstream_http(suffix: str) -> Getter:
    key = suffix.lower().replace("_", "-").encode("latin-1")

    def get(ctx):
        for n, v in ctx.upstream_headers or ():
            if n.lower() == key:
                return v.decode("latin-1")
        return None
    return get


def _upstream_cookie(suffix: str) -> Getter:
    """The named cookie of the upstream's Set-Cookie headers (ngx_http_parse_set_cookie_lines:
    the first header whose value starts with the name, any case, then optional spaces and "=";
    the value runs to the next ";", leading spaces skipped)."""
    name = suffix.encode("latin-1").lower()
    n = len(name)

    def get(ctx):
        for h, v in ctx.upstream_headers or ():
            if len(v) <= n or h.lower() != b"set-cookie" or v[:n].lower() != name:
                continue
            rest = v[n:].lstrip(b" ")
            if rest[:1] != b"=":
                continue
            return rest[1:].lstrip(b" ").split(b";", 1)[0].decode("latin-1")
        return None
    return get


VARIABLES = {
    "upstream_addr": _upstream_addr, "upstream_status": _upstream_status,
    "upstream_cache_status": _upstream_cache_status,
    "upstream_cache_last_modified": _upstream_cache_last_modified,
    "upstream_cache_etag": _upstream_cache_etag,
    "upstream_response_time": _upstream_response_time,
    "upstream_connect_time": _upstream_connect_time,
    "upstream_header_time": _upstream_header_time,
    "upstream_bytes_received": _upstream_bytes_received,
    "upstream_bytes_sent": _upstream_bytes_sent,
    "upstream_response_length": _upstream_response_length,
}

PREFIXES = {"upstream_http_": _upstream_http, "upstream_cookie_": _upstream_cookie}
