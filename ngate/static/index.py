"""A URI ending in "/": nginx's random_index, index and autoindex modules, in that order.
An index file that exists is an internal redirect; without one, autoindex lists the directory
(html, xml, json, jsonp) through the location's response filters; else 403.
"""
from __future__ import annotations

import errno
import os
import random
import stat

from ngate.filters import HeadersOut, header_filter, postpone, trailers
from ngate.http import phases, respond
from ngate.http1 import charset
from ngate.http1 import response as resp
from ngate.observability import error_log
from ngate.static import autoindex, symlinks
from ngate.static.expires import expires_headers
from ngate.static.open_errors import open_failed
from ngate.static.paths import document_root, map_under, map_uri
from ngate.static.sender import connection_line, write_whole


_access = os.access
_F_OK = os.F_OK
_EXISTS_BY_ACCESS = os.access in os.supports_effective_ids


def directory(ctx) -> None:
    dir_path = map_under(ctx, document_root(ctx), ctx.uri)     # map_uri's body, a frame less
    if dir_path is None:
        return phases.finalize(ctx, 404)
    if ctx.conf.static.random_index and ctx.method in ("GET", "HEAD", "POST"):
        if _random_index(ctx, dir_path):
            return None
    names = ctx.conf.static.index
    last = len(names) - 1
    first = None                # the first index file tried: nginx names it when the dir is missing
    for i, name in enumerate(names):
        if name.__class__ is not str:        # a name with variables: nginx redirects at once
            name = name.render(ctx)          # when it comes out absolute
            if name.startswith("/"):
                return phases.internal_redirect(ctx, name, keep_args=True)
        if name.startswith("/"):
            if i == last:
                return phases.internal_redirect(ctx, name, keep_args=True)
            path, target = map_uri(ctx, name), name
        else:
            path, target = dir_path + name, ctx.uri + name
        first = first or path
        found = _index_exists(ctx, path)
        if found is None:
            return None
        if found:
            return phases.internal_redirect(ctx, target, keep_args=True)
    if not os.path.isdir(dir_path):
        if ctx.conf.log_not_found:
            error_log.error(f'"{first or dir_path}" is not found (2: No such file or directory)'
                            + error_log.request_suffix(ctx), ctx.conn.number)
        return phases.finalize(ctx, 404)
    if ctx.conf.static.autoindex and ctx.method in ("GET", "HEAD"):
        return _autoindex(ctx, dir_path)
    error_log.error(f'directory index of "{dir_path}" is forbidden' + error_log.request_suffix(ctx),
                    ctx.conn.number)
    phases.finalize(ctx, 403)


def _random_index(ctx, dir_path: str) -> bool:
    """ngx_http_random_index_module (before the index module): an internal redirect to a random
    regular file of the directory (links followed, dot files skipped); False when it has none."""
    try:
        with os.scandir(dir_path) as it:
            names = [e.name for e in it if not e.name.startswith(".") and _is_file(e.path)]
    except OSError as exc:
        open_failed(ctx, dir_path.rstrip("/") or "/", exc)
        return True
    if not names:
        return False
    name = random.choice(names).encode("utf-8", "surrogateescape").decode("latin-1")
    phases.internal_redirect(ctx, ctx.uri + name, keep_args=True)
    return True


