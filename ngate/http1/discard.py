"""Expect: 100-continue and the request body a response leaves unread, as nginx's
ngx_http_test_expect and ngx_http_discard_request_body treat them.

nginx tests the expectation once per request, when it first reads or discards the body:
ngx_http_read_client_request_body (proxy_pass, fastcgi_pass, mirror: even with no body at all)
and ngx_http_discard_request_body (`return` with a text or a code below 400, a static file
found, ...). An HTTP/1.1 request (not HTTP/2) whose Expect value is `100-continue` (any case)
then gets `HTTP/1.1 100 Continue` at once; other values are ignored (nginx 1.22 sends no 417).
An error response (the special response handler, client_max_body_size's 413 included) marks
it tested without answering it: phases.finalize sets ctx.expect_tested.

Discarding reads the part of the body that came with the head: a chunked body already invalid
there turns the response into nginx's 400 (server/connection.py's discard_buffered).
"""
from __future__ import annotations

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def test_expect(ctx) -> None:
    if ctx.expect_tested:
        return
    ctx.expect_tested = True
    if ctx.http_minor != 1 or ctx.http_version == "2.0" or ctx.main is not None:
        return
    value = ctx.hdr.get(b"expect")
    if value is not None and value.lower() == b"100-continue":
        ctx.conn.write(CONTINUE)


def discard(ctx) -> bool:
    """A response that leaves the body unread is about to be made: False when the body already
    received is invalid and the request was answered with 400 instead."""
    if ctx.main is not None or ctx.http_version == "2.0":
        return True
    test_expect(ctx)
    if ctx.body_chunked:
        take = getattr(ctx.conn, "discard_buffered", None)
        if take is not None:
            take()
            return not ctx.head_sent
    return True
