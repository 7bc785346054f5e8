"""The content phase of `ngate explain`: access rules, try_files, then what the content handler
will do (metrics, static files; proxy_pass and fastcgi_pass in explain/upstream.py), with the
warnings each one needs. Paths come from the router's own code (static.paths)."""
from __future__ import annotations

import os
import stat

from ngate.explain.report import status
from ngate.explain.request import depends
from ngate.explain.route import describe_location, where
from ngate.explain.upstream import fastcgi, proxy
from ngate.http.decisions import NamedLocation
from ngate.static import symlinks
from ngate.http.respond import content_type
from ngate.static.paths import alias_strip, map_uri, safe

STATIC_METHODS = frozenset({"GET", "HEAD", "POST"})
DONE = "done"       # the walk went as far as it goes


def content(ex) -> str:
    """The access and content phases of ex.ctx, described; DONE (an internal redirect went on
    through http/phases.py)."""
    ctx, r = ex.ctx, ex.report
    conf = ctx.conf
    plan = conf.access
    if plan is not None and plan.rules and not _access(ex, plan.rules):
        return DONE
    if plan is not None:
        _auth(ex, plan)
    length = ctx.hdr.get(b"content-length")
    limit = conf.client_max_body_size
    if limit and length is not None and length.isdigit() and int(length) > limit:
        r.answer(f"{status(413)} (Content-Length {int(length)} > client_max_body_size {limit})")
        return DONE
    tf = conf.try_files
    block = ctx.loc.where if ctx.loc is not None else ctx.server.where
    if tf is not None and tf.block == block:
        result = _try_files(ex, tf)
        if result is not None:
            return result
    return handler(ex, conf)


def handler(ex, conf) -> str:
    if conf.metrics:
        ex.report.add("handler", "metrics: ngate's Prometheus metrics page")
        ex.report.answer(f"{status(200)}, the metrics in Prometheus' text format")
        return DONE
    if conf.proxy.pass_ is not None:
        proxy(ex, conf)
        return DONE
    if conf.fastcgi.pass_ is not None:
        fastcgi(ex, conf)
        return DONE
    return static(ex, conf)


def error_page_note(conf, code: int) -> str | None:
    for c, page in conf.error_page if conf is not None else ():
        if c == code:
            return f"error_page {code} {page.uri.text} ({where(page)})"
    return None


def _access(ex, rules) -> bool:
    allow, net = rules[0]
    if net is None:
        if not allow:
            ex.report.add("access", "deny all: every client is refused")
            ex.report.answer(status(403))
            return False
        return True
    ex.report.add("access", f"allow/deny rules ({len(rules)}): {depends(['remote_addr'])}; "
                            "explained as allowed")
    return True


def _auth(ex, plan) -> None:
    """auth_basic / auth_request: the request's credentials decide; explained as authorised."""
    any_ = " (satisfy any: one allowing check is enough)" if plan.satisfy_any else ""
    auth = plan.auth_basic
    if auth is not None:
        ex.report.add("access", f'auth_basic "{auth.realm.text}", user file '
                                f"{auth.user_file.text}: 401 without valid credentials{any_}; "
                                "explained as authorised")
    if plan.auth_request is not None:
        ex.report.add("access", f"auth_request {plan.auth_request}: a subrequest decides (2xx lets "
                                f"the request in, 401/403 refuse it, else 500){any_}; explained "
                                "as allowed")


# ---------------------------------------------------------------- try_files

def _try_files(ex, tf):
    """None: a file matched (ctx.uri changed), go on to the handler; else DONE."""
    ctx, r = ex.ctx, ex.report
    shown = " ".join(t.text for t in tf.items)
    r.add("try_files", f"{shown} (the block at {tf.block}), before the content handler:")
    for tpl in tf.items[:-1]:
        value, missing = ex.render.render(tpl)
        if missing:
            r.more(f"{tpl.text}: {depends(missing)}; explained as not found")
            continue
        path = _try_path(ctx, value)
        want_dir = value.endswith("/")
        found = path is not None and _exists(ex, path, want_dir)
        r.more(f"{tpl.text} -> {path}: {'found' if found else 'not found'}"
               + (" (a directory)" if want_dir else ""))
        if found:
            ctx.uri = value
            return None
    last, missing = ex.render.render(tf.items[-1])
    if tf.code is not None:
        r.more(f"=> ={tf.code}")
        page = error_page_note(ctx.conf, tf.code)
        r.answer(f"{status(tf.code)}" + (f" through {page}" if page else ""))
        return DONE
    if missing:
        r.more(f"=> {tf.items[-1].text}: {depends(missing)}")
        r.answer(f"not derivable statically: the fallback {depends(missing)}")
        return DONE
    if last.startswith("@"):
        return named_location(ex, last, "the try_files fallback")
    return ex.internal_redirect(last, "the try_files fallback")


def _try_path(ctx, value: str) -> str | None:
    from ngate.static.paths import document_root
    strip = alias_strip(ctx)
    if strip is not None and strip >= 0 and value.startswith(ctx.uri[:strip]):
        value = value[strip:]
    path = document_root(ctx) + value
    return path if safe(path) else None


