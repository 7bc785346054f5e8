"""A log_format line, compiled once: the escapes nginx applies to values (default, json,
none), $time_local and $time_iso8601 formatted once a second, and the ops a format compiles to
(literals and getters), with what renders them, freezes them at a tunnel's upgrade (`LATE`
variables stay getters) and encodes a line, and `compile_writer`: a format as one function. observability/access_log.py's writers use them.
"""
from __future__ import annotations

import re
import time

from ngate.access.basic import remote_user
from ngate.http import conn_variables as conn_vars, variables as core_vars
from ngate.upstream import variables as upstream_vars


# ---------------------------------------------------------------- escaping

_DEFAULT_UNSAFE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')
_JSON_UNSAFE = re.compile(r'[\x00-\x1f"\\]')
_JSON_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
               '"': '\\"', "\\": "\\\\"}


def _default_one(m: re.Match) -> str:
    ch = m.group()
    data = ch.encode("latin-1") if ord(ch) < 256 else ch.encode("utf-8")
    return "".join("\\x%02X" % b for b in data)


def escape_default(v: str) -> str:
    """nginx's ngx_http_log_escape."""
    if v.isascii() and v.isprintable() and '"' not in v and "\\" not in v:
        return v
    return _DEFAULT_UNSAFE.sub(_default_one, v)


def _json_one(m: re.Match) -> str:
    ch = m.group()
    return _JSON_NAMED.get(ch) or "\\u%04X" % ord(ch)


def escape_json(v: str) -> str:
    """nginx's ngx_escape_json."""
    if v.isprintable() and '"' not in v and "\\" not in v:
        return v
    return _JSON_UNSAFE.sub(_json_one, v)


ESCAPES = {"default": (escape_default, "-"), "json": (escape_json, ""), "none": (None, "")}

# the escapes' own fast checks, inline in a compiled line: a value that passes is written as it
# is; one that does not goes through the escape (which is exact)
_NEEDS_ESCAPE = {
    escape_default: "not (v.isascii() and v.isprintable() and '\"' not in v and '\\\\' not in v)",
    escape_json: "not (v.isprintable() and '\"' not in v and '\\\\' not in v)"}


# ---------------------------------------------------------------- time, formatted once a second

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _Clock:
    """$time_local and $time_iso8601 of the current second."""
    __slots__ = ("sec", "local", "iso")

    def __init__(self) -> None:
        self.sec = -1
        self.local = self.iso = ""

    def tick(self) -> "_Clock":
        now = int(time.time())
        if now != self.sec:
            t = time.localtime(now)
            z = time.strftime("%z", t)
            self.local = "%02d/%s/%d:%02d:%02d:%02d %s" % (
                t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec, z)
            self.iso = "%d-%02d-%02dT%02d:%02d:%02d%s:%s" % (
                t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, z[:3], z[3:])
            self.sec = now
        return self


_CLOCK = _Clock()


def _time_local(ctx) -> str:
    return _CLOCK.tick().local


def _time_iso8601(ctx) -> str:
    return _CLOCK.tick().iso


# the getters of the modules' tables that a log line treats its own way
_VARS = {**core_vars.VARIABLES, **conn_vars.VARIABLES, **upstream_vars.VARIABLES}
_REMOTE_USER = remote_user


def _remote_user(ctx) -> str | None:
    """$remote_user, with no look at the credentials of a request that sends none."""
    hdr = ctx.hdr
    if not hdr or b"authorization" not in hdr:
        return None
    return _REMOTE_USER(ctx)


_CACHED_GETTERS = {_VARS["time_local"]: _time_local, _VARS["time_iso8601"]: _time_iso8601,
                   _REMOTE_USER: _remote_user}


# Variables whose values never have a byte that an escape changes (digits, addresses, times):
# a line writes them without the escape's checks.
_PLAIN = frozenset([_time_local, _time_iso8601] + [_VARS[name] for name in (
    "status", "body_bytes_sent", "bytes_sent", "request_length", "request_time", "msec",
    "remote_addr", "remote_port", "server_port", "connection", "connection_requests", "pid")])


# ---------------------------------------------------------------- requests that became tunnels

# The variables whose value still changes after a 101: nginx writes the line when the tunnel
# closes. Every other variable is rendered at the upgrade (AccessLogWriter.freeze); a `map`
# whose source is one of these is evaluated then too.
LATE = frozenset([_time_local, _time_iso8601] + [_VARS[name] for name in (
    "time_local", "time_iso8601", "msec", "request_time", "body_bytes_sent", "bytes_sent",
    "upstream_response_time", "upstream_bytes_sent")])


# ---------------------------------------------------------------- compiled lines

def is_true(value: str) -> bool:
    return bool(value) and value != "0"


