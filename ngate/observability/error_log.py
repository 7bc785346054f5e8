"""nginx's error log: `YYYY/MM/DD HH:MM:SS [level] pid#tid: *conn message`.

One process-wide log with several targets (files opened for append, `stderr`, or `syslog:`
servers), each with its own minimum level. Lines are written with a single os.write() on an
O_APPEND descriptor, so lines from the master and its workers never interleave; a syslog target
sends the line as one datagram (syslog.py: the line's level is the message's severity).
A line is at most 2047 bytes and its newline, cut there as nginx cuts it (NGX_MAX_ERROR_STR).

Two phases, as in nginx:
- startup (`use_startup_log`): before the configuration is loaded, the log is the `-e` file, or
  `stderr`, or (default) the console only. Messages at warn or worse are also echoed to stderr as
  `ngate: [emerg] message` unless a target already is stderr (nginx's ngx_use_stderr).
- running (`configure(config)`): the main-level `error_log` directives; `-e` only matters when
  the configuration has none.

The request path calls the module functions: `error_log.error(msg, conn_number)`; `enabled(level)`
is a cheap pre-check before building an expensive message.

`error_log` at the http, server and location levels (nginx's ngx_set_connection_log): when a
request's location is chosen, `use(conn_number, specs)` points that connection's messages at the
location's logs (specs: the LocConf's error_log tuple; () goes back to the main log) until the next
choice or the connection's end (`forget`). Each distinct tuple opens its files once per process.
"""
from __future__ import annotations

import os
import time

LEVELS = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug")
_RANK = {name: i for i, name in enumerate(LEVELS)}
_CONSOLE_MAX = _RANK["warn"]
MAX_ERROR_STR = 2048                # NGX_MAX_ERROR_STR
PROGRAM = "ngate"


class _Target:
    """A file, stderr, or a syslog server (`peer`; fd -1). A reopen keeps a syslog target."""
    __slots__ = ("path", "fd", "rank", "peer")

    def __init__(self, path: str, rank: int, syslog=None) -> None:
        self.path = path
        self.rank = rank
        self.peer = None
        if syslog is not None:
            from ngate.observability.syslog import SyslogPeer   # (it imports log_format, which
            self.fd = -1                                        # needs this module)
            self.peer = SyslogPeer(syslog)
        else:
            self.fd = 2 if path == "stderr" else _open(path)

    def close(self) -> None:
        if self.peer is not None:
            self.peer.close()
        elif self.fd != 2:
            os.close(self.fd)


def _to_syslog(peer, rank: int, line: bytes) -> None:
    """ngx_syslog_writer: the line (without its newline) under a header whose severity is the
    line's level; not while this peer is already sending (an error of its own send)."""
    if peer.busy:
        return
    from ngate.observability.syslog import error_body, header, syslog_time
    peer.busy = True
    try:
        peer.send(header(peer.server, rank, peer.host, syslog_time()) + error_body(line))
    finally:
        peer.busy = False


