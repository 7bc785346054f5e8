"""How a status ends a request, decided: `special_response(ctx, status)` is nginx's
ngx_http_special_response_handler (the location's error_page: an internal redirect, a named
location or a redirect; else the status page); `rejected` is a request refused before its
location. Both return decisions (http/decisions.py) that http/driver.py carries out; nothing
here writes.
"""
from __future__ import annotations

from ngate.http.decisions import FINALIZE, PAGE, InternalRedirect, NamedLocation, Redirect
from ngate.http.respond import CLOSE_CODES, REDIRECT_CODES, TERMINATE_CODES
from ngate.observability import error_log
from ngate.routing.uri import split_request_uri


def special_response(ctx, status: int):
    """Answer with `status` as nginx would: error_page if configured, else the status page.

    This is ngx_http_special_response_handler: the status replaces any earlier error_page status
    (r->err_status = error), so `return 405` or a redirect in an error_page target shows as such."""
    if status in TERMINATE_CODES:
        return PAGE[status]         # ngx_http_finalize_request terminates first: no error_page
    ctx.status_override = None
    ctx.expect_tested = True        # no 100 Continue before (or after) an error response
    if status in CLOSE_CODES:
        ctx.keep_alive = False
    if status >= 300 and not ctx.error_pages_done:
        page = error_page_for(ctx.conf, status)
        if page is not None:
            return error_page(ctx, status, page)
    return PAGE[status]


def error_page_for(conf, status: int):
    for code, page in conf.error_page:
        if code == status:
            return page
    return None


def error_page(ctx, status: int, page):
    """The error_page's target: a named location, a redirect (a URL, or "=code" to a 3xx), or
    an internal redirect (the method becomes GET, HEAD stays)."""
    ctx.error_pages_done = not ctx.conf.recursive_error_pages    # on: the target's errors too
    uri = page.uri.render(ctx)
    if page.override is None:
        ctx.status_override = status
    elif page.override == -1:
        ctx.status_override = None
    else:
        ctx.status_override = page.override
    if uri.startswith("@"):
        if ctx.method != "HEAD":
            ctx.method = "GET"
        return NamedLocation(uri)
    if uri.startswith(("http://", "https://")) or not uri.startswith("/"):
        code = page.override if page.override and page.override in REDIRECT_CODES else 302
        ctx.status_override = None
        return Redirect(code, uri)
    if ctx.method != "HEAD":
        ctx.method = "GET"
    path, args = split_request_uri(uri)
    return InternalRedirect(path, args)


def rejected(ctx, status: int, message: str):
    """A request refused before its location (bad Host, no Host in HTTP/1.1, a bad URI, TRACE):
    finalized as nginx does, so the server's error_page applies."""
    error_log.info(message + (", client: " + ctx.conn.remote_addr), ctx.conn.number)
    ctx.keep_alive = False
    if ctx.conf is None and ctx.server is not None:
        ctx.conf = ctx.server.conf
    if ctx.conf is None:
        ctx.server = ctx.conn.listen.default_server
        ctx.conf = ctx.server.conf
    return FINALIZE[status]     # nginx: ngx_http_finalize_request, so the server's error_page
