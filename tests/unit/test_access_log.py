"""AccessLogWriter: nginx's log_format escaping, not-found values, if=, shared buffered files."""
from __future__ import annotations

import asyncio
import os
import re
from datetime import datetime

import pytest

from ngate.config.model import AccessLog, LogFormat
from ngate.observability import access_log as al
from ngate.observability import log_files
from ngate.observability.access_log import (AccessLogWriter, close_all, escape_default,
                                            escape_json, flush_all, reopen_all)
from ngate.http.context import RequestContext
from ngate.routing.variables import compile_template
from ngate.upstream.attempts import Attempt


class Conn:
    remote_addr = "192.0.2.7"
    remote_port = "5555"
    server_addr = "127.0.0.1"
    server_port = "8080"
    scheme = "http"
    number = 3
    requests = 1


def make_ctx(headers=(), uri="/p?q=1", status=200, sent=12) -> RequestContext:
    hs = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
    ctx = RequestContext(Conn(), "GET", uri, "1.1", hs, {n.lower(): v for n, v in hs})
    ctx.status, ctx.body_bytes_sent = status, sent
    return ctx


@pytest.fixture(autouse=True)
def _close_files():
    yield
    close_all()


def writer(path, text: str, escape: str = "default", condition: str | None = None):
    fmt = LogFormat("f", compile_template(text), escape)
    cond = compile_template(condition) if condition is not None else None
    return AccessLogWriter(AccessLog(str(path), fmt, cond))


@pytest.mark.parametrize("value, escaped", [
    ("plain text / ok", "plain text / ok"),
    ('q"uote', "q\\x22uote"),
    ("back\\slash", "back\\x5Cslash"),
    ("tab\tnl\ncr\r", "tab\\x09nl\\x0Acr\\x0D"),
    ("\x00\x1f\x7f", "\\x00\\x1F\\x7F"),
    ("caf\xc3\xa9", "caf\\xC3\\xA9"),            # bytes >= 0x80 (latin-1 str of UTF-8)
    ("~`'{}|", "~`'{}|"),
])
def test_escape_default(value, escaped):
    assert escape_default(value) == escaped


@pytest.mark.parametrize("value, escaped", [
    ("plain", "plain"),
    ('q"uote', 'q\\"uote'),
    ("back\\slash", "back\\\\slash"),
    ("\n\r\t\b\f", "\\n\\r\\t\\b\\f"),
    ("\x01\x1f", "\\u0001\\u001F"),
    ("\x7f caf\xc3\xa9", "\x7f caf\xc3\xa9"),    # not escaped by nginx's escape=json
])
def test_escape_json(value, escaped):
    assert escape_json(value) == escaped


def test_combined_line(tmp_path):
    path = tmp_path / "access.log"
    w = AccessLogWriter(AccessLog(str(path)))        # no format: combined
    w.write(make_ctx([("User-Agent", 'curl "x"'), ("Referer", "http://r/")]))
    line = path.read_text()
    m = re.fullmatch(r'192\.0\.2\.7 - - \[(.+?)\] "GET /p\?q=1 HTTP/1\.1" 200 12 '
                     r'"http://r/" "curl \\x22x\\x22"\n', line)
    assert m, line
    assert datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S %z").tzinfo is not None


@pytest.mark.parametrize("escape, expected", [
    ("default", "[-][][-][x\\x22y]\n"),
    ("json", "[][][][x\\\"y]\n"),
    ("none", '[][][][x"y]\n'),
])
def test_not_found_values(tmp_path, escape, expected):
    path = tmp_path / "a.log"
    w = writer(path, "[$http_referer][$http_empty][$remote_user][$http_x]", escape)
    w.write(make_ctx([("Empty", ""), ("X", 'x"y')]))
    assert path.read_text() == expected


@pytest.mark.parametrize("condition, written", [
    ("$http_log", True), ("1", True), ("0", False), ("", False), ("$http_nolog", False),
])
def test_if_condition(tmp_path, condition, written):
    path = tmp_path / "c.log"
    w = writer(path, "$status", condition=condition)
    w.write(make_ctx([("Log", "yes")]))
    assert path.read_text() == ("200\n" if written else "")


def test_literal_text_is_written_as_utf8(tmp_path):
    path = tmp_path / "u.log"
    writer(path, "é $status ü").write(make_ctx())
    assert path.read_bytes() == "é 200 ü\n".encode("utf-8")


