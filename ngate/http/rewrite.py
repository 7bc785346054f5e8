"""The rewrite module's ops (set, return, rewrite, if, break), run in order as nginx runs them.

`run(ctx, ops)` decides and answers nothing itself: it returns CONTINUE (go on to the next
phase), RESTART (the URI changed: search the location again), or what the request gets instead
(the ReturnOp of a `return`, a Redirect of `rewrite ... redirect|permanent`, or ZERO_LENGTH, a
Finalize(500)): decisions of http/decisions.py, which http/driver.py carries out.

As in ngx_http_rewrite_module: a `rewrite` without a flag changes the URI and goes on with the
next op; when the ops end, a changed URI means a new location search (at most 10 cycles).
`last` stops the ops and searches again; `break` (the flag or the directive) stops the ops and
keeps the current location, even when an earlier rewrite changed the URI. Arguments: a
replacement with `?` sets new args and appends the old ones after `&` unless the replacement
ends in `?`; a replacement ending in `?` without other args drops them.
"""
from __future__ import annotations


import errno
import os
import re
import stat

from ngate.config.model import IfOp, ReturnOp, RewriteOp, SetOp
from ngate.config.values import parse_size
from ngate.http.decisions import FINALIZE, Redirect
from ngate.observability import error_log
from ngate.static import symlinks

CONTINUE = object()
RESTART = object()
ZERO_LENGTH = FINALIZE[500]     # the rewritten URI is empty
BREAK = _BREAK = object()  # `break` (the op, or the flag): no more ops, keep the location
CHANGED = _CHANGED = object()   # the URI changed, go on with the next op
# `set` on these built-in variables changes the request itself
_SETTERS = {"args": "args", "query_string": "args"}


def run(ctx, ops) -> object:
    """Run a level's ops. With a recorder in `ctx.conn.trace` (ngate explain, never on the
    request path), `trace.rewrite_op(ctx, op)` says first whether an op runs (True), is
    skipped (False: a value known only at request time) or ends the walk (anything else, which
    run() returns); `trace.rewrite_done(ctx, op, outcome)` is told what it did."""
    result = _run(ctx, ops, False, ctx.conn.trace)
    if result is _BREAK:
        return CONTINUE
    if result is _CHANGED:
        return RESTART
    return result


def _run(ctx, ops, changed: bool, trace) -> object:
    for op in ops:
        if trace is not None:
            gate = trace.rewrite_op(ctx, op)
            if gate is not True:
                if gate is False:
                    continue
                return gate
        cls = op.__class__
        if cls is SetOp:
            _set(ctx, op)
            r = CONTINUE
        elif cls is ReturnOp:
            r = op
        elif cls is RewriteOp:
            r = _rewrite(ctx, op)
        elif cls is IfOp:
            true = evaluate(ctx, op.condition)
            if trace is not None:
                trace.rewrite_done(ctx, op, true)
            if not true:
                continue
            if op.conf is not None:
                prev = ctx.conf
                ctx.conf = op.conf
                if op.kept is not None and (prev.proxy.pass_ is not None
                                            or prev.fastcgi.pass_ is not None):
                    ctx.conf = op.kept      # an earlier if's handler, without its upstream
            r = _run(ctx, op.ops, changed, trace)
            if r is _CHANGED:
                changed = True
            elif r is not CONTINUE:
                return r
            continue
        else:                   # BreakOp
            r = _BREAK
        if trace is not None:
            trace.rewrite_done(ctx, op, r)
        if r is _CHANGED:
            changed = True
        elif r is not CONTINUE:
            return r
    return _CHANGED if changed else CONTINUE


def _set(ctx, op: SetOp) -> None:
    set_variable(ctx, op.var, op.value.render(ctx))


def set_variable(ctx, name: str, value: str) -> None:
    """`set $name value` (also auth_request_set): $args and friends change the request."""
    if name == "limit_rate":
        return set_limit_rate(ctx, value)
    attr = _SETTERS.get(name)
    if attr is not None:
        setattr(ctx, attr, value)
        return
    vs = ctx.vars
    if vs is None:
        ctx.vars = vs = {}
    vs[name] = value


def set_limit_rate(ctx, value: str) -> None:
    """`set $limit_rate` (ngx_http_variable_request_set_size): a size fixes this response's
    rate; anything else is logged and ignored."""
    try:
        rate = parse_size(value)
    except ValueError:
        error_log.error(f'invalid size "{value}"' + error_log.request_suffix(ctx),
                        ctx.conn.number)
        return
    ctx.limit_rate = rate
    ctx.conn.rate_check = True


