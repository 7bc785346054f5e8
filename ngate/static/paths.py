"""URI -> file path, as ngx_http_map_uri_to_path does (root, alias, alias in regex locations).

Safety: ctx.uri is normalised before routing (no `.`/`..` segments, %-decoded); a URI changed by
`rewrite` or `try_files` is not, so a path with a `..` segment or a NUL byte is refused here.
Symlinks are followed unless `disable_symlinks` says otherwise (symlinks.py), as in nginx.
"""
from __future__ import annotations

import os


def document_root(ctx) -> str:
    conf = ctx.conf
    if conf.alias is not None:
        return conf.alias.render(ctx)
    root = conf.root
    if root is None:
        return ""
    return root.text if root.static else root.render(ctx)   # (render's static case, no frame)


def alias_strip(ctx) -> int | None:
    """How many leading URI characters the alias replaces: None for root, -1 when the alias is
    the whole path (a regex location's). A nested location inherits its parent's alias with the
    parent's prefix length, as nginx's clcf->alias."""
    conf = ctx.conf
    if conf.alias is None:
        return None
    return conf.alias_len if conf.alias_len is not None else -1


def map_uri(ctx, uri: str) -> str | None:
    """The file path for `uri`; None when the URI is not safe to map."""
    return map_under(ctx, document_root(ctx), uri)


def map_under(ctx, base: str, uri: str) -> str | None:
    """map_uri with the document root already rendered (`base`)."""
    if ctx.conf.alias is None:          # root (alias_strip's None, without its frame)
        path = base + uri
    else:
        strip = alias_strip(ctx)
        if strip == -1:
            path = base + uri if ctx.add_uri_to_alias else base
        else:
            path = base + uri[strip:] if len(uri) >= strip else base
    if not safe(path):
        return None
    return path


def safe(path: str) -> bool:
    return "\x00" not in path and "/../" not in path and not path.endswith("/..")


# ---------------------------------------------------------------- variables

def _document_root(ctx):
    return None if ctx.conf is None else document_root(ctx)


def _realpath_root(ctx):
    r = _document_root(ctx)
    return os.path.realpath(r) if r else None


def _request_filename(ctx):
    if ctx.conf is None:
        return None
    return map_uri(ctx, ctx.uri) or ""


VARIABLES = {"document_root": _document_root, "realpath_root": _realpath_root,
             "request_filename": _request_filename}
