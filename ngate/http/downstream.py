"""What the front end tells the HTTP core about its client: a request refused (a head that does
not parse, a bad Host, TRACE), a body that does not parse, the client gone, a timeout.

The front ends (server/connection.py, http2/stream.py) call these; each settles the request
(a status page carried out by http/driver.py, the upstream exchange told, the log line)
without touching a socket itself.
"""
from __future__ import annotations

from ngate.http.context import RequestContext
from ngate.http.log import log_request
from ngate.http.decisions import PAGE
from ngate.http.driver import carry_out
from ngate.observability import error_log


def reject_head(conn, status: int, message: str, url: bytes, user_agent=None) -> None:
    """A head refused while parsing (414, 494, 400, 501): status page, then close. The
    User-Agent parsed before the error, if any, is the request's (msie_padding)."""
    if message:
        error_log.info(message + ", client: " + conn.remote_addr, conn.number)
    ctx = RequestContext(conn, "GET", url.decode("latin-1") if url else "", "1.1", [],
                         {} if user_agent is None else {b"user-agent": user_agent})
    server = conn.listen.default_server
    ctx.server = server
    ctx.conf = server.conf
    ctx.keep_alive = False
    current = conn.current
    conn.current = None
    conn.queue = None
    if current is not None and current.ctx.head_sent:
        conn.abort()        # a response is already on the wire: nothing sane can follow
        return
    carry_out(ctx, PAGE[status])


def body_error(ctx, message: str) -> None:
    """The client's body cannot be parsed: nginx finalizes the request with 400 (the upstream
    exchange, if any, is dropped); after a response head nothing can follow: the connection
    closes (and connection_lost stops the exchange)."""
    error_log.info("client sent invalid chunked body" + error_log.request_suffix(ctx),
                   ctx.conn.number)
    if ctx.head_sent:
        return
    ctx.keep_alive = False
    abort = getattr(ctx.conn.writer, "abort_with", None)    # an upstream exchange reading it
    if abort is not None:
        abort(400)
    else:
        carry_out(ctx, PAGE[400])


def client_closed(ctx) -> None:
    """The client went away while its request was in flight (nginx logs 499)."""
    w = ctx.conn.writer
    if w is not None:
        w.client_gone()
    elif not ctx.logged and not ctx.head_sent:
        ctx.status = 499
        log_request(ctx)


def client_timeout(ctx, message: str) -> None:
    """client_body_timeout (message "") or send_timeout passed; the connection closes after this.

    nginx finalizes a request still reading its body with 408 and sends nothing (no log line);
    a send timeout keeps the response's status and is logged at info. The upstream is dropped.
    """
    conn = ctx.conn
    ctx.keep_alive = False
    if not ctx.head_sent:
        ctx.status = 408
    w = conn.writer
    if message:
        error_log.info(message + error_log.request_suffix(ctx, getattr(w, "uri", None)),
                       conn.number)
    if w is not None:
        conn.writer = None
        w.client_gone()
    log_request(ctx)