def _rewrite(ctx, op: RewriteOp) -> object:
    uri = ctx.uri
    m = op.regex.search(uri)
    log = ctx.conf.rewrite.log
    if log:
        verb = "matches" if m is not None else "does not match"
        _notice(ctx, f'"{op.regex.pattern}" {verb} "{uri}"')
    if m is None:
        return CONTINUE
    store_captures(ctx, m)
    text = op.replacement.text
    target = _render(ctx, op)
    add_args = not text.endswith("?")
    if not add_args:
        target = target[:-1]
    old_args = ctx.args
    if op.flag in ("redirect", "permanent"):
        target = unescape_redirect(target)
        if add_args and old_args:
            target += ("&" if "?" in target else "?") + old_args
        if log:
            _notice(ctx, f'rewritten redirect: "{target}"')
        return Redirect(301 if op.flag == "permanent" else 302, target)
    path, q, new_args = target.partition("?")
    if q:
        ctx.args = new_args + ("&" + old_args if add_args and old_args else "")
    elif not add_args:
        ctx.args = None
    if log:
        _notice(ctx, f'rewritten data: "{path}", args: "{ctx.args or ""}"')
    if not path:
        error_log.error("the rewritten URI has a zero length" + error_log.request_suffix(ctx),
                        ctx.conn.number)
        return ZERO_LENGTH
    ctx.uri = path
    ctx.internal = True
    if op.flag == "last":
        return RESTART
    if op.flag == "break":
        return _BREAK
    return _CHANGED


_ARGS_UNSAFE = re.compile(r'[\x00-\x20"#%&+;<>?\\^`{|}\x7f-\xff]')


def _escape_args(text: str) -> str:
    """ngx_escape_uri(NGX_ESCAPE_ARGS): what a capture copied into arguments is escaped for."""
    return _ARGS_UNSAFE.sub(lambda m: "%%%02X" % ord(m.group(0)), text)


_HEX = "0123456789abcdef"


def unescape_redirect(text: str) -> str:
    """ngx_unescape_uri(NGX_UNESCAPE_REDIRECT), which nginx applies to a rewrite redirect: %XX
    becomes its character when printable above "%", stays escaped otherwise; the first "?"
    (literal or %3F) ends the work, the rest is kept as it is."""
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "?":
            return "".join(out) + text[i:]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= n:
            break
        first = text[i + 1].lower()
        if first not in _HEX:
            out.append(text[i + 1])          # nginx drops the "%" of an invalid escape
            i += 2
            continue
        if i + 2 >= n:
            break
        second = text[i + 2]
        if second.lower() not in _HEX:
            i += 3                           # ... and the whole of a half-valid one
            continue
        value = int(first + second, 16)
        if value == 0x3F and not second.isdigit():
            return "".join(out) + "?" + text[i + 3:]
        out.append(chr(value) if 0x25 < value < 0x7F else text[i:i + 3])
        i += 3
    return "".join(out)


def _render(ctx, op) -> str:
    """The replacement; when the request URI had escapes ("%" or "+", nginx's quoted_uri and
    plus_in_uri), captures in its arguments, or anywhere in a redirect, are escaped again."""
    raw_path = ctx.request_uri.partition("?")[0]
    if ("%" not in raw_path and "+" not in raw_path) or not ctx.captures:
        return op.replacement.render(ctx)
    redirect = op.flag in ("redirect", "permanent")
    if not redirect and op.parts is None:
        return op.replacement.render(ctx)
    saved = ctx.captures
    escaped = tuple(_escape_args(c) for c in saved)
    try:
        if redirect:
            ctx.captures = escaped
            return op.replacement.render(ctx)
        path = op.parts[0].render(ctx)
        ctx.captures = escaped
        tail = "?" if op.replacement.text.endswith("?") else ""
        return path + "?" + op.parts[1].render(ctx) + tail
    finally:
        ctx.captures = saved


def store_captures(ctx, m) -> None:
    """$0..$9 and named captures ((?<name>...) becomes $name) of a successful match."""
    ctx.captures = (m.group(0),) + tuple(g or "" for g in m.groups())
    names = m.re.groupindex
    if names:
        vs = ctx.vars
        if vs is None:
            ctx.vars = vs = {}
        for name in names:
            vs[name] = m.group(name) or ""


def _notice(ctx, message: str) -> None:
    error_log.notice(message + error_log.request_suffix(ctx), ctx.conn.number)


def evaluate(ctx, cond) -> bool:
    kind = cond.kind
    left = cond.left.render(ctx)
    if kind == "var":
        return left not in ("", "0")
    if kind == "=":
        return left == cond.right.render(ctx)
    if kind == "!=":
        return left != cond.right.render(ctx)
    if kind in ("~", "~*"):
        m = cond.right.search(left)
        if m is None:
            return False
        store_captures(ctx, m)
        return True
    if kind in ("!~", "!~*"):
        return cond.right.search(left) is None
    negate = kind.startswith("!")
    test = kind[1:] if negate else kind
    return _file_test(ctx, test, left) != negate


def _file_test(ctx, test: str, path: str) -> bool:
    """nginx's -f (regular file), -d (directory), -e (exists), -x (executable by owner), under
    disable_symlinks (a refused symlink is logged at crit and tests false, as in nginx)."""
    try:
        mode = (os.stat(path) if ctx.conf.disable_symlinks is None
                else symlinks.stat_path(ctx, path)).st_mode
    except symlinks.SymlinkError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
            error_log.log("crit", f'{exc.failed} "{path}" failed ({exc.errno}: {exc.strerror})'
                          + error_log.request_suffix(ctx), ctx.conn.number)
        return False
    except (OSError, ValueError):
        return False
    if test == "-f":
        return stat.S_ISREG(mode)
    if test == "-d":
        return stat.S_ISDIR(mode)
    if test == "-x":
        return bool(mode & stat.S_IXUSR)
    return True
