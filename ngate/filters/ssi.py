"""SSI (ngx_http_ssi_filter_module): commands in a response body, run as it streams.

The header filter (SsiFilter) takes responses of ssi_types (text/html by default) whose body is
not known to be empty; for the main request it drops Content-Length and Accept-Ranges and, unless
ssi_last_modified on, Last-Modified and ETag (with it, ETag becomes weak). The body filter
(SsiBody) parses with filters/ssi_parser.py and writes into its request's postponed-output node
(filters/postpone.py): text, command output, and one child node per `include`, filled by a
subrequest (proxy/subrequest.py) while the rest of the body goes on.

Commands as nginx 1.22: include (virtual=, file= (waited), wait=yes|no, set= (the body in memory,
waited), stub=), echo (var=, default=, encoding=none|url|entity), set (var=, value=),
if/elif/else/endif (expr: a string, `a = b`, `a != b`, `a = /regex/` with captures $1.. and
named captures as SSI variables), config (errmsg=, timefmt=), block/endblock. A failing command
prints errmsg ("[an error occurred while processing the directive]") unless ssi_silent_errors
on; the reason goes to the error log at [error].

SSI variables (set, include set=, named captures) belong to the main request and are shared by
its subrequests; they are looked up before nginx's variables. While a waited subrequest runs,
the body is held unparsed and processing resumes when it is done.
"""
from __future__ import annotations

import functools
import re
import time

from ngate.filters import HeadersOut
from ngate.filters.ssi_parser import ERROR, SsiParser
from ngate.routing.uri import parse_unsafe_uri

DEFAULT_TIMEFMT = "%A, %d-%b-%Y %H:%M:%S %Z"
DEFAULT_ERRMSG = b"[an error occurred while processing the directive]"
MAX_PARAMS = 16
MAX_SUBREQUESTS = 65535         # nginx's limit of a main request's subrequests in all
SUBREQUEST_BUFFER = 4096        # subrequest_output_buffer_size: nginx's default is a page


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


class SsiFilter:
    """The header filter (one per location with `ssi on`)."""
    __slots__ = ("types", "any_type", "silent_errors", "value_len", "last_modified")

    def __init__(self, types: frozenset, silent_errors: bool, value_len: int,
                 last_modified: bool) -> None:
        self.types = types
        self.any_type = b"*" in types
        self.silent_errors = silent_errors
        self.value_len = value_len
        self.last_modified = last_modified

    def header(self, ctx, out: HeadersOut):
        if out.content_length == 0:
            return None
        ct = out.content_type
        if not self.any_type and (not ct or ct.split(b";", 1)[0].strip().lower()
                                  not in self.types):
            return None
        if ctx.main is None:
            out.content_length = None
            out.remove(b"accept-ranges")
            if not self.last_modified:
                out.last_modified = None
                out.remove(b"last-modified")
                out.remove(b"etag")
            else:
                out.weak_etag()
        return SsiBody(ctx, self)


class Shared:
    """The main request's SSI state, shared with its subrequests (nginx keeps it in r->main's
    ctx): variables, blocks, the last regex's captures."""
    __slots__ = ("vars", "blocks", "captures", "timefmt", "count")

    def __init__(self) -> None:
        self.count = 0              # includes started for this main request
        self.vars: dict = {}
        self.blocks: dict = {}
        self.captures = None
        self.timefmt = DEFAULT_TIMEFMT


def shared(ctx) -> Shared:
    main = ctx.main or ctx
    s = main.ssi
    if s is None:
        s = main.ssi = Shared()
    elif s.__class__ is not Shared:
        s = s.shared
    return s


