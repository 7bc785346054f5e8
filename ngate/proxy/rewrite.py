"""The rewrite module's ops (set, return, rewrite, if, break), run in order as nginx does.

`run(ctx, ops)` returns CONTINUE (go on to the next phase), DONE (a response was produced), or
RESTART (`rewrite ... last` changed the URI: search the location again).
"""
from __future__ import annotations

import os

from ngate.config.model import BreakOp, IfOp, ReturnOp, RewriteOp, SetOp

CONTINUE = object()
DONE = object()
RESTART = object()
_BREAK = object()


def run(ctx, ops) -> object:
    result = _run(ctx, ops)
    return CONTINUE if result is _BREAK else result


def _run(ctx, ops) -> object:
    for op in ops:
        cls = op.__class__
        if cls is SetOp:
            vs = ctx.vars
            if vs is None:
                ctx.vars = vs = {}
            vs[op.var] = op.value.render(ctx)
        elif cls is ReturnOp:
            from ngate.proxy.engine import return_response
            return_response(ctx, op.code, op.text)
            return DONE
        elif cls is RewriteOp:
            r = _rewrite(ctx, op)
            if r is not CONTINUE:
                return r
        elif cls is IfOp:
            if evaluate(ctx, op.condition):
                if op.conf is not None:
                    ctx.conf = op.conf
                r = _run(ctx, op.ops)
                if r is not CONTINUE:
                    return r
        elif cls is BreakOp:
            return _BREAK
    return CONTINUE


def _rewrite(ctx, op: RewriteOp) -> object:
    m = op.regex.search(ctx.uri)
    if m is None:
        return CONTINUE
    ctx.captures = (m.group(0),) + tuple(g or "" for g in m.groups())
    target = op.replacement.render(ctx)
    from ngate.proxy import engine
    if target.startswith(("http://", "https://", "$scheme")) or op.flag in ("redirect", "permanent"):
        code = 301 if op.flag == "permanent" else 302
        if "?" not in target and ctx.args and not op.replacement.text.endswith("?"):
            target += "?" + ctx.args
        target = target.rstrip("?") if op.replacement.text.endswith("?") else target
        engine.send_redirect(ctx, code, target)
        return DONE
    if "?" in target:
        path, _, args = target.partition("?")
        if op.replacement.text.endswith("?"):
            ctx.args = None
        else:
            ctx.args = args + ("&" + ctx.args if ctx.args else "")
            if not ctx.args:
                ctx.args = None
        target = path
    ctx.uri = target
    ctx.internal = True
    if op.flag == "last":
        return RESTART
    if op.flag == "break":
        return _BREAK
    return CONTINUE


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
        ctx.captures = (m.group(0),) + tuple(g or "" for g in m.groups())
        return True
    if kind in ("!~", "!~*"):
        return cond.right.search(left) is None
    negate = kind.startswith("!")
    test = kind[1:] if negate else kind
    if test == "-f":
        r = os.path.isfile(left)
    elif test == "-d":
        r = os.path.isdir(left)
    elif test == "-e":
        r = os.path.exists(left)
    elif test == "-x":
        r = os.path.isfile(left) and os.access(left, os.X_OK)
    else:
        r = False
    return not r if negate else r
