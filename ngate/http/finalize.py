"""How a request ends when it does not go to a content handler: `finalize(ctx, status)` is
nginx's ngx_http_special_response_handler (the location's error_page: an internal redirect, a
named location or a redirect; else the status page of http/respond.py); `return_response` is
the rewrite module's `return`; `fail`, `reject_request`, `no_upstream_handler` and
`internal_error` turn an upstream failure, a request refused before its location, a missing
upstream and a bug into one of those answers.
"""
from __future__ import annotations

import traceback

from ngate.http.log import log_request
from ngate.http.respond import (CLOSE_CODES, REDIRECT_CODES, content_type, send_redirect,
                                send_response, send_status)
from ngate.http1.discard import discard
from ngate.observability import error_log


def finalize(ctx, status: int) -> None:
    """Answer with `status` as nginx would: error_page if configured, else the status page.

    This is ngx_http_special_response_handler: the status replaces any earlier error_page status
    (r->err_status = error), so `return 405` or a redirect in an error_page target shows as such."""
    ctx.status_override = None
    ctx.expect_tested = True        # no 100 Continue before (or after) an error response
    if status in CLOSE_CODES:
        ctx.keep_alive = False
    if status >= 300 and not ctx.error_pages_done:
        page = error_page_for(ctx.conf, status)
        if page is not None:
            return run_error_page(ctx, status, page)
    send_status(ctx, status)


def error_page_for(conf, status: int):
    for code, page in conf.error_page:
        if code == status:
            return page
    return None


def run_error_page(ctx, status: int, page) -> None:
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
        return phases.named_location(ctx, uri)
    if uri.startswith(("http://", "https://")) or not uri.startswith("/"):
        code = page.override if page.override and page.override in REDIRECT_CODES else 302
        ctx.status_override = None
        return send_redirect(ctx, code, uri)
    if ctx.method != "HEAD":
        ctx.method = "GET"
    phases.internal_redirect(ctx, uri)


def return_response(ctx, code: int, text) -> None:
    """The rewrite module's `return`."""
    if code == 444:
        return send_status(ctx, 444)
    if (code < 400 or text is not None) and not discard(ctx):
        return          # ngx_http_send_response discards the body first: it was invalid
    value = text.render(ctx) if text is not None else None
    if code in REDIRECT_CODES:
        if value is None:
            return finalize(ctx, code)
        ctx.status = code
        if ctx.conf.error_page and not ctx.error_pages_done \
                and error_page_for(ctx.conf, code) is not None:
            ctx.location_out = value    # nginx keeps the Location header across the error_page
            return finalize(ctx, code)
        return send_redirect(ctx, code, value)
    if value is None:
        if code >= 400:
            return finalize(ctx, code)
        if ctx.status_override is None and code == 204:
            return send_response(ctx, code, b"", None)      # nginx drops a 204's Content-Type
        return send_response(ctx, code, b"", content_type(ctx.conf, ctx.uri))
    # a text is sent as it is (ngx_http_send_response): no error_page, the error_page status wins
    send_response(ctx, code, _return_bytes(value), content_type(ctx.conf, ctx.uri))


def _return_bytes(value: str) -> bytes:
    """return's text: the file's and the request's bytes (latin-1 view); a `set` value typed
    in UTF-8 in the file makes the whole text UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


# ---------------------------------------------------------------- failures

def fail(ctx, err) -> None:
    """The one place an upstream failure (its status, log_message, level) becomes a response
    (or a closed connection)."""
    if err.log_message:
        error_log.log(err.level, err.log_message + error_log.request_suffix(ctx), ctx.conn.number)
    if err.status == 499:
        ctx.status = 499
        log_request(ctx)
        return
    if ctx.head_sent:
        ctx.keep_alive = False
        ctx.conn.closing = True
        ctx.conn.transport.close()
        log_request(ctx)
        return
    finalize(ctx, err.status)


def reject_request(ctx, status: int, message: str) -> None:
    """A request refused before its location (bad Host, no Host in HTTP/1.1, a bad URI, TRACE):
    finalized as nginx does, so the server's error_page applies."""
    error_log.info(message + (", client: " + ctx.conn.remote_addr), ctx.conn.number)
    ctx.keep_alive = False
    if ctx.conf is None and ctx.server is not None:
        ctx.conf = ctx.server.conf
    if ctx.conf is None:
        ctx.server = ctx.conn.listen.default_server
        ctx.conf = ctx.server.conf
    finalize(ctx, status)       # nginx: ngx_http_finalize_request, so the server's error_page


def no_upstream_handler(ctx) -> None:
    """The content handler of IfOp.kept (an if without proxy_pass after one with it)."""
    error_log.alert("no upstream configuration" + error_log.request_suffix(ctx), ctx.conn.number)
    finalize(ctx, 500)


def internal_error(ctx, exc: Exception) -> None:
    trace = "".join(traceback.format_exception(exc)).replace("\n", " | ")
    error_log.alert("internal error: " + trace + error_log.request_suffix(ctx), ctx.conn.number)
    if not ctx.head_sent and not ctx.conn.closing:
        ctx.keep_alive = False
        ctx.status_override = None
        send_status(ctx, 500)
    else:
        ctx.conn.abort()


# error_page targets run the phases again (an internal redirect or a named location), and the
# phases finalize: imported last, so that either module may be imported first
from ngate.http import phases  # noqa: E402
