"""ngx_http_static_handler's answers to a failed open() or stat(): 404 (logged under
log_not_found), 403 (also for a symlink disable_symlinks refuses: ELOOP, EMLINK) or 500 logged at
crit. Shared by the static file, index and autoindex paths.
"""
from __future__ import annotations

import errno
import os

from ngate.http import phases
from ngate.observability import error_log


NOT_FOUND = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG})
FORBIDDEN = frozenset({errno.EACCES, errno.ELOOP, errno.EMLINK})


def open_failed(ctx, path: str, exc: OSError) -> None:
    """ngx_http_static_handler's answer to a failed open: 404, 403 (also for a refused symlink:
    ELOOP, EMLINK) or 500 logged at crit."""
    code = exc.errno
    failed = getattr(exc, "failed", "open()")
    text = f'{failed} "{path}" failed ({code}: {os.strerror(code)})' + error_log.request_suffix(ctx)
    if code in NOT_FOUND:
        if ctx.conf.log_not_found:
            error_log.error(text, ctx.conn.number)
        return phases.finalize(ctx, 404)
    if code in FORBIDDEN:
        error_log.error(text, ctx.conn.number)
        return phases.finalize(ctx, 403)
    error_log.log("crit", text, ctx.conn.number)
    return phases.finalize(ctx, 500)
