"""access_log: one writer per `access_log` directive, its log_format compiled once.

A line is the format's literal text plus each variable's value, escaped as nginx does:
- default: `"`, `\\`, bytes < 0x20 and >= 0x7f become `\\xHH`; a variable that is not found is `-`;
- json: `"` and `\\` get a backslash, controls become `\\n \\r \\t \\b \\f` or `\\u00HH`;
  a variable that is not found is empty;
- none: values as they are; not found is empty.
(log_format.py: escapes, cached times, compiled ops.) A request that becomes a tunnel has its
line frozen at the upgrade and written at the close (TunnelEnd).

Files are shared by path and buffered as nginx does (log_files.py): a line goes out at the end
of the event loop's turn, or with `buffer=`/`flush=` when the buffer fills or flush= passes.
A `syslog:` target sends each line at once as one datagram (SyslogWriter, syslog.py).
"""
from __future__ import annotations

import time

from ngate.config.model import AccessLog, LogFormat
from ngate.observability import error_log
from ngate.observability.log_files import append, shared_file
from ngate.observability.log_format import (ESCAPES, compile_ops, compile_writer, encode_line,
                                            freeze_ops, is_true, render_ops)
from ngate.observability.syslog import SyslogPeer, header, syslog_time
from ngate.routing.variables import compile_template
# where other modules import them from (server/runtime.py, supervisor/worker.py, tests)
from ngate.observability.log_files import (_FILES, close_all, config_paths, flush_all,  # noqa: F401
                                           open_files, reopen_all)
from ngate.observability.log_format import LATE, escape_default, escape_json  # noqa: F401

COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent"')


# ---------------------------------------------------------------- requests that became tunnels

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


# ---------------------------------------------------------------- writer

def combined_format() -> LogFormat:
    return LogFormat("combined", compile_template(COMBINED), "default")


class AccessLogWriter:
    """One `access_log` directive: `write(ctx)` appends its line. OSError if the file cannot be
    opened (nginx refuses the configuration then).

    `line(ctx)` is the format compiled once into one function (log_format.compile_writer: the
    common variables read inline, escapes only where a value needs them, one `%` formatting).
    `ops` is the same format as literals and getters, for a request that becomes a tunnel
    (`freeze`)."""
    __slots__ = ("file", "ops", "escape", "missing", "condition", "line")

    def __init__(self, access_log: AccessLog) -> None:
        fmt = access_log.format or combined_format()
        self.file = None if access_log.path == "off" else shared_file(access_log.path)
        if self.file is not None and access_log.buffer:
            self.file.buffered(access_log.buffer, access_log.flush)
        self.escape, self.missing = ESCAPES[fmt.escape]
        self.ops = compile_ops(fmt.template.parts)
        self.line = compile_writer(self.ops, self.escape, self.missing)
        self.condition = access_log.condition

    def write(self, ctx) -> None:
        if self.file is None:
            return
        cond = self.condition
        if cond is not None and not is_true(cond.render(ctx)):
            return
        line = self.line(ctx)
        try:
            data = line.encode("latin-1")
        except UnicodeEncodeError:
            data = encode_line(line)
        self.file.write(data)

    def freeze(self, ctx) -> "tuple | None":
        """(writer, ops, condition ops) for a request that became a tunnel: every variable
        that can no longer change rendered now, the late ones (`LATE`) left as getters.
        None when no line will be written (`access_log off`, or an `if=` already false)."""
        if self.file is None:
            return None
        cond = self.condition
        cond_ops = None
        if cond is not None:
            cond_ops = freeze_ops(cond.parts, ctx, None, "")
            if all(op.__class__ is str for op in cond_ops):
                if not is_true("".join(cond_ops)):
                    return None
                cond_ops = None
        return self, freeze_ops(self.ops, ctx, self.escape, self.missing), cond_ops

    def write_frozen(self, ops: tuple, cond_ops, end) -> None:
        """The line of a frozen request; `end` has the late variables' fields (TunnelEnd)."""
        if cond_ops is not None and not is_true(render_ops(cond_ops, end, None, "")):
            return
        self.file.write(encode_line(render_ops(ops, end, self.escape, self.missing) + "\n"))


