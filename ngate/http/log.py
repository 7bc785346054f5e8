"""The log phase: the access log line, exactly once per request, and what ends with it."""
from __future__ import annotations

from ngate import realip
from ngate.observability import error_log


def log_request(ctx) -> None:
    """The access log line, once; then what ends with it (limits, stub_status, realip).
    server/lifecycle.py finish_request has a copy of the usual case (nothing but the line)."""
    if ctx.logged:
        return
    ctx.logged = True
    conn = ctx.conn
    conn.runtime.access_log(ctx)
    if ctx.rare:        # (http/context.py _GUARDED: a module stored one of them)
        if ctx.limits is not None:
            ctx.limits.release()
        if ctx.stat_writing:
            conn.runtime.stats.request_done(ctx)
        if ctx.realip is not None:
            realip.restore(ctx)


def log_timeout(conn, message: str) -> None:
    error_log.info(message + ", client: " + conn.remote_addr, conn.number)
