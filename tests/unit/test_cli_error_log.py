"""The nginx-format error log: line format, level filtering, targets, reopen, request context."""
from __future__ import annotations

import os
import re
from types import SimpleNamespace

import pytest

from ngate.config.model import ErrorLog as ErrorLogConf
from ngate.observability import error_log
from ngate.http.context import RequestContext
from ngate.upstream.attempts import Attempt

LINE = re.compile(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] (\d+)#(\d+): (.*)")


@pytest.fixture
def log():
    log = error_log.ErrorLog()
    yield log
    log.set_targets([], console=False)


def config_with(*logs):
    return SimpleNamespace(main=SimpleNamespace(error_log=tuple(logs)), http_conf=None, servers=())


def test_line_format(tmp_path, log):
    path = tmp_path / "error.log"
    log.set_targets([(str(path), "info")], console=False)
    log.log("error", "connect() failed", conn_number=7)
    log.log("notice", "start worker processes")
    first, second = path.read_text().splitlines()
    stamp, level, pid, tid, rest = LINE.fullmatch(first).groups()
    assert (level, pid, tid, rest) == ("error", str(os.getpid()), str(os.getpid()),
                                       "*7 connect() failed")
    assert LINE.fullmatch(second).group(5) == "start worker processes"


def test_levels_filter_per_target(tmp_path, log):
    quiet, chatty = tmp_path / "quiet.log", tmp_path / "chatty.log"
    log.set_targets([(str(quiet), "warn"), (str(chatty), "debug")], console=False)
    for level in error_log.LEVELS:
        log.log(level, f"m-{level}")
    levels = lambda p: [LINE.fullmatch(l).group(2) for l in p.read_text().splitlines()]
    assert levels(quiet) == ["emerg", "alert", "crit", "error", "warn"]
    assert levels(chatty) == list(error_log.LEVELS)
    assert log.enabled("debug") and not error_log.ErrorLog().enabled("info")


def test_files_are_appended(tmp_path, log):
    path = tmp_path / "error.log"
    path.write_text("old line\n")
    log.set_targets([(str(path), "error")], console=False)
    log.log("error", "new")
    assert path.read_text().startswith("old line\n")
    assert path.read_text().endswith(": new\n")


def test_console_echo_only_for_warn_and_worse(capfd, log):
    log.set_targets([], console=True)
    log.log("emerg", "bad thing in /x.conf:3")
    log.log("notice", "not shown")
    assert capfd.readouterr().err == "ngate: [emerg] bad thing in /x.conf:3\n"


def test_stderr_target_uses_the_full_format(capfd, log):
    log.set_targets([("stderr", "notice")], console=True)
    log.log("notice", "hello")
    err = capfd.readouterr().err
    assert LINE.fullmatch(err.rstrip("\n")).group(5) == "hello"


def test_reopen_after_rotation(tmp_path, log):
    path = tmp_path / "error.log"
    log.set_targets([(str(path), "error")], console=False)
    log.log("error", "before")
    os.rename(path, tmp_path / "error.log.1")
    log.reopen()
    log.log("error", "after")
    assert path.read_text().endswith(": after\n")
    assert (tmp_path / "error.log.1").read_text().endswith(": before\n")


def test_failed_open_keeps_previous_targets(tmp_path, log):
    path = tmp_path / "error.log"
    log.set_targets([(str(path), "error")], console=False)
    with pytest.raises(OSError):
        log.set_targets([(str(tmp_path / "missing" / "x.log"), "error")], console=False)
    log.log("error", "still here")
    assert path.read_text().endswith(": still here\n")


def test_configure_from_config_and_e_default(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    try:
        error_log.configure(config_with(ErrorLogConf(str(a), "info")), startup=str(b))
        error_log.info("to a")
        error_log.configure(config_with(), startup=str(b))
        error_log.info("dropped: default level is error")
        error_log.error("to b")
    finally:
        error_log.LOG.set_targets([], console=True)
    assert a.read_text().endswith(": to a\n")
    assert b.read_text().endswith(": to b\n") and "dropped" not in b.read_text()


def test_request_suffix():
    conn = SimpleNamespace(remote_addr="10.0.0.5")
    ctx = RequestContext(conn, "GET", "/a?b=1", "1.1", [],
                         {b"host": b"example.com", b"referer": b"http://r/"})
    ctx.server = SimpleNamespace(names=SimpleNamespace(first="example.com"))
    ctx.upstream_tries = [Attempt("127.0.0.1:8888", 0.0)]
    assert error_log.request_suffix(ctx, upstream_uri="/a?b=1") == (
        ', client: 10.0.0.5, server: example.com, request: "GET /a?b=1 HTTP/1.1", '
        'upstream: "http://127.0.0.1:8888/a?b=1", host: "example.com", referrer: "http://r/"')


def test_request_suffix_without_upstream_or_host():
    ctx = RequestContext(SimpleNamespace(remote_addr="::1"), "POST", "/x", "1.0", [], {})
    assert error_log.request_suffix(ctx) == ', client: ::1, request: "POST /x HTTP/1.0"'


def test_location_error_log_bound_to_a_connection(tmp_path, log):
    main, loc = tmp_path / "main.log", tmp_path / "loc.log"
    log.set_targets([(str(main), "error")], console=False)
    specs = (ErrorLogConf(str(loc), "info"),)
    assert not log.enabled("info")
    log.use(7, specs)
    assert log.enabled("info")           # a location logs at info: the pre-check lets it through
    log.log("info", "to the location", 7)
    log.log("info", "dropped: main is at error", 8)
    log.log("error", "to main", 8)
    log.use(7, ())                       # a location without error_log: back to the main log
    log.log("error", "main again", 7)
    log.use(7, specs)
    log.forget(7)                        # the connection ended
    log.log("error", "after forget", 7)
    assert [l.split(": ", 1)[1] for l in loc.read_text().splitlines()] == ["*7 to the location"]
    assert [l.split(": ", 1)[1] for l in main.read_text().splitlines()] == [
        "*8 to main", "*7 main again", "*7 after forget"]
    assert log.sinks[specs] is not None and not log.bound
    loc.unlink()
    log.reopen()                         # USR1: the location's file is opened again
    log.use(9, specs)
    log.log("warn", "reopened", 9)
    assert "*9 reopened" in loc.read_text()
    log.drop_sinks()
    assert not log.sinks and not log.enabled("info")
