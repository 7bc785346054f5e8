"""The SSI commands (nginx 1.22's ngx_http_ssi_filter_module command table): include, echo,
config, set, if/elif/else/endif, block/endblock. Each is `handler(ssi, name, params)` on the
running body filter (filters/ssi.py SsiBody); a failure raises SsiError, which the body filter
turns into errmsg and an [error] log line. `include` starts subrequests (proxy/subrequest.py)
into the postponed-output tree.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ngate.routing.uri import parse_unsafe_uri

if TYPE_CHECKING:
    from ngate.filters.ssi import SsiBody


MAX_SUBREQUESTS = 65535         # nginx's limit of a main request's subrequests in all


class SsiError(Exception):
    """A command failed: errmsg in its place; the message goes to the error log (if any)."""


class Cmd:
    __slots__ = ("handler", "params", "mandatory", "conditional", "block")

    def __init__(self, handler, params, mandatory=(), conditional=0, block=False):
        self.handler = handler
        self.params = params
        self.mandatory = mandatory
        self.conditional = conditional
        self.block = block


COND_IF = 1
COND_ELSE = 2


def _echo(ssi: SsiBody, name: str, p: dict) -> None:
    value = ssi.variable(p["var"])
    if value is None:
        value = p.get("default")
        if value is None:
            value = "(none)"
        elif value == "":
            return
    elif value == "":
        return
    enc = p.get("encoding")
    if enc is not None:
        if enc in ("none", "url", "entity"):
            ssi.encoding = enc
        else:
            ssi._log(f'unknown encoding "{enc}" in the "echo" command')
    data = value.encode("latin-1", "replace") if value.__class__ is str else bytes(value)
    if ssi.encoding == "entity":
        data = (data.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")
                .replace(b'"', b"&quot;"))
    elif ssi.encoding == "url":
        data = _escape_html_uri(data)
    ssi._write(data)


_HTML_URI_SAFE = frozenset(
    i for i in range(0x21, 0x7f) if chr(i) not in " \"#%'<>?" and i != 0x7f) - {0x20}


def _escape_html_uri(data: bytes) -> bytes:
    """ngx_escape_uri(NGX_ESCAPE_HTML): space " # % ' < > ? and bytes outside 0x21..0x7e."""
    if all(b in _HTML_URI_SAFE for b in data):
        return data
    return b"".join(bytes((b,)) if b in _HTML_URI_SAFE else b"%%%02X" % b for b in data)


def _config(ssi: SsiBody, name: str, p: dict) -> None:
    if "timefmt" in p:
        ssi.timefmt = p["timefmt"]
    if "errmsg" in p:
        ssi.errmsg = p["errmsg"].encode("latin-1", "replace")


def _set(ssi: SsiBody, name: str, p: dict) -> None:
    value = ssi.evaluate(p["value"])
    ssi.shared.vars[p["var"].lower()] = value


def _if(ssi: SsiBody, name: str, p: dict) -> None:
    if name == "if" and ssi.conditional:
        raise SsiError('the "if" command inside the "if" command')
    if ssi.output_chosen:
        ssi.output = False
        return
    expr = p["expr"]
    n = len(expr)
    i = 0
    while i < n and (expr[i].isascii() and (expr[i].isalnum() or expr[i] in "${}_\"'")):
        i += 1
    left = ssi.evaluate(expr[:i].lower())
    while i < n and expr[i] == " ":
        i += 1
    if i == n:
        ssi.output = bool(left)
        ssi.output_chosen = ssi.output
        ssi.conditional = COND_IF
        return
    if expr[i] == "=":
        negative = False
        i += 1
    elif expr.startswith("!=", i):
        negative = True
        i += 2
    else:
        raise SsiError(f'invalid expression in "{expr}"')
    while i < n and expr[i] == " ":
        i += 1
    last = n
    regex = False
    if i < last - 1 and expr[i] == "/":
        if expr[last - 1] != "/":
            raise SsiError(f'invalid expression in "{expr}"')
        regex = True
        last -= 1
        i += 1
    elif i < last - 1 and expr[i] == "\\" and expr[i + 1] == "/":
        i += 1
    right = ssi.evaluate(expr[i:last])
    if not regex:
        match = left == right
    else:
        match = _regex_match(ssi, right, left)
    ssi.output = match != negative
    ssi.output_chosen = ssi.output
    ssi.conditional = COND_IF


@functools.lru_cache(maxsize=128)
def _compile(pattern: str):
    """nginx compiles the pattern per command (PCRE, not UTF); ngate keeps the last 128."""
    from ngate.config.regex import compile_regex
    from ngate.errors import ConfigError
    try:
        return compile_regex(pattern, None)
    except ConfigError as e:
        return e.message


def _regex_match(ssi: SsiBody, pattern: str, text: str) -> bool:
    rx = _compile(pattern)
    if rx.__class__ is str:
        raise SsiError(rx)
    m = rx.search(text)
    if m is None:
        return False
    sh = ssi.shared
    sh.captures = m
    for gname, value in m.groupdict().items():
        sh.vars[gname.lower()] = value or ""
    return True


def _else(ssi: SsiBody, name: str, p: dict) -> None:
    ssi.output = not ssi.output_chosen
    ssi.conditional = COND_ELSE


