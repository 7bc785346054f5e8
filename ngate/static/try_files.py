"""nginx's try_files phase (ngx_http_try_files_handler): before any content handler, each
item is mapped under root/alias and tested as a file (or, with a trailing slash, a directory);
the first that exists becomes the URI, else the last item takes over the request (an internal
redirect, a named location or `=code`).
"""
from __future__ import annotations

import stat

from ngate.http import phases
from ngate.observability import error_log
from ngate.static import symlinks
from ngate.static.open_errors import NOT_FOUND
from ngate.static.paths import alias_strip, document_root, safe


def try_files_phase(ctx, conf=None) -> bool:
    """nginx's try_files phase. False: a file matched (ctx.uri is now that file), go on to the
    content handler; True: the fallback took over the request."""
    tf = ctx.conf.try_files
    if tf is None or tf.block != _block(ctx):
        return False
    for tpl in tf.items[:-1]:
        value = tpl.render(ctx)
        test_dir = len(tpl.text) > 1 and tpl.text.endswith("/")
        if test_dir:                    # nginx drops the slash, tests for a directory
            value = value[:-1]
        path = _try_path(ctx, value)
        if path is not None and _exists(ctx, path, test_dir):
            _set_try_uri(ctx, value, test_dir)
            return False
    last = tf.items[-1].render(ctx)
    if tf.code is not None:
        phases.finalize(ctx, tf.code)
    elif last.startswith("@"):
        phases.named_location(ctx, last)
    else:
        phases.internal_redirect(ctx, last)
    return True


def _block(ctx):
    return ctx.loc.where if ctx.loc is not None else ctx.server.where


def _try_path(ctx, value: str) -> str | None:
    strip = alias_strip(ctx)
    base = document_root(ctx)
    if strip is not None and strip >= 0 and value.startswith(ctx.uri[:strip]):
        value = value[strip:]
    path = base + value
    return path if safe(path) else None


def _set_try_uri(ctx, value: str, test_dir: bool) -> None:
    """The URI after a try_files match, as ngx_http_try_files_handler sets r->uri."""
    strip = alias_strip(ctx)
    if strip is None:
        ctx.uri = value
    elif strip == -1:
        if not test_dir:
            ctx.uri = value
            ctx.add_uri_to_alias = True
    else:
        rest = value[strip:] if value.startswith(ctx.uri[:strip]) else value
        ctx.uri = ctx.uri[:strip] + rest


def _exists(ctx, path: str, want_dir: bool) -> bool:
    try:
        st = symlinks.stat_path(ctx, path)
    except symlinks.SymlinkError as exc:
        if exc.errno not in NOT_FOUND:      # ngx_http_try_files_handler logs it at crit
            error_log.log("crit", f'{exc.failed} "{path}" failed ({exc.errno}: {exc.strerror})'
                          + error_log.request_suffix(ctx), ctx.conn.number)
        return False
    except (OSError, ValueError):
        return False
    return stat.S_ISDIR(st.st_mode) == want_dir
