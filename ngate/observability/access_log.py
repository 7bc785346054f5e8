"""access_log: log_format compiled once per AccessLog, lines buffered per file.

A line is the format's literal text plus each variable's value, escaped as nginx does:
- default: `"`, `\\`, bytes < 0x20 and >= 0x7f become `\\xHH`; a variable that is not found is `-`;
- json: `"` and `\\` get a backslash, controls become `\\n \\r \\t \\b \\f` or `\\u00HH`;
  a variable that is not found is empty;
- none: values as they are; not found is empty.

Files are shared by path (one O_APPEND descriptor for every writer of that path). As in nginx,
a line is written as soon as its request is logged: lines logged in one turn of the event loop
go out in one write() at the end of that turn (without a running loop, at once). With
`buffer=size` (or `flush=`, `gzip`) they wait until the buffer is full or `flush=` (default one
second here) has passed since the first. `flush_all()` at shutdown, `reopen_all()` on USR1.
"""
from __future__ import annotations

import asyncio
import os
import re
import time

from ngate.config.model import AccessLog, LogFormat
from ngate.access.basic import remote_user
from ngate.http import conn_variables as conn_vars, variables as core_vars
from ngate.routing.variables import compile_template
from ngate.upstream import variables as upstream_vars

COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent"')

_FLUSH_SIZE = 64 * 1024
_FLUSH_INTERVAL = 1.0

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


_ESCAPES = {"default": (escape_default, "-"), "json": (escape_json, ""), "none": (None, "")}

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


class TunnelEnd:
    """What the late variables read when a tunnel closes, under RequestContext's field names."""
    __slots__ = ("lines", "start", "body_bytes_sent", "bytes_sent", "upstream_tries")

    def __init__(self, lines: tuple, ctx) -> None:
        self.lines = lines                  # ((writer, ops, condition ops), ...)
        self.start = ctx.start
        self.body_bytes_sent = 0
        self.bytes_sent = ctx.bytes_sent
        self.upstream_tries = ctx.upstream_tries    # the tunnel is the last try's

    @classmethod
    def freeze(cls, writers: tuple, ctx) -> "TunnelEnd | None":
        lines = tuple(x for x in (w.freeze(ctx) for w in writers) if x is not None)
        return cls(lines, ctx) if lines else None

    def write(self, sent_down: int, sent_up: int) -> None:
        """Write the lines: `sent_down` bytes went to the client, `sent_up` upstream."""
        self.body_bytes_sent = sent_down
        self.bytes_sent += sent_down
        tries = self.upstream_tries
        if tries:       # nginx: the upstream's response time ends with the tunnel
            last = tries[-1]
            last.bytes_sent += sent_up
            last.end(time.monotonic())
        for writer, ops, cond_ops in self.lines:
            writer.write_frozen(ops, cond_ops, self)

# ---------------------------------------------------------------- shared files