def _open(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


class _Sink:
    """The targets of one http/server/location-level error_log tuple."""
    __slots__ = ("specs", "targets", "rank")

    def __init__(self, specs) -> None:
        self.specs = specs
        self.targets: list[_Target] = []
        self.open()

    def open(self) -> None:
        """(Re)open each file; one that cannot be opened keeps its old descriptor, if any.
        A syslog target is kept as it is (its socket too)."""
        old = list(self.targets)
        new = []
        for spec in self.specs:
            rank = _RANK[spec.level]
            kept = next((t for t in old if t.path == spec.path and
                         (t.peer is None) == (spec.syslog is None)), None)
            if spec.syslog is not None and kept is not None:
                old.remove(kept)
                new.append(kept)
                continue
            try:
                new.append(_Target(spec.path, rank, spec.syslog))
            except OSError:
                if kept is not None:
                    old.remove(kept)
                    new.append(kept)
        for t in old:
            if all(t is not n for n in new):
                t.close()
        self.targets = new
        self.rank = max((t.rank for t in new), default=-1)

    def close(self) -> None:
        for t in self.targets:
            t.close()
        self.targets = []


class ErrorLog:
    __slots__ = ("targets", "console", "max_rank", "main_rank", "pid", "_sec", "_stamp",
                 "sinks", "bound")

    def __init__(self) -> None:
        self.targets: list[_Target] = []
        self.console = True
        self.max_rank = self.main_rank = _RANK["notice"]
        self.pid = os.getpid()
        self._sec = -1
        self._stamp = ""
        self.sinks: dict[tuple, _Sink] = {}         # error_log tuple -> its open targets
        self.bound: dict[int, _Sink] = {}           # connection number -> its location's sink

    def set_targets(self, specs, console: bool) -> None:
        """Open the new targets first, so a failure leaves the log as it was. A spec is
        (path, level[, syslog server]), or a _Target to keep."""
        new = []
        try:
            for spec in specs:
                if isinstance(spec, _Target):
                    new.append(spec)
                    continue
                path, level, *syslog = spec
                new.append(_Target(path, _RANK[level], *syslog))
        except OSError:
            for t in new:
                if t not in specs:
                    t.close()
            raise
        old, self.targets = self.targets, new
        for t in old:
            if all(t is not n for n in new):
                t.close()
        self.console = console and not any(t.fd == 2 for t in new)
        ranks = [t.rank for t in new]
        if self.console:
            ranks.append(_CONSOLE_MAX)
        self.main_rank = max(ranks, default=-1)
        self._set_max_rank()

    def _set_max_rank(self) -> None:
        self.max_rank = max([self.main_rank] + [s.rank for s in self.sinks.values()])

    def reopen(self) -> None:
        self.set_targets([t if t.peer is not None else (t.path, LEVELS[t.rank])
                          for t in self.targets], self.console)
        for sink in self.sinks.values():
            sink.open()

    def drop_sinks(self) -> None:
        """A new configuration: the location-level logs of the old one are closed."""
        for sink in self.sinks.values():
            sink.close()
        self.sinks.clear()
        self.bound.clear()
        self._set_max_rank()

    def use(self, conn_number: int, specs) -> None:
        if not specs:
            if self.bound:
                self.bound.pop(conn_number, None)
            return
        sink = self.sinks.get(specs)
        if sink is None:
            sink = self.sinks[specs] = _Sink(specs)
            self._set_max_rank()
        self.bound[conn_number] = sink

    def forget(self, conn_number: int) -> None:
        if self.bound:
            self.bound.pop(conn_number, None)

    def enabled(self, level: str) -> bool:
        return _RANK[level] <= self.max_rank

    def log(self, level: str, message: str, conn_number: int | None = None) -> None:
        rank = _RANK[level]
        if rank > self.max_rank:
            return
        sink = self.bound.get(conn_number) if self.bound else None
        if sink is None:
            if rank > self.main_rank:
                return
            targets = self.targets
        else:
            if rank > sink.rank:
                return
            targets = sink.targets
        if self.console and rank <= _CONSOLE_MAX:
            os.write(2, f"{PROGRAM}: [{level}] {message}\n".encode("utf-8", "replace"))
        if not targets:
            return
        conn = f"*{conn_number} " if conn_number is not None else ""
        line = f"{self._timestamp()} [{level}] {self.pid}#{self.pid}: {conn}{message}\n"
        data = line.encode("utf-8", "replace")
        if len(data) > MAX_ERROR_STR:       # nginx's line is at most 2047 bytes and its LF
            data = data[:MAX_ERROR_STR - 1] + b"\n"
        for t in targets:
            if rank <= t.rank:
                if t.peer is not None:
                    _to_syslog(t.peer, rank, data)
                    continue
                try:
                    os.write(t.fd, data)
                except OSError:
                    pass

    def _timestamp(self) -> str:
        now = int(time.time())
        if now != self._sec:
            self._sec = now
            self._stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(now))
        return self._stamp

    def _after_fork(self) -> None:
        self.pid = os.getpid()


LOG = ErrorLog()
os.register_at_fork(after_in_child=LOG._after_fork)


def startup_path(error_log_option: str | None, prefix: str) -> str | None:
    """The `-e` value as a path: `stderr`, an absolute path, or one relative to the prefix."""
    if error_log_option is None or error_log_option == "stderr":
        return error_log_option
    return os.path.join(prefix, error_log_option)


def use_startup_log(path: str | None) -> None:
    """Before the config is loaded: the -e target (if any) at notice level, echoing to the console."""
    LOG.set_targets([(path, "notice")] if path else [], console=True)


def configure(config, startup: str | None = None, console: bool = False) -> None:
    """Switch to the configuration's main-level error_log; `startup` (-e) when it has none.

    Raises OSError when a file cannot be opened; the previous targets then stay in place.
    """
    specs = [(e.path, e.level, e.syslog) for e in config.main.error_log]
    if not specs:
        specs = [(startup or "stderr", "error")]
    LOG.set_targets(specs, console)
    LOG.drop_sinks()
    open_sinks(config)