def _endif(ssi: SsiBody, name: str, p: dict) -> None:
    ssi.output = True
    ssi.output_chosen = False
    ssi.conditional = 0


def _block(ssi: SsiBody, name: str, p: dict) -> None:
    ssi.block = ssi.shared.blocks[p["name"]] = []
    ssi.output = False


def _endblock(ssi: SsiBody, name: str, p: dict) -> None:
    ssi.output = True
    ssi.block = None


def _include(ssi: SsiBody, name: str, p: dict) -> None:
    from ngate.filters.postpone import MAX_DEPTH
    from ngate.proxy import subrequest
    uri = p.get("virtual")
    file = p.get("file")
    wait = p.get("wait")
    set_ = p.get("set")
    stub = p.get("stub")
    if uri is not None and file is not None:
        raise SsiError(f'inclusion may be either virtual="{uri}" or file="{file}"')
    if uri is None and file is None:
        raise SsiError('no parameter in "include" SSI command')
    if set_ is not None and stub is not None:
        raise SsiError('"set" and "stub" cannot be used together in "include" SSI command')
    waited = False
    if wait is not None:
        if file is not None:
            raise SsiError(f'"wait" cannot be used with file="{file}"')
        if wait.lower() == "yes":
            waited = True
        elif wait.lower() != "no":
            raise SsiError(f'invalid value "{wait}" in the "wait" parameter')
    if uri is None:
        uri = file
        waited = True
    uri = ssi.evaluate(uri, add_prefix=True)
    parsed = parse_unsafe_uri(uri)
    if parsed is None:
        raise SsiError(f'unsafe URI "{uri}" was detected')
    uri, args = parsed
    ctx = ssi.ctx
    node = ssi.node
    conn = ctx.conn
    if conn.__class__ is subrequest.SubrequestConn:
        if conn.depth > MAX_DEPTH:
            raise SsiError(f'subrequests cycle while processing "{uri}"')
        if conn.mem_limit:
            raise SsiError(f'nested in-memory subrequest "{uri}"')
    sh = ssi.shared
    sh.count += 1
    if sh.count > MAX_SUBREQUESTS:
        raise SsiError(f'request reference counter overflow while processing "{uri}"')
    stub_bufs = None
    if stub is not None:
        stub_bufs = ssi.shared.blocks.get(stub)
        if stub_bufs is None:
            raise SsiError(f'"stub"="{stub}" for "include" not found')
    if set_ is not None:
        var = set_.lower()
        vars_ = ssi.shared.vars
        vars_.setdefault(var, "")

        def done(sub_ctx, status, headers, var=var):
            mem = sub_ctx.conn.memory
            if status < 300 and mem is not None:
                vars_[var] = bytes(mem).decode("latin-1")
            if ssi.waiting is sub_ctx.conn:
                ssi._resume()

        conn = subrequest.start(ctx, uri, done, args=args, in_memory=True)
        if not conn.finished:
            ssi.waiting = conn
        _track(ssi, conn)
        return
    child = node.child()
    if stub_bufs is not None:
        private = type(node)(node.root, child.depth)

        def done(sub_ctx, status, headers):
            c = sub_ctx.conn
            if not (c.output or private.items) or (status >= 300
                                                   and not sub_ctx.upstream_tries):
                child.items = []
                c.node = None
                _stub_output(ssi, sub_ctx, child, b"".join(stub_bufs))
            else:
                child.items.append(private)
            child.release()
            if ssi.waiting is c:
                ssi._resume()

        private.open = 1
        conn = subrequest.start(ctx, uri, done, args=args, node=private)
    else:
        def done(sub_ctx, status, headers):
            if ssi.waiting is sub_ctx.conn:
                ssi._resume()

        conn = subrequest.start(ctx, uri, done, args=args, node=child)
    if waited and not conn.finished:
        ssi.waiting = conn
    _track(ssi, conn)


def _stub_output(ssi: SsiBody, sub_ctx, node, text: bytes) -> None:
    """ngx_http_ssi_stub_output: the block goes out as the subrequest's own output, through
    its location's SSI filter when it has one (an SsiFilter, made into an SsiBody: the classes
    of the including `ssi` and its conf)."""
    conf = sub_ctx.conf
    for f in (conf.filters or ()) if conf is not None else ():
        if f.__class__ is ssi.conf.__class__:
            body = ssi.__class__(sub_ctx, f)
            body.attach(node)
            body.data(text)
            body.finish()
            return
    node.write(text)


def _track(ssi: SsiBody, conn) -> None:
    root = ssi.node.root
    if root is not None and not conn.finished:
        root.subs.append(conn)


COMMANDS = {
    "include": Cmd(_include, ("virtual", "file", "wait", "set", "stub")),
    "echo": Cmd(_echo, ("var", "default", "encoding"), ("var",)),
    "config": Cmd(_config, ("errmsg", "timefmt")),
    "set": Cmd(_set, ("var", "value"), ("var", "value")),
    "if": Cmd(_if, ("expr",), ("expr",)),
    "elif": Cmd(_if, ("expr",), ("expr",), COND_IF),
    "else": Cmd(_else, (), (), COND_IF),
    "endif": Cmd(_endif, (), (), COND_ELSE),
    "block": Cmd(_block, ("name",), ("name",)),
    "endblock": Cmd(_endblock, (), (), 0, True),
}
