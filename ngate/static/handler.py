"""The default content handler: nginx's index, autoindex and static modules, in that order, with
the not_modified, range and expires filters applied to what the static module sends.

  try_files_phase  (try_files.py; runs before any content handler, as nginx's try_files phase)
  static_handler   URI ending in "/": index.py (random_index, index files: an internal
                   redirect, else autoindex, else 403); otherwise the file: 404/403
                   (open_errors.py), 301 for a directory, 405 for POST, then response.py:
                   conditional requests (304/412), ranges (206/416) and the body
"""
from __future__ import annotations

import os
import stat

from ngate.http import phases, respond
from ngate.http.respond import TEXT_HTML, content_type
from ngate.http1 import charset
from ngate.http1 import response as resp
from ngate.observability import error_log
from ngate.routing.uri import escape_uri
from ngate.static import filemeta, gzip_static, symlinks
from ngate.static.expires import expires_headers
from ngate.static.index import directory
from ngate.static.open_errors import open_failed
from ngate.static.paths import document_root, map_under
from ngate.static.response import range_segments as _ranged  # noqa: F401  (cache/serve.py)
from ngate.static.response import send_file
from ngate.static.try_files import try_files_phase  # noqa: F401  (http/modules.py)

_METHODS = frozenset({"GET", "HEAD", "POST"})
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


# ---------------------------------------------------------------- the content handler

def static_handler(ctx) -> None:
    if ctx.method not in _METHODS:
        return phases.finalize(ctx, 405)
    uri = ctx.uri
    if uri.endswith("/"):
        return directory(ctx)
    root = document_root(ctx)
    path = map_under(ctx, root, uri)
    if path is None:
        return phases.finalize(ctx, 404)
    vary = False
    gs = ctx.conf.gzip_static
    if gs is not None and ctx.method != "POST":
        vary = gzip_static.serve(ctx, path, gs)
        if vary is True:
            return None
    try:
        fd = os.open(path, _OPEN_FLAGS) if ctx.conf.disable_symlinks is None else \
            symlinks.open_path(ctx, path, _OPEN_FLAGS)
    except OSError as exc:
        return open_failed(ctx, path, exc)
    try:
        st = os.fstat(fd)
        meta = filemeta.lookup(path, st, ctx.conf, uri, root)
        if meta is None:
            meta = _new_meta(ctx, st, path, root)
            if meta is None:
                os.close(fd)
                return None
        if ctx.method == "POST":
            os.close(fd)
            return phases.finalize(ctx, 405)
    except BaseException:
        os.close(fd)
        raise
    send_file(ctx, fd, meta, vary == "vary")


def _new_meta(ctx, st, path: str, root: str):
    """A new FileMeta for a regular file, or None when the response (301, 404) has been sent."""
    if stat.S_ISDIR(st.st_mode):
        _slash_redirect(ctx)
        return None
    if not stat.S_ISREG(st.st_mode):
        error_log.error(f'"{path}" is not a regular file' + error_log.request_suffix(ctx),
                        ctx.conn.number)
        phases.finalize(ctx, 404)
        return None
    conf = ctx.conf
    meta = filemeta.FileMeta(conf, ctx.uri, root, st,
                             charset.content_type(conf, 200, content_type(conf, ctx.uri), ctx))
    if conf.charset_recode is None or not conf.charset_recode.variable:
        filemeta.store(path, meta)
    return meta


def _slash_redirect(ctx) -> None:
    """A directory requested without its slash: 301 to the URI with "/" (and the args)."""
    target = escape_uri(ctx.uri) + "/" + ("?" + ctx.args if ctx.args else "")
    extra = expires_headers(ctx.conf, 301)
    body = resp.status_page(301, ctx.conf.server_tokens)
    ctx.status_override = None          # a redirect is nginx's special response: its own status
    ctx.location_out = None
    respond.send_response(ctx, 301, body, TEXT_HTML,
                         location=respond.absolute_location(ctx, target).encode("latin-1",
                                                                                "replace"),
                         extra=extra)


# ---------------------------------------------------------------- sending a file


