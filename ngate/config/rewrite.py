"""The rewrite module's directives (ngx_http_rewrite_module): set, return, rewrite and
break, compiled into the level's ops (SetOp, ReturnOp, RewriteOp, BreakOp) that http/rewrite.py
runs; `if` is a block (blocks.py).
"""
from __future__ import annotations

from ngate.config.model import BreakOp, ReturnOp, RewriteOp, SetOp
from ngate.config.slots import as_number, wire
from ngate.errors import ConfigError
from ngate.routing.variables import registry


CHANGEABLE_VARIABLES = frozenset({"args", "query_string", "limit_rate", "uid_reset"})


URL_PREFIXES = ("http://", "https://", "$scheme")


def set_var(c, lv, st):
    var, value = st.args
    if not var.startswith("$") or len(var) < 2:
        raise ConfigError(f'invalid variable name "{var}"', st.where)
    name = var[1:]
    if name in registry() and name not in CHANGEABLE_VARIABLES:
        raise ConfigError(f'the duplicate "{name}" variable', st.where)
    lv.ops.append(SetOp(name, c.template(value, st.where), st.where))


def return_(c, lv, st):
    first = st.args[0]
    code = as_number(first)
    if len(st.args) == 1 and code is None:
        if not first.startswith(URL_PREFIXES):
            raise ConfigError(f'invalid return code "{first}"', st.where)
        lv.ops.append(ReturnOp(302, c.template(first, st.where), st.where))
        return
    if code is None or code > 999:
        raise ConfigError(f'invalid return code "{first}"', st.where)
    # the text as the file's bytes (latin-1 view, as variables from the request render)
    text = c.template(wire(st.args[1]), st.where) if len(st.args) == 2 else None
    lv.ops.append(ReturnOp(code, text, st.where))


def rewrite(c, lv, st):
    flag_ = st.args[2] if len(st.args) == 3 else ""
    if flag_ not in ("", "last", "break", "redirect", "permanent"):
        raise ConfigError(f'invalid parameter "{flag_}"', st.where)
    replacement = st.args[1]
    if not flag_ and replacement.startswith(URL_PREFIXES):
        flag_ = "redirect"
    text = replacement[:-1] if replacement.endswith("?") else replacement
    q = text.find("?")
    parts = (c.template(text[:q], st.where), c.template(text[q + 1:], st.where)) if q >= 0 \
        else None
    lv.ops.append(RewriteOp(c.regex(st.args[0], st.where),
                            c.template(replacement, st.where), flag_, st.where, parts))


def break_(c, lv, st):
    lv.ops.append(BreakOp(st.where))