class SsiBody:
    """The body filter of one response (nginx's ngx_http_ssi_ctx_t)."""
    postpones = True
    __slots__ = ("ctx", "conf", "parser", "node", "events", "raw", "waiting", "finishing",
                 "released", "output", "output_chosen", "conditional", "block", "encoding",
                 "errmsg", "timefmt", "shared")

    def __init__(self, ctx, conf: SsiFilter) -> None:
        self.ctx = ctx
        self.conf = conf
        self.parser = SsiParser(conf.value_len)
        self.node = None
        self.events: list = []      # parsed, not yet run (a waited subrequest is running)
        self.raw: list = []         # received while waiting, not yet parsed
        self.waiting = None         # the SubrequestConn waited for
        self.finishing = False
        self.released = False
        self.output = True
        self.output_chosen = False
        self.conditional = 0
        self.block = None           # the block being recorded: a list of bytes
        self.encoding = "entity"
        self.errmsg = DEFAULT_ERRMSG
        self.timefmt = DEFAULT_TIMEFMT
        main = ctx.main
        if main is None:
            self.shared = ctx.ssi if ctx.ssi.__class__ is Shared else Shared()
        else:
            self.shared = shared(ctx)
        ctx.ssi = self

    def attach(self, node) -> None:
        self.node = node
        node.open += 1

    # ------------------------------------------------------------ body filter

    def data(self, data) -> bytes:
        if data:
            if self.waiting is not None:
                self.raw.append(bytes(data))
            else:
                self._run(self.parser.feed(bytes(data)))
        return b""

    def flush(self) -> bytes:
        return b""

    def finish(self) -> bytes:
        self.finishing = True
        if self.waiting is None:
            self._end()
        return b""

    def _end(self) -> None:
        if not self.released:
            self.released = True
            self.parser.finish()
            self.node.release()

    def _run(self, events: list) -> None:
        self._log_parse_errors()
        for k, ev in enumerate(events):
            if self.waiting is not None:
                self.events.extend(events[k:])
                return
            self._event(ev)
        self._log_parse_errors()

    def _resume(self) -> None:
        """The waited subrequest is done: go on with what arrived meanwhile."""
        self.waiting = None
        while self.waiting is None and (self.events or self.raw):
            if self.events:
                events, self.events = self.events, []
                self._run(events)
            else:
                self._run(self.parser.feed(self.raw.pop(0)))
        if self.waiting is None and self.finishing:
            self._end()
        elif self.node.root is not None:
            self.node.root.kick()

    def _log_parse_errors(self) -> None:
        errs = self.parser.errors
        if errs:
            for msg in errs:
                self._log(msg)
            errs.clear()

    def _log(self, msg: str) -> None:
        from ngate.observability import error_log
        ctx = self.ctx
        error_log.error(msg + error_log.request_suffix(ctx.main or ctx), ctx.conn.number)

    def _write(self, data: bytes) -> None:
        if data:
            self.node.write(data)

    def _event(self, ev) -> None:
        if ev.__class__ is bytes:
            if self.output:
                self._write(ev)
            elif self.block is not None:
                self.block.append(ev)
            return
        if ev is ERROR:
            return self._error()
        self._log_parse_errors()
        cmd = COMMANDS.get(ev.name)
        if cmd is None:
            if self.output:
                self._log(f'invalid SSI command: "{ev.name}"')
                self._error()
            return
        if not self.output and not cmd.block:
            if self.block is not None:
                self.block.append(_reconstruct(ev))
                return
            if cmd.conditional == 0:
                return
        try:
            if cmd.conditional and (self.conditional == 0 or self.conditional > cmd.conditional):
                raise SsiError(f'invalid context of SSI command: "{ev.name}"')
            if len(ev.params) > MAX_PARAMS:
                raise SsiError(f'too many SSI command parameters: "{ev.name}"')
            params = {}
            for key, value in ev.params:
                if key not in cmd.params:
                    raise SsiError(f'invalid parameter name: "{key}" in "{ev.name}" SSI command')
                if key in params:
                    raise SsiError(f'duplicate "{key}" parameter in "{ev.name}" SSI command')
                params[key] = value
            for key in cmd.mandatory:
                if key not in params:
                    raise SsiError(f'mandatory "{key}" parameter is absent in "{ev.name}" '
                                   'SSI command')
            cmd.handler(self, ev.name, params)
        except SsiError as e:
            if e.args and e.args[0]:
                self._log(e.args[0])
            self._error()

    def _error(self) -> None:
        if not self.conf.silent_errors:
            self._write(self.errmsg)

    # ------------------------------------------------------------ values

    def variable(self, name: str):
        """An SSI variable (or capture) else nginx's; None when not found."""
        name = name.lower()
        sh = self.shared
        if name.isdigit() and len(name) == 1 and sh.captures is not None:
            m = sh.captures
            n = int(name)
            if n <= m.re.groups:
                return m.group(n) or ""
        v = sh.vars.get(name)
        if v is not None:
            return v
        return nginx_variable(self.ctx, name)

    def evaluate(self, text: str, add_prefix: bool = False) -> str:
        """ngx_http_ssi_evaluate_string: $var and ${var}, backslash escapes; with add_prefix a
        relative result is made relative to the directory of $uri."""
        parts = []
        i = 0
        n = len(text)
        while i < n:
            ch = text[i]
            if ch == "$":
                i += 1
                if i == n:
                    raise SsiError(f'invalid variable name in "{text}"')
                bracket = text[i] == "{"
                if bracket:
                    i += 1
                    if i == n:
                        raise SsiError(f'invalid variable name in "{text}"')
                start = i
                while i < n and (text[i].isascii() and (text[i].isalnum() or text[i] == "_")):
                    i += 1
                name = text[start:i]
                if bracket:
                    if i < n and text[i] == "}":
                        i += 1
                    else:
                        raise SsiError(f'the closing bracket in "{text[start:i]}" variable '
                                       'is missing')
                if not name:
                    raise SsiError(f'invalid variable name in "{text}"')
                v = self.variable(name)
                parts.append(v if v is not None else "")
                continue
            out = []
            quoted = False
            while i < n:
                ch = text[i]
                if not quoted:
                    if ch == "\\":
                        quoted = True
                        i += 1
                        continue
                    if ch == "$":
                        break
                else:
                    quoted = False
                    if ch not in "\\'\"$":
                        out.append("\\")
                out.append(ch)
                i += 1
            parts.append("".join(out))
        result = "".join(parts)
        if add_prefix and result and result[0] != "/":
            uri = self.ctx.uri
            cut = uri.rfind("/")
            if cut >= 0:
                result = uri[:cut + 1] + result
        return result