def open_sinks(config) -> None:
    """Open the http/server/location-level error_log files now, in the master (as nginx does at
    load): the workers inherit them, before they give up root."""
    from ngate.observability.log_files import all_confs
    for conf in all_confs(config):
        if conf.error_log and conf.error_log not in LOG.sinks:
            LOG.sinks[conf.error_log] = _Sink(conf.error_log)
    LOG._set_max_rank()


def reopen() -> None:
    LOG.reopen()


def use(conn_number: int, specs) -> None:
    """The connection's messages go to `specs` (a LocConf's error_log; () is the main log)."""
    LOG.use(conn_number, specs)


def forget(conn_number: int) -> None:
    LOG.forget(conn_number)


def enabled(level: str) -> bool:
    return LOG.enabled(level)


def log(level: str, message: str, conn_number: int | None = None) -> None:
    LOG.log(level, message, conn_number)


def _at(level: str):
    def write(message: str, conn_number: int | None = None) -> None:
        LOG.log(level, message, conn_number)
    write.__name__ = level
    return write


emerg = _at("emerg")
alert = _at("alert")
crit = _at("crit")
error = _at("error")
warn = _at("warn")
notice = _at("notice")
info = _at("info")
debug = _at("debug")


def os_error(err: OSError) -> str:
    """nginx's `(98: Address already in use)` suffix."""
    return f"({err.errno}: {os.strerror(err.errno)})" if err.errno else f"({err})"


def request_suffix(ctx, upstream_uri: str | None = None) -> str:
    """nginx's context for request errors (ngx_http_log_error_handler):

    `, client: 1.2.3.4, server: name, request: "GET / HTTP/1.1", upstream: "http://a:1/",
    host: "x", referrer: "y"`; for a subrequest, the main request's line and then
    `, subrequest: "/uri"` (its upstream's URI: its own unless given).
    """
    return suffix_of(request_facts(ctx, upstream_uri))


def request_facts(ctx, upstream_uri: str | None = None) -> tuple:
    """What request_suffix says of ctx, taken now and rendered by suffix_of only when an error
    is logged (a tunnel keeps these references, not ctx, and most tunnels log nothing)."""
    conn = ctx.conn
    tries = ctx.upstream_tries
    hdr = ctx.hdr
    main = getattr(ctx, "main", None)
    if main is None:
        top = ctx
        sub = None
    else:       # a subrequest: the main request's line, then its own URI (and upstream's)
        top = main
        sub = ctx.uri
        if upstream_uri is None:
            upstream_uri = sub + ("?" + ctx.args if ctx.args else "")
    return (None if conn is None else getattr(conn, "remote_addr", ""), ctx.server,
            top.method, top.request_uri, top.http_version, sub,
            ctx.conf if tries else None, tries[-1].addr if tries else None, upstream_uri,
            hdr.get(b"host") if hdr else None, hdr.get(b"referer") if hdr else None)


def suffix_of(facts: tuple) -> str:
    """request_suffix's text from request_facts."""
    (client, server, method, request_uri, version, sub, conf, peer, upstream_uri, host,
     referer) = facts
    parts = []
    if client is not None:
        parts.append(f", client: {client}")
    if server is not None:
        parts.append(f", server: {server.names.first}")
    if method:
        parts.append(f', request: "{method} {request_uri} HTTP/{version}"')
    if sub is not None:
        parts.append(f', subrequest: "{sub}"')
    if peer is not None:
        scheme = _upstream_scheme(conf)
        uri = request_uri if upstream_uri is None else upstream_uri
        if scheme == "fastcgi://":
            uri = ""            # nginx names only the FastCGI server
        parts.append(f', upstream: "{scheme}{peer}{uri}"')   # upstream/attempts.py: the current try
    if host is not None:
        parts.append(f', host: "{host.decode("latin-1")}"')
    if referer is not None:
        parts.append(f', referrer: "{referer.decode("latin-1")}"')
    return "".join(parts)


def _upstream_scheme(conf) -> str:
    if conf is not None and conf.proxy.pass_ is None and conf.fastcgi.pass_ is not None:
        return "fastcgi://"
    pp = conf.proxy.pass_ if conf is not None else None
    return f"{pp.scheme}://" if pp is not None else "http://"