def _is_file(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _index_exists(ctx, path: str | None) -> bool | None:
    """Whether an index file exists; None when the request has been answered. Under
    disable_symlinks, as ngx_http_index_handler: a refused symlink is a silent 403,
    ENOTDIR/ENAMETOOLONG 404 and EACCES 403 (ngx_http_index_error), others 500 at crit."""
    if path is None:
        return False
    if ctx.conf.disable_symlinks is None:
        if _EXISTS_BY_ACCESS:
            # os.path.exists without its stat_result (~5k instructions a `GET /`): the path
            # resolves for the worker's effective ids (faccessat2 AT_EACCESS; nginx stats it,
            # with the same permission checks on the way); False for any error, as exists
            try:
                return _access(path, _F_OK, effective_ids=True)
            except ValueError:      # an embedded NUL (exists: False)
                return False
        return os.path.exists(path)
    try:
        symlinks.stat_path(ctx, path)
        return True
    except OSError as exc:
        code = exc.errno
        if code == errno.ENOENT:
            return False
        if code in (errno.ELOOP, errno.EMLINK):
            phases.finalize(ctx, 403)
            return None
        reason = f" ({code}: {os.strerror(code)})" + error_log.request_suffix(ctx)
        if code == errno.EACCES:
            error_log.error(f'"{path}" is forbidden' + reason, ctx.conn.number)
            phases.finalize(ctx, 403)
        elif code in (errno.ENOTDIR, errno.ENAMETOOLONG):
            if ctx.conf.log_not_found:
                error_log.error(f'"{path}" is not found' + reason, ctx.conn.number)
            phases.finalize(ctx, 404)
        else:
            error_log.log("crit", f'{getattr(exc, "failed", "open()")} "{path}" failed' + reason,
                          ctx.conn.number)
            phases.finalize(ctx, 500)
        return None


def _autoindex(ctx, dir_path: str) -> None:
    conf = ctx.conf
    fmt = conf.static.autoindex_format
    callback = None
    if fmt == "jsonp":
        callback = autoindex.jsonp_callback(ctx.args)
        if callback is None:
            error_log.info("client sent invalid callback name" + error_log.request_suffix(ctx),
                           ctx.conn.number)
            return phases.finalize(ctx, 400)
        if not callback:
            fmt = "json"
    try:
        if fmt == "html":
            utf8 = bool(conf.charset.charset) and (charset.split_type(charset.content_type(
                conf, 200, b"text/html", ctx) or b"")[1] or b"").lower() == b"utf-8"
            body = autoindex.listing(ctx.uri, dir_path, utf8)
        elif fmt == "xml":
            body = autoindex.listing_xml(dir_path)
        else:
            body = autoindex.listing_json(dir_path, callback)
    except OSError as exc:
        return open_failed(ctx, dir_path, exc)
    headers = expires_headers(conf, 200)
    if conf.headers.add_header or conf.userid is not None:
        headers.extend(respond.add_headers(ctx, conf, 200))
    _send_listing(ctx, body, autoindex.CONTENT_TYPES[fmt], headers)


def _send_listing(ctx, body: bytes, ctype: bytes, headers: list) -> None:
    """An autoindex listing (no length, no Last-Modified: ngx_http_autoindex_handler), through
    the location's response filters as nginx's output filter sends it: gzip, sub_filter,
    addition, charset recoding, SSI, add_trailer."""
    conf = ctx.conf
    head_only = ctx.method == "HEAD"
    if conf.filters is not None:
        out = HeadersOut(200, ctype, None, None, headers)
        f = header_filter(ctx, conf.filters, out)
        ctype = out.content_type
        if f is not None and not head_only:
            if f.__class__ is postpone.PostponeChain:      # SSI/addition subrequests
                got: list = []
                f.attach(got.append)
                f.data(body)
                f.finish()
                if f.deferred:
                    return respond.send_postponed(ctx, conf, 200, [f] + got, ctype, None,
                                                  None, headers)
                body = b"".join(got)
            else:
                body = f.data(body) + f.finish()
    chunked = not head_only and ctx.http_minor == 1 and conf.chunked_transfer_encoding
    if not head_only and not chunked:
        ctx.keep_alive = False
    respond.check_keepalive(ctx)
    ctx.status = 200
    head = resp.build_head(200, 1, server_tokens=conf.server_tokens,
                           content_type=charset.content_type(conf, 200, ctype, ctx),
                           chunked=chunked, connection=connection_line(ctx), headers=headers)
    if head_only:
        body = b""
    elif chunked:
        body = (resp.chunk(body) if body else b"") + trailers.last_chunk(ctx)
    write_whole(ctx, head, body, len(body))      # chunk framing counts, as in nginx