# ---------------------------------------------------------------- nginx variables by name

def nginx_variable(ctx, name: str):
    vs = ctx.vars
    if vs is not None and name in vs:
        return vs[name]
    g = ctx.conn.runtime.config.user_vars.getter(name)     # this config's variables
    return None if g is None else g(ctx)


# ---------------------------------------------------------------- commands

def _reconstruct(ev) -> bytes:
    params = "".join(f' {k}="{v}"' for k, v in ev.params)
    return f"<!--#{ev.name}{params} -->".encode("latin-1", "replace")


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

        conn = subrequest.start(ctx, uri, done, args=args, in_memory=SUBREQUEST_BUFFER)
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
                _stub_output(sub_ctx, child, b"".join(stub_bufs))
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


def _stub_output(sub_ctx, node, text: bytes) -> None:
    """ngx_http_ssi_stub_output: the block goes out as the subrequest's own output, through
    its location's SSI filter when it has one."""
    conf = sub_ctx.conf
    for f in (conf.filters or ()) if conf is not None else ():
        if f.__class__ is SsiFilter:
            body = SsiBody(sub_ctx, f)
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


# ---------------------------------------------------------------- $date_local, $date_gmt

def date_variable(ctx, gmt: bool) -> str:
    s = ctx.ssi
    fmt = s.timefmt if s is not None and s.__class__ is SsiBody else DEFAULT_TIMEFMT
    now = time.time()
    if fmt == "%s":
        return str(int(now))
    tm = time.gmtime(now) if gmt else time.localtime(now)
    try:
        return time.strftime(fmt, tm)
    except ValueError:
        return ""