class VariablePathWriter(AccessLogWriter):
    """An access_log whose path has variables: the path is rendered for each line and the file
    opened, appended to and closed (nginx without open_log_file_cache)."""
    __slots__ = ("path",)

    def __init__(self, access_log: AccessLog) -> None:
        super().__init__(AccessLog("off", access_log.format, access_log.condition))
        self.path = access_log.path_template

    def write(self, ctx) -> None:
        cond = self.condition
        if cond is not None and not is_true(cond.render(ctx)):
            return
        append(self.path.render(ctx), encode_line(self.line(ctx)))

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
        if cond_ops is not None and not is_true(render_ops(cond_ops, end, None, "")):
            return
        w = self.writer
        append(self.path, encode_line(render_ops(ops, end, w.escape, w.missing) + "\n"))


class SyslogWriter(AccessLogWriter):
    """An access_log to `syslog:` (ngx_http_log_handler's syslog_peer branch): the header
    (`<PRI>Mmm dd hh:mm:ss host tag: `, remade when the second changes) and the line without
    its newline, sent at once as one datagram; a failed send is a [warn] of the request."""
    __slots__ = ("peer", "stamp", "head")

    def __init__(self, access_log: AccessLog) -> None:
        super().__init__(AccessLog("off", access_log.format, access_log.condition))
        self.file = True                    # (not None: the base freeze() makes tunnel lines)
        self.peer = SyslogPeer(access_log.syslog)
        self.stamp = ""
        self.head = b""

    def write(self, ctx) -> None:
        cond = self.condition
        if cond is not None and not is_true(cond.render(ctx)):
            return
        failed = self.send(encode_line(self.line(ctx)))
        if failed is not None:
            self.warn_failed(failed, error_log.request_facts(ctx),
                             getattr(ctx.conn, "number", None))

    def send(self, line: bytes) -> "tuple | None":
        """Send `line` (ending in its newline); None, or what went wrong (sent, size)."""
        stamp = syslog_time()
        if stamp != self.stamp:
            peer = self.peer
            self.head = header(peer.server, peer.server.severity, peer.host, stamp)
            self.stamp = stamp
        data = self.head + line[:-1]
        n = self.peer.send(data)
        return None if n == len(data) else (n, len(data))

    @staticmethod
    def warn_failed(failed: tuple, facts: tuple, conn_number) -> None:
        n, size = failed
        what = "failed" if n < 0 else f"has written only {n} of {size}"
        error_log.warn(f"send() to syslog {what} while logging request"
                       + error_log.suffix_of(facts), conn_number)

    def freeze(self, ctx) -> "tuple | None":
        frozen = super().freeze(ctx)
        if frozen is None:
            return None
        conn = ctx.conn
        return (_FrozenSyslog(self, error_log.request_facts(ctx), getattr(conn, "number", None)),
                frozen[1], frozen[2])


class _FrozenSyslog:
    __slots__ = ("writer", "facts", "conn_number")

    def __init__(self, writer: SyslogWriter, facts: tuple, conn_number) -> None:
        self.writer, self.facts, self.conn_number = writer, facts, conn_number

    def write_frozen(self, ops: tuple, cond_ops, end) -> None:
        if cond_ops is not None and not is_true(render_ops(cond_ops, end, None, "")):
            return
        w = self.writer
        line = encode_line(render_ops(ops, end, w.escape, w.missing) + "\n")
        failed = w.send(line)
        if failed is not None:
            w.warn_failed(failed, self.facts, self.conn_number)


def writer_for(access_log: AccessLog) -> AccessLogWriter:
    if access_log.syslog is not None:
        return SyslogWriter(access_log)
    if access_log.path_template is not None:
        return VariablePathWriter(access_log)
    return AccessLogWriter(access_log)
