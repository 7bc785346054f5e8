"""The access log files: one O_APPEND descriptor per path shared by every writer of it.
Lines logged in one turn of the event loop go out in one write() at the end of that turn
(without a running loop, at once); with `buffer=size` (or `flush=`, `gzip`) they wait until the
buffer is full or `flush=` (default one second) has passed since the first. `open_files()` before
a worker drops root, `flush_all()` at shutdown, `reopen_all()` on USR1; a path with variables is
opened, appended to and closed per line (`append`).
"""
from __future__ import annotations

import asyncio
import os

from ngate.config.model import AccessLog


FLUSH_SIZE = 64 * 1024
FLUSH_INTERVAL = 1.0


class LogFile:
    __slots__ = ("path", "fd", "buf", "timer", "size", "interval")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = _open(path)
        self.buf = bytearray()
        self.timer = None
        self.size = FLUSH_SIZE
        self.interval = 0.0     # 0: written at the end of the loop's turn (nginx: unbuffered)

    def buffered(self, size: int, interval: float | None) -> None:
        """An access_log with buffer=/flush= writes to this file: lines may wait."""
        self.size = size
        self.interval = max(self.interval, interval or FLUSH_INTERVAL)

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


_FILES: dict[str, LogFile] = {}


def shared_file(path: str) -> LogFile:
    f = _FILES.get(path)
    if f is None:
        f = _FILES[path] = LogFile(path)
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
            shared_file(path)
        except OSError as err:
            error_log.alert(f'open() "{path}" failed {error_log.os_error(err)}')


def config_paths(config) -> list[str]:
    """The access log files of every level of the config (logs/access.log where a level has no
    access_log, as the runtime's writers do)."""
    default = os.path.join(config.prefix, "logs/access.log")
    paths: dict[str, None] = {}
    for conf in all_confs(config):
        for spec in conf.log.access_log or (AccessLog(default),):
            if (spec.path != "off" and not spec.path.startswith("syslog:")
                    and spec.path_template is None):
                paths[spec.path] = None
    return list(paths)


def all_confs(config):
    """Every LocConf of the config: http, servers, locations, their ifs and limit_except."""
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
    if conf.limit_except is not None:
        yield from _with_ifs(conf.limit_except.conf)
    ops = list(conf.rewrite.ops)
    while ops:
        op = ops.pop()
        if getattr(op, "conf", None) is not None:
            yield op.conf
        ops.extend(getattr(op, "ops", ()) or ())


def close_all() -> None:
    """Flush and close every log file (at exit; a later writer opens its file again)."""
    while _FILES:
        _FILES.popitem()[1].close()


def append(path: str, data: bytes) -> None:
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
