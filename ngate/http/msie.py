"""msie_padding and msie_refresh: what nginx's special responses (ngx_http_special_response.c,
nginx 1.22) change for MSIE and Chrome clients (the flags of http/user_agent.py).

msie_padding (default on): a built-in status page of a status >= 400 (not a 3xx page, not a
status without a page, not a `return` text) gets six HTML comment lines appended when the client
is MSIE or Chrome, its Content-Length counting them (HEAD too): ngx_http_send_special_response.
HTTP/0.9 (no headers, so no User-Agent) never gets them.

msie_refresh (default off): for an MSIE client, a redirect nginx makes itself becomes a 200
text/html page with `<meta http-equiv="Refresh" content="0; URL=...">` and no Location:
ngx_http_send_refresh. It applies to a 301 or 302 finalized as a special response (`return`,
`rewrite ... redirect|permanent`, the slash redirect of a directory or a proxied prefix) and to
an error_page to a URL whatever its code; not to a 303/307/308 of `return`, nor to a proxied
upstream's redirect. The URL is the Location as it was set (a relative one stays relative),
escaped with ngx_escape_uri's NGX_ESCAPE_REFRESH table.

The callers (http/respond.py, static/handler.py) test the location's flag first: nothing here
runs unless a status page or a redirect is being built.
"""
from __future__ import annotations

import re

from ngate.http1 import response as resp
from ngate.http.user_agent import CHROME, MSIE, browser, request_browser

PADDING = b"<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n" * 6
REFRESH_CODES = frozenset({301, 302})   # of a special response (ngx_http_special_response_handler)

_REFRESH_HEAD = b'<html><head><meta http-equiv="Refresh" content="0; URL='
_REFRESH_TAIL = b'"></head><body></body></html>\r\n'

# ngx_escape_uri's `refresh` table: a set bit escapes the byte as %XX
_REFRESH_BITS = (0xffffffff, 0x50000085, 0x50000000, 0xd8000001,
                 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff)
_REFRESH_ESCAPED = bytes(c for c in range(256) if _REFRESH_BITS[c >> 5] & (1 << (c & 0x1f)))
_REFRESH_RE = re.compile(b"[" + b"".join(b"\\x%02x" % c for c in _REFRESH_ESCAPED) + b"]")


def escape_refresh(location: bytes) -> bytes:
    """ngx_escape_uri(..., NGX_ESCAPE_REFRESH): controls, space, `"`, `'`, `<`, `>`, `\\`,
    `^`, `` ` ``, `{`, `|`, `~`, DEL and every byte >= 0x80 as %XX (upper-case hex)."""
    return _REFRESH_RE.sub(lambda m: b"%%%02X" % m.group()[0], location)


def padded(ctx, body: bytes) -> bytes:
    """A status page (>= 400) of a location with msie_padding on: padded for MSIE and Chrome."""
    ua = ctx.hdr.get(b"user-agent")
    # neither flag without its token: most agents stop at the two scans
    if ua and (b"MSIE " in ua or b"Chrome/" in ua) and browser(ua) & (MSIE | CHROME):
        return body + PADDING
    return body


def status_page(ctx, conf, status: int) -> bytes | None:
    """nginx's built-in page for `status` as this request gets it (padded where it must be)."""
    body = resp.status_page(status, conf.server_tokens)
    if body is not None and status >= 400 and conf.msie_padding:
        return padded(ctx, body)
    return body


def is_msie(ctx) -> bool:
    return bool(request_browser(ctx) & MSIE)


def send_refresh(ctx, location: str, extra=()) -> None:
    """ngx_http_send_refresh: 200, text/html, the Refresh page to `location`, no Location."""
    from ngate.http import respond      # (respond imports this module)
    body = _REFRESH_HEAD + escape_refresh(location.encode("latin-1", "replace")) + _REFRESH_TAIL
    ctx.status_override = None          # r->err_status = NGX_HTTP_OK
    ctx.location_out = None             # the Location header is dropped
    respond.send_response(ctx, 200, body, respond.TEXT_HTML, extra=extra)