def test_percent_signs_in_the_format_and_the_values_are_written_as_they_are(tmp_path):
    path = tmp_path / "p.log"
    writer(path, "100%s %% $status $request_uri %d").write(make_ctx(uri="/a%25s%d"))
    assert path.read_text() == "100%s %% 200 /a%25s%d %d\n"


@pytest.mark.parametrize("authorization, user", [
    (None, "-"), ("Basic dXNlcjpwdw==", "user"), ("Basic bm9jb2xvbg==", "-"),
    ("Bearer dXNlcjpwdw==", "-"), ("basic  dSJxOnB3", "u\\x22q"),
])
def test_remote_user(tmp_path, authorization, user):
    path = tmp_path / "r.log"
    headers = [] if authorization is None else [("Authorization", authorization)]
    writer(path, "$remote_user").write(make_ctx(headers))
    assert path.read_text() == user + "\n"


def test_off_writes_nothing(tmp_path):
    w = AccessLogWriter(AccessLog("off"))
    w.write(make_ctx())
    assert al._FILES == {}


def test_writers_of_one_path_share_one_file(tmp_path):
    path = tmp_path / "shared.log"
    a, b = writer(path, "a $status"), writer(path, "b $status")
    assert a.file is b.file
    a.write(make_ctx())
    b.write(make_ctx())
    a.write(make_ctx())
    assert path.read_text() == "a 200\nb 200\na 200\n"


def test_appends_to_an_existing_file(tmp_path):
    path = tmp_path / "old.log"
    path.write_text("old line\n")
    writer(path, "$status").write(make_ctx())
    assert path.read_text() == "old line\n200\n"


def test_buffered_in_a_running_loop_until_flush(tmp_path):
    path = tmp_path / "b.log"

    async def main():
        w = writer(path, "$status")
        w.write(make_ctx())
        w.write(make_ctx())
        assert path.read_text() == ""
        flush_all()
        assert path.read_text() == "200\n200\n"
    asyncio.run(main())


def test_timer_flushes_the_buffer(tmp_path, monkeypatch):
    monkeypatch.setattr(log_files, "FLUSH_INTERVAL", 0.01)
    path = tmp_path / "t.log"

    async def main():
        writer(path, "$status").write(make_ctx())
        assert path.read_text() == ""
        for _ in range(200):
            await asyncio.sleep(0.01)
            if path.read_text():
                break
        assert path.read_text() == "200\n"
    asyncio.run(main())


def test_a_full_buffer_is_written_at_once(tmp_path):
    path = tmp_path / "big.log"

    async def main():
        w = writer(path, "$http_x")
        ctx = make_ctx([("X", "x" * 1000)])
        for _ in range(70):
            w.write(ctx)
        size = path.stat().st_size
        assert 64 * 1024 <= size < 70 * 1001
        flush_all()
        assert path.stat().st_size == 70 * 1001
    asyncio.run(main())


def test_reopen_all_starts_a_new_file(tmp_path):
    path = tmp_path / "r.log"
    w = writer(path, "$status")
    w.write(make_ctx(status=200))
    os.rename(path, tmp_path / "r.log.1")
    w.write(make_ctx(status=404))          # still the renamed file, as nginx before USR1
    reopen_all()
    w.write(make_ctx(status=500))
    assert (tmp_path / "r.log.1").read_text() == "200\n404\n"
    assert path.read_text() == "500\n"


def test_unopenable_path_raises(tmp_path):
    with pytest.raises(OSError):
        writer(tmp_path / "missing-dir" / "x.log", "$status")


def test_time_variables_use_the_cached_clock(tmp_path):
    path = tmp_path / "time.log"
    writer(path, "$time_local|$time_iso8601").write(make_ctx())
    local, iso = path.read_text().rstrip("\n").split("|")
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}", local)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", iso)
    assert local[-5:].replace(":", "") == iso[-6:].replace(":", "")


# ---------------------------------------------------------------- requests that became tunnels

def _tunnel_ctx(headers=()):
    ctx = make_ctx(headers, uri="/ws", status=101, sent=0)
    ctx.bytes_sent = 129                        # the 101 head
    try_ = Attempt("127.0.0.1:9000", 0.0)     # the try that became the tunnel
    try_.status, try_.bytes_sent, try_.header_time = 101, 200, 0.004
    ctx.upstream_tries = [try_]
    return ctx


