"""SSI (ngx_http_ssi_filter_module): commands in a response body, run as it streams.

The header filter (SsiFilter) takes responses of ssi_types (text/html by default) whose body is
not known to be empty; for the main request it drops Content-Length and Accept-Ranges and, unless
ssi_last_modified on, Last-Modified and ETag (with it, ETag becomes weak). The body filter
(SsiBody) parses with filters/ssi_parser.py and writes into its request's postponed-output node
(filters/postpone.py): text, command output, and one child node per `include`, filled by a
subrequest (proxy/subrequest.py) while the rest of the body goes on. The commands themselves are
in filters/ssi_commands.py.

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

import time

from ngate.filters import HeadersOut, content_type_in, filter_types
from ngate.filters.ssi_commands import COMMANDS, SsiError
from ngate.filters.ssi_parser import ERROR, SsiParser

DEFAULT_TIMEFMT = "%A, %d-%b-%Y %H:%M:%S %Z"
DEFAULT_ERRMSG = b"[an error occurred while processing the directive]"
MAX_PARAMS = 16


class SsiFilter:
    """The header filter (one per location with `ssi on`)."""
    __slots__ = ("types", "silent_errors", "value_len", "last_modified")

    def __init__(self, types: frozenset, silent_errors: bool, value_len: int,
                 last_modified: bool) -> None:
        self.types = filter_types(types)
        self.silent_errors = silent_errors
        self.value_len = value_len
        self.last_modified = last_modified

    def header(self, ctx, out: HeadersOut):
        if out.content_length == 0:
            return None
        if not content_type_in(self.types, out.content_type):
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


# ---------------------------------------------------------------- a command the table lacks

def _reconstruct(ev) -> bytes:
    params = "".join(f' {k}="{v}"' for k, v in ev.params)
    return f"<!--#{ev.name}{params} -->".encode("latin-1", "replace")


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