def render_ops(ops: tuple, ctx, escape, missing: str) -> str:
    out = []
    for op in ops:
        if op.__class__ is str:
            out.append(op)
            continue
        v = op(ctx)
        if v is None:
            out.append(missing)
        elif v:
            out.append(escape(v) if escape is not None else v)
    return "".join(out)


def freeze_ops(ops: tuple, ctx, escape, missing: str) -> tuple:
    """ops with every getter but the late ones rendered and merged into the literals."""
    out: list = []
    for op in ops:
        if op.__class__ is not str:
            if op in LATE:
                out.append(op)
                continue
            op = render_ops((op,), ctx, escape, missing)
        if out and out[-1].__class__ is str:
            out[-1] += op
        elif op:
            out.append(op)
    return tuple(out)


def compile_line(ops: tuple, escape) -> tuple[str, tuple]:
    """(fmt, getters) of AccessLogWriter.line: the literals of `ops` with `%` doubled and a `%s`
    for each getter, then the newline; each getter with `escape`, or None where its values
    never need it (`_PLAIN`)."""
    fmt = []
    getters = []
    for op in ops:
        if op.__class__ is str:
            fmt.append(op.replace("%", "%%"))
        else:
            fmt.append("%s")
            getters.append((op, None if op in _PLAIN else escape))
    return "".join(fmt) + "\n", tuple(getters)


# Getters a line reads inline (compile_writer): the statement that sets `v` as the getter would.
_INLINE = {
    _VARS["remote_addr"]: "v = ctx.conn.remote_addr",
    _VARS["status"]: "v = '%03d' % ctx.status if ctx.status else '000'",
    _VARS["body_bytes_sent"]: "v = str(ctx.body_bytes_sent)",
    _VARS["bytes_sent"]: "v = str(ctx.bytes_sent)",
    _VARS["http_referer"]: "v = ctx.hdr.get(b'referer')\n    if v is not None: v = v.decode('latin-1')",
    _VARS["http_user_agent"]:
        "v = ctx.hdr.get(b'user-agent')\n    if v is not None: v = v.decode('latin-1')",
    _VARS["request"]: "v = '%s %s HTTP/%s' % (_getattr(ctx.conn, 'line_method', None)"
                      " or ctx.method, ctx.request_uri, ctx.http_version)",
    _remote_user: "v = ctx.hdr\n    v = _REMOTE_USER(ctx) if v and b'authorization' in v else None",
    _time_local: "v = _CLOCK.local if _CLOCK.sec == _int(_time()) else _CLOCK.tick().local",
}


def compile_writer(ops: tuple, escape, missing: str):
    """`line(ctx)`: the line of `ops` with its newline, as one function made once per
    access_log (no loop over the variables): the common variables read inline (`_INLINE`), the
    others called; each value not found is `missing`, a value escaped only when its escape
    would change it (`_NEEDS_ESCAPE`), never for `_PLAIN` variables; then one `%` formatting."""
    fmt, getters = compile_line(ops, escape)
    env = {"_fmt": fmt, "_missing": missing, "_esc": escape,
           "_CLOCK": _CLOCK, "_int": int, "_time": time.time, "_getattr": getattr,
           "_REMOTE_USER": _REMOTE_USER}
    body = []
    for i, (get, esc) in enumerate(getters):
        src = _INLINE.get(get)
        if src is None:
            env["_g%d" % i] = get
            src = "v = _g%d(ctx)" % i
        body.append("    " + src)
        body.append("    if v is None: v = _missing")
        if esc is not None:
            body.append("    elif v and %s: v = _esc(v)" % _NEEDS_ESCAPE[esc])
        body.append("    v%d = v" % i)
    values = "".join("v%d, " % i for i in range(len(getters)))
    src = "def line(ctx):\n%s\n    return _fmt %% (%s)\n" % ("\n".join(body) or "    pass", values)
    exec(compile(src, "<log_format>", "exec"), env)
    return env["line"]


def compile_ops(parts: tuple) -> tuple:
    """Literals merged and stored as latin-1 of their UTF-8 (so one encode makes the line);
    time getters swapped for their once-a-second versions."""
    ops: list = []
    for p in parts:
        if isinstance(p, str):
            if not p:
                continue
            lit = p.encode("utf-8").decode("latin-1")
            if ops and isinstance(ops[-1], str):
                ops[-1] += lit
            else:
                ops.append(lit)
        else:
            ops.append(_CACHED_GETTERS.get(p, p))
    return tuple(ops)


def encode_line(line: str) -> bytes:
    try:
        return line.encode("latin-1")
    except UnicodeEncodeError:
        return "".join(c if ord(c) < 256 else c.encode("utf-8").decode("latin-1")
                       for c in line).encode("latin-1")