def test_frozen_line_is_the_line_written_from_the_whole_context(tmp_path):
    """Rendered in two steps (at the upgrade, at the close) the line is the one `write(ctx)`
    makes from a context with the final figures."""
    fmt = ('$remote_addr "$request" $status $body_bytes_sent $bytes_sent $upstream_addr '
           '$upstream_bytes_sent "$http_user_agent" $http_referer [$time_local] é')
    frozen_path, whole_path = tmp_path / "frozen.log", tmp_path / "whole.log"
    headers = [("User-Agent", 'a "b"\t')]
    ctx = _tunnel_ctx(headers)
    end = al.TunnelEnd.freeze((writer(frozen_path, fmt),), ctx)
    ctx.hdr = ctx.headers = ctx.conn = None        # nothing is read from the context any more
    end.write(1000, 50)
    whole = _tunnel_ctx(headers)
    whole.body_bytes_sent, whole.bytes_sent = 1000, 1129
    whole.upstream_tries[0].bytes_sent = 250
    writer(whole_path, fmt).write(whole)
    flush_all()
    assert frozen_path.read_bytes() == whole_path.read_bytes()
    assert frozen_path.read_text().startswith('192.0.2.7 "GET /ws HTTP/1.1" 101 1000 1129 '
                                              '127.0.0.1:9000 250 "a \\x22b\\x22\\x09" - [')


def test_frozen_line_keeps_only_the_late_variables_as_getters(tmp_path):
    end = al.TunnelEnd.freeze((writer(tmp_path / "a.log", "$remote_addr $request $status "
                                      "$body_bytes_sent $request_time $msec"),), _tunnel_ctx())
    (_, ops, cond_ops), = end.lines
    assert ops[0] == "192.0.2.7 GET /ws HTTP/1.1 101 " and cond_ops is None
    assert [op.__class__ is str for op in ops] == [True, False, True, False, True, False]


def test_frozen_times_end_with_the_tunnel(tmp_path, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(al.time, "monotonic", lambda: now[0])      # the time module: every reader
    ctx = _tunnel_ctx()
    ctx.start = 99.9
    ctx.upstream_tries[0].start = 99.996     # the upstream's response time: from the try's start
    end = al.TunnelEnd.freeze((writer(tmp_path / "t.log", "$request_time $upstream_response_time"),),
                              ctx)
    now[0] = 160.0
    end.write(0, 0)
    flush_all()
    assert (tmp_path / "t.log").read_text() == "60.100 60.004\n"


@pytest.mark.parametrize("condition, written", [
    ("$http_log", True), ("0", False), ("$http_nolog", False), ("$body_bytes_sent", True),
])
def test_frozen_if_condition(tmp_path, condition, written):
    w = writer(tmp_path / "c.log", "$status", condition=condition)
    end = al.TunnelEnd.freeze((w,), _tunnel_ctx([("Log", "yes")]))
    if end is not None:
        end.write(5, 0)
    flush_all()
    assert (tmp_path / "c.log").read_text() == ("101\n" if written else "")
    assert (end is None) == (condition in ("0", "$http_nolog"))


def test_nothing_frozen_without_a_log(tmp_path):
    assert al.TunnelEnd.freeze((writer("off", "$status"),), _tunnel_ctx()) is None
    assert al.TunnelEnd.freeze((), _tunnel_ctx()) is None


@pytest.mark.parametrize("escape", ["default", "json", "none"])
@pytest.mark.parametrize("headers, status", [
    ([], 0),
    ([("User-Agent", 'a "b"\t\\'), ("Referer", "caf\xc3\xa9\x7f"), ("X", "")], 200),
    ([("Authorization", "Basic dSJxOnB3"), ("User-Agent", ""), ("X", "%s%d")], 404),
])
def test_compiled_line_is_the_line_of_the_getters(tmp_path, escape, headers, status):
    """The line compiled once per format (variables read inline, escapes only where needed)
    is the one the variables' own getters and escapes make piece by piece."""
    from ngate.observability.log_format import render_ops
    fmt = (al.COMBINED + ' $remote_addr|$status|$body_bytes_sent|$bytes_sent|$request|'
           '$remote_user|$http_referer|$http_user_agent|$http_x|$uri|$time_iso8601 é %')
    w = writer(tmp_path / "x.log", fmt, escape)
    ctx = make_ctx(headers, status=status)
    ctx.bytes_sent = 345
    assert w.line(ctx) == render_ops(w.ops, ctx, w.escape, w.missing) + "\n"