def _exists(ex, path: str, want_dir: bool) -> bool:
    try:
        return stat.S_ISDIR(_stat(ex, path).st_mode) == want_dir
    except (OSError, ValueError):
        return False


def _stat(ex, path: str):
    """os.stat as the static module will see it: under disable_symlinks, nginx's walk
    (a `from=` that depends on the request is explained as absent: the whole path is checked)."""
    ds = ex.ctx.conf.disable_symlinks
    if ds is None:
        return os.stat(path)
    part = None
    if ds.from_ is not None:
        part, missing = ex.render.render(ds.from_)
        part = None if missing else part
    return symlinks.stat_planned(path, *symlinks.plan_with(ds.mode, part, path))


def _symlink_note(conf) -> str:
    ds = conf.disable_symlinks
    if ds is None:
        return ""
    return f" (disable_symlinks {ds.mode}" + (f" from={ds.from_.text})" if ds.from_ else ")")


def named_location(ex, name: str, why: str) -> str:
    """A named location: http/phases.py runs it (its rewrite ops, then the content phase)."""
    loc = ex.ctx.server.named_locations.get(name)
    if loc is not None:
        ex.report.add("location", f"{describe_location(loc)} ({why})")
        ex.level, ex.loc = "location", loc
    return ex.walk(NamedLocation(name))


# ---------------------------------------------------------------- static files

def static(ex, conf) -> str:
    ctx, r = ex.ctx, ex.report
    base = conf.alias if conf.alias is not None else conf.root
    kind = "alias" if conf.alias is not None else "root"
    base_text, missing = ex.render.render(base)
    r.add("handler", f"static files: {kind} {base.text if base is not None else ''}"
          + (f" -> {base_text}" if base is not None and base.text != base_text else ""))
    if missing:
        r.answer(f"a file under {base_text}: the path {depends(missing)}")
        return DONE
    if ctx.method not in STATIC_METHODS:
        r.answer(f"{status(405)} (static files answer GET, HEAD and POST only)")
        return DONE
    if ctx.uri.endswith("/"):
        return _directory(ex, conf)
    path = map_uri(ctx, ctx.uri)
    if path is None:
        r.answer(status(404) + " (the path is not safe to map)")
        return DONE
    try:
        st = _stat(ex, path)
    except OSError as err:
        r.more(f"{ctx.uri} -> {path}: {err.strerror}{_symlink_note(conf)}")
        if err.errno in (2, 20, 36):
            r.answer(_error(conf, 404))
        elif err.errno in (13, 31, 40):        # EACCES, EMLINK, ELOOP: forbidden
            r.answer(_error(conf, 403) + (" (a symlink refused by disable_symlinks)"
                                          if err.errno != 13 else ""))
        else:
            r.answer(_error(conf, 500))
        return DONE
    r.more(f"{ctx.uri} -> {path}" + (f"{_symlink_note(conf)}: no symlink refused"
                                      if conf.disable_symlinks else ""))
    if stat.S_ISDIR(st.st_mode):
        r.answer(f"{status(301)}, Location: {ex.absolute(ctx.uri + '/')} (a directory)")
    elif ctx.method == "POST":
        r.answer(_error(conf, 405))
    else:
        ctype = content_type(conf, ctx.uri).decode("latin-1")
        r.answer(f"{status(200)}, {st.st_size} bytes of {ctype} (as the file is now)")
    return DONE


def _directory(ex, conf) -> str:
    ctx, r = ex.ctx, ex.report
    dir_path = map_uri(ctx, ctx.uri)
    if dir_path is None:
        r.answer(status(404))
        return DONE
    r.more(f"{ctx.uri} -> {dir_path} (a directory: the index files are tried)")
    names = conf.static.index
    for i, name in enumerate(names):
        if name.__class__ is not str:
            name = name.render(ctx)
            if name.startswith("/"):
                return ex.internal_redirect(name, "index with variables, absolute",
                                            keep_args=True)
        if name.startswith("/"):
            if i == len(names) - 1:
                return ex.internal_redirect(name, "index, the last is a URI",
                                            keep_args=True)
            path, target = map_uri(ctx, name), name
        else:
            path, target = dir_path + name, ctx.uri + name
        try:
            found = path is not None and bool(_stat(ex, path))
        except OSError as err:
            found = False
            if conf.disable_symlinks is not None and err.errno in (31, 40):
                r.more(f"index {name} -> {path}: {err.strerror}{_symlink_note(conf)}", 1)
                r.answer(_error(conf, 403) + " (a symlink refused by disable_symlinks)")
                return DONE
        r.more(f"index {name} -> {path}: {'found' if found else 'not found'}", 1)
        if found:
            return ex.internal_redirect(target, "index", keep_args=True)
    if not os.path.isdir(dir_path):
        r.answer(_error(conf, 404) + f" ({dir_path} does not exist)")
    elif conf.static.autoindex and ctx.method in ("GET", "HEAD"):
        r.answer(f"{status(200)}, a directory listing (autoindex on)")
    else:
        r.answer(_error(conf, 403) + " (directory index is forbidden: no index file, "
                                     "autoindex off)")
    return DONE


def _error(conf, code: int) -> str:
    page = error_page_note(conf, code)
    return status(code) + (f" through {page}" if page else "")