class _LogFile:
    __slots__ = ("path", "fd", "buf", "timer", "size", "interval")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = _open(path)
        self.buf = bytearray()
        self.timer = None
        self.size = _FLUSH_SIZE
        self.interval = 0.0     # 0: written at the end of the loop's turn (nginx: unbuffered)

    def buffered(self, size: int, interval: float | None) -> None:
        """An access_log with buffer=/flush= writes to this file: lines may wait."""
        self.size = size
        self.interval = max(self.interval, interval or _FLUSH_INTERVAL)

    def write(self, line: bytes) -> None:
        self.buf += line
        if len(self.buf) >= self.size:
            self.flush()
        elif self.timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            if self.interval:
                self.timer = loop.call_later(self.interval, self.flush)
            else:
                self.timer = loop.call_soon(self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.buf:
            return
        data = memoryview(bytes(self.buf))
        self.buf.clear()
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:
            pass    # a full disk or a closed descriptor must never fail the request path

    def reopen(self) -> None:
        self.flush()
        fd = _open(self.path)
        os.close(self.fd)
        self.fd = fd

    def close(self) -> None:
        self.flush()
        os.close(self.fd)


def _open(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


_FILES: dict[str, _LogFile] = {}


def _shared_file(path: str) -> _LogFile:
    f = _FILES.get(path)
    if f is None:
        f = _FILES[path] = _LogFile(path)
    return f


def flush_all() -> None:
    for f in _FILES.values():
        f.flush()


def reopen_all() -> None:
    """USR1: every open log file again by its name; one that fails keeps its old descriptor."""
    from ngate.observability import error_log
    for f in _FILES.values():
        try:
            f.reopen()
        except OSError as err:
            error_log.emerg(f'open() "{f.path}" failed {error_log.os_error(err)}')


def open_files(config) -> None:
    """Open every access log file the config names now (a worker does it before it gives up
    root: nginx's master opens them); a writer made later finds its file open."""
    from ngate.observability import error_log
    for path in config_paths(config):
        try:
            _shared_file(path)
        except OSError as err:
            error_log.alert(f'open() "{path}" failed {error_log.os_error(err)}')


def config_paths(config) -> list[str]:
    """The access log files of every level of the config (logs/access.log where a level has no
    access_log, as the runtime's writers do)."""
    default = os.path.join(config.prefix, "logs/access.log")
    paths: dict[str, None] = {}
    for conf in _confs(config):
        for spec in conf.access_log or (AccessLog(default),):
            if (spec.path != "off" and not spec.path.startswith("syslog:")
                    and spec.path_template is None):
                paths[spec.path] = None
    return list(paths)


def _confs(config):
    if config.http_conf is not None:
        yield config.http_conf
    stack = []
    for srv in config.servers:
        yield from _with_ifs(srv.conf)
        stack.extend(srv.locations)
        stack.extend(srv.named_locations.values())
    while stack:
        loc = stack.pop()
        yield from _with_ifs(loc.conf)
        stack.extend(loc.locations)


def _with_ifs(conf):
    yield conf
    extra = conf.extra or {}
    if "limit_except" in extra:
        yield from _with_ifs(extra["limit_except"][1])
    ops = list(conf.rewrite_ops)
    while ops:
        op = ops.pop()
        if getattr(op, "conf", None) is not None:
            yield op.conf
        ops.extend(getattr(op, "ops", ()) or ())


def close_all() -> None:
    """Flush and close every log file (at exit; a later writer opens its file again)."""
    while _FILES:
        _FILES.popitem()[1].close()


# ---------------------------------------------------------------- writer


def combined_format() -> LogFormat:
    return LogFormat("combined", compile_template(COMBINED), "default")


class AccessLogWriter:
    """One `access_log` directive: `write(ctx)` appends its line. OSError if the file cannot be
    opened (nginx refuses the configuration then).

    A line is `fmt % values`: `fmt` holds the literals and a `%s` for each variable, `getters`
    the variables with the escape each needs (compiled once: a line is one loop over the
    variables and one formatting, not a join of every piece). `ops` is the same format as
    literals and getters, for a request that becomes a tunnel (`freeze`)."""
    __slots__ = ("file", "ops", "escape", "missing", "condition", "fmt", "getters")

    def __init__(self, access_log: AccessLog) -> None:
        fmt = access_log.format or combined_format()
        self.file = None if access_log.path == "off" else _shared_file(access_log.path)
        if self.file is not None and access_log.buffer:
            self.file.buffered(access_log.buffer, access_log.flush)
        self.escape, self.missing = _ESCAPES[fmt.escape]
        self.ops = _compile_ops(fmt.template.parts)
        self.fmt, self.getters = _compile_line(self.ops, self.escape)
        self.condition = access_log.condition

    def write(self, ctx) -> None:
        if self.file is None:
            return
        cond = self.condition
        if cond is not None and not _true(cond.render(ctx)):
            return
        self.file.write(_encode(self.line(ctx)))

    def line(self, ctx) -> str:
        """The log line for ctx, with its newline."""
        missing = self.missing
        values = []
        for get, escape in self.getters:
            v = get(ctx)
            if v is None:
                v = missing
            elif escape is not None and v:
                v = escape(v)
            values.append(v)
        return self.fmt % tuple(values)

    def freeze(self, ctx) -> "tuple | None":
        """(writer, ops, condition ops) for a request that became a tunnel: every variable
        that can no longer change rendered now, the late ones (`LATE`) left as getters.
        None when no line will be written (`access_log off`, or an `if=` already false)."""
        if self.file is None:
            return None
        cond = self.condition
        cond_ops = None
        if cond is not None:
            cond_ops = _freeze_ops(cond.parts, ctx, None, "")
            if all(op.__class__ is str for op in cond_ops):
                if not _true("".join(cond_ops)):
                    return None
                cond_ops = None
        return self, _freeze_ops(self.ops, ctx, self.escape, self.missing), cond_ops

    def write_frozen(self, ops: tuple, cond_ops, end) -> None:
        """The line of a frozen request; `end` has the late variables' fields (TunnelEnd)."""
        if cond_ops is not None and not _true(_render(cond_ops, end, None, "")):
            return
        self.file.write(_encode(_render(ops, end, self.escape, self.missing) + "\n"))


class VariablePathWriter(AccessLogWriter):
    """An access_log whose path has variables: the path is rendered for each line and the file
    opened, appended to and closed (nginx without open_log_file_cache)."""
    __slots__ = ("path",)

    def __init__(self, access_log: AccessLog) -> None:
        super().__init__(AccessLog("off", access_log.format, access_log.condition))
        self.path = access_log.path_template

    def write(self, ctx) -> None:
        cond = self.condition
        if cond is not None and not _true(cond.render(ctx)):
            return
        _append(self.path.render(ctx), _encode(self.line(ctx)))

    def freeze(self, ctx) -> "tuple | None":
        self.file = True                    # let the base class freeze the line
        try:
            frozen = super().freeze(ctx)
        finally:
            self.file = None
        if frozen is None:
            return None
        return _FrozenPath(self, self.path.render(ctx)), frozen[1], frozen[2]


class _FrozenPath:
    __slots__ = ("writer", "path")

    def __init__(self, writer: VariablePathWriter, path: str) -> None:
        self.writer, self.path = writer, path

    def write_frozen(self, ops: tuple, cond_ops, end) -> None:
        if cond_ops is not None and not _true(_render(cond_ops, end, None, "")):
            return
        w = self.writer
        _append(self.path, _encode(_render(ops, end, w.escape, w.missing) + "\n"))


def _append(path: str, data: bytes) -> None:
    from ngate.observability import error_log
    try:
        fd = _open(path)
    except OSError as err:
        error_log.crit(f'open() "{path}" failed {error_log.os_error(err)}')
        return
    try:
        os.write(fd, data)
    except OSError:
        pass
    finally:
        os.close(fd)


def writer_for(access_log: AccessLog) -> AccessLogWriter:
    if access_log.path_template is not None:
        return VariablePathWriter(access_log)
    return AccessLogWriter(access_log)


def _true(value: str) -> bool:
    return bool(value) and value != "0"


def _render(ops: tuple, ctx, escape, missing: str) -> str:
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


def _freeze_ops(ops: tuple, ctx, escape, missing: str) -> tuple:
    """ops with every getter but the late ones rendered and merged into the literals."""
    out: list = []
    for op in ops:
        if op.__class__ is not str:
            if op in LATE:
                out.append(op)
                continue
            op = _render((op,), ctx, escape, missing)
        if out and out[-1].__class__ is str:
            out[-1] += op
        elif op:
            out.append(op)
    return tuple(out)


def _compile_line(ops: tuple, escape) -> tuple[str, tuple]:
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


def _compile_ops(parts: tuple) -> tuple:
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


def _encode(line: str) -> bytes:
    try:
        return line.encode("latin-1")
    except UnicodeEncodeError:
        return "".join(c if ord(c) < 256 else c.encode("utf-8").decode("latin-1")
                       for c in line).encode("latin-1")
