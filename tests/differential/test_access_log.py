"""Access-log lines of nginx and ngate for the same requests, compared field by field.

Every scenario runs against each program, followed by a marker request (`/__mark/<scenario>`), so
each log file splits into the lines of each scenario. The programs are stopped before the logs are
read (lines of the last request may still be on their way; stopping writes them).

Normalisations (only what differs by design or by chance):
- `server_tokens off` in both: `Server: nginx` and `Server: ngate` (and the error-page signatures)
  have the same length, so $bytes_sent and $body_bytes_sent compare exactly;
- times and durations ($time_local, $msec, $request_time, $upstream_*_time) become `T` per number;
- $server_port (the listening port differs per program) becomes `{port}`;
- $connection (a counter that nginx also advances for upstream connections) becomes the order of
  first appearance within the scenario, so "same connection" / "new connection" still compares.
"""
from __future__ import annotations

import os
import re
import time

import pytest

from tests.harness.backend import Reply
from tests.harness.client import Connection, ProtocolError, exchange
from tests.harness.processes import free_port

CUSTOM_FIELDS = ("remote_addr remote_user request status body_bytes_sent bytes_sent request_length "
                 "request_time http_referer http_user_agent http_x_forwarded_for upstream_addr "
                 "upstream_status upstream_response_time upstream_connect_time "
                 "upstream_header_time host server_name server_port scheme uri args is_args "
                 "request_uri connection connection_requests msec pipe status").split()
TIME_FIELDS = {"request_time", "upstream_response_time", "upstream_connect_time",
               "upstream_header_time", "msec"}
CUSTOM = "|".join("$" + f for f in CUSTOM_FIELDS)
ESCAPED = ('"$request" "$remote_user" "$http_user_agent" "$http_referer" "$http_x_test" '
           '"$arg_q" "$cookie_c" $status')

CONF = """
http {
    server_tokens off;
    log_format custom '%(custom)s';
    log_format json escape=json '{"v":"%(escaped)s"}';
    log_format raw escape=none '%(escaped)s';
    log_format esc '%(escaped)s';
    map $uri $loggable {
        ~^/quiet/  0;
        /empty     "";
        default    1;
    }
    access_log {prefix}/logs/combined.log;
    access_log {prefix}/logs/custom.log custom;
    access_log {prefix}/logs/json.log json;
    access_log {prefix}/logs/raw.log raw;
    access_log {prefix}/logs/esc.log esc;
    access_log {prefix}/logs/cond.log combined if=$loggable;

    client_max_body_size 10;
    client_header_timeout 1s;
    large_client_header_buffers 2 1k;

    upstream two_dead {
        server 127.0.0.1:{dead_port};
        server 127.0.0.1:{dead2};
    }
    upstream dead_then_live {
        server 127.0.0.1:{dead_port};
        server 127.0.0.1:{backend_port};
    }

    server {
        listen 127.0.0.1:{port};
        server_name example.test;

        location / { proxy_pass http://127.0.0.1:{backend_port}; }
        location /quiet/ { proxy_pass http://127.0.0.1:{backend_port}; }
        location /off/ {
            access_log off;
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /two-dead/ { proxy_pass http://two_dead; }
        location /retry/ { proxy_pass http://dead_then_live; }
        location /slow/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_read_timeout 1s;
        }
        location = /r444 { return 444; }
        location = /text { return 200 "text\\n"; }
        location /ep/ {
            proxy_pass http://127.0.0.1:{dead_port};
            error_page 502 /errors/bad;
        }
        location /ep-code/ {
            proxy_pass http://127.0.0.1:{dead_port};
            error_page 502 =200 /errors/fine?from=$uri;
        }
        location /ep-named/ {
            proxy_pass http://127.0.0.1:{dead_port};
            error_page 502 = @fallback;
        }
        location /errors/ {
            internal;
            return 200 "error page $uri\\n";
        }
        location @fallback { proxy_pass http://127.0.0.1:{backend_port}; }
    }
}
""".replace("%(custom)s", CUSTOM).replace("%(escaped)s", ESCAPED)
JSON_CONF_FIX = ESCAPED.replace('"', '\\"')     # inside the json format the quotes are literal
CONF = CONF.replace('{"v":"' + ESCAPED + '"}', '{"v":"' + JSON_CONF_FIX + '"}')

LOGS = ("combined", "custom", "json", "raw", "esc", "cond")
H = b"Host: example.test\r\n"


def get(target: str, extra: bytes = b"", method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/1.1\r\n".encode() + H + extra + b"\r\n"


# ---------------------------------------------------------------- scenarios: port -> client view


def one(raw: bytes, method: str = "GET"):
    def script(port):
        try:
            return [r.status for r in exchange(port, raw, method=method)]
        except (ProtocolError, OSError) as e:
            return type(e).__name__
    return script


def answered_then_closed(raw: bytes):
    """Send raw, read the one answer (a reject), and whether the connection closes."""
    def script(port):
        with Connection(port) as conn:
            conn.send(raw)
            try:
                status = conn.read_response().status
            except ProtocolError:
                status = "no answer"
            return [status, conn.closed_by_peer()]
    return script


def keep_alive(port):
    with Connection(port) as conn:
        out = []
        for target in ("/ka/1", "/ka/2", "/text"):
            conn.send(get(target))
            out.append(conn.read_response().status)
        return out


def pipelined(port):
    raw = get("/pipe/1") + get("/pipe/2", method="HEAD") + get("/text")
    with Connection(port) as conn:
        conn.send(raw)
        return [conn.read_response(m).status for m in ("GET", "HEAD", "GET")]


def client_gone_before_upstream(port):
    """499: the client closes while the upstream is still thinking."""
    with Connection(port) as conn:
        conn.send(get("/slow/late"))
        time.sleep(0.3)
    time.sleep(0.3)
    return "closed"


def header_timeout(port):
    """408: a request head that never ends (client_header_timeout 1s)."""
    with Connection(port) as conn:
        conn.send(b"GET /partial HTTP/1.1\r\nHost: example.test\r\n")
        try:
            conn.read_response()
        except (ProtocolError, OSError):
            pass
        return conn.closed_by_peer()


def returns_444(port):
    with Connection(port) as conn:
        conn.send(get("/r444"))
        return conn.closed_by_peer()


ESCAPE_HEADERS = (b'User-Agent: quote" back\\slash \xc3\xa9t\xc3\xa9 tab\there \x01\x7f end\r\n'
                  b"Referer: http://r.test/\xe2\x82\xac?x=\"y\"\r\n"
                  b"X-Test: {\"json\": [1, \"two\"]}\r\n"
                  b"Authorization: Basic dXNlcjpwQHNz\r\n"
                  b"Cookie: c=val\"ue\\x\r\n")

SCENARIOS = {
    "plain": one(get("/plain?a=1&b=2", b"User-Agent: ua/1\r\nReferer: http://ref.test/\r\n"
                                       b"X-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n")),
    "no_args": one(get("/plain")),
    "empty_args": one(get("/plain?")),
    "escapes": one(get("/esc?q=%22quoted%22+%E2%82%AC", ESCAPE_HEADERS)),
    "encoded_uri": one(get("/a%20b/%2e%2e/c?x=%41")),
    "head": one(get("/head", method="HEAD"), method="HEAD"),
    "post_body": one(b"POST /post HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello"),
    "http10": one(b"GET /ten HTTP/1.0\r\n\r\n"),
    "backend_404": one(get("/missing")),
    "text_return": one(get("/text")),
    "keep_alive": keep_alive,
    "pipelined": pipelined,
    "conditional": lambda port: [one(get(t))(port) for t in ("/quiet/x", "/empty", "/loud")],
    "access_log_off": one(get("/off/x")),
    "r400_bad_request_line": answered_then_closed(b"GARBAGE\r\n\r\n"),
    "r400_no_host": answered_then_closed(b"GET /nohost HTTP/1.1\r\n\r\n"),
    "r408_header_timeout": header_timeout,
    "r413_body_too_large": answered_then_closed(
        b"POST /big HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n" + b"x" * 100),
    "r414_uri_too_long": answered_then_closed(get("/" + "u" * 1100)),
    "r494_header_too_large": answered_then_closed(get("/hdr", b"X-Big: " + b"h" * 1100 + b"\r\n")),
    "r502_refused": one(get("/two-dead/x")),
    "r502_then_retry": one(get("/retry/x")),
    "r504_timeout": one(get("/slow/timeout")),
    "r499_client_gone": client_gone_before_upstream,
    "r444": returns_444,
    "error_page_uri": one(get("/ep/x?q=1")),
    "error_page_code": one(get("/ep-code/x")),
    "error_page_named": one(get("/ep-named/y?q=2")),
}


# ---------------------------------------------------------------- running and reading


@pytest.fixture(scope="module")
def logs(differential):
    """{kind: {log: {scenario: [lines]}}} and {kind: {scenario: client view}}."""
    diff = differential(CONF, dead2=free_port())
    diff.backend.route("/slow/timeout", Reply(delay=3, body=b"late"))
    diff.backend.route("/slow/late", Reply(delay=1.5, body=b"late"))
    diff.backend.route("/missing", Reply(status=404, body=b"nope\n"))
    views: dict[str, dict[str, object]] = {}
    for kind in diff.procs:
        views[kind] = {}
        for name, script in SCENARIOS.items():
            views[kind][name] = diff.run(kind, script).result
            diff.run(kind, one(get(f"/__mark/{name}")))
    split: dict[str, dict[str, dict[str, list[str]]]] = {}
    for kind, proc in diff.procs.items():
        proc.stop()
        split[kind] = {log: split_by_marker((proc.prefix / "logs" / f"{log}.log")
                                            .read_bytes().decode("latin-1"))
                       for log in LOGS}
    if os.environ.get("ACCESS_LOG_DUMP"):
        for kind, per_log in split.items():
            for log, per_scenario in per_log.items():
                for name, lines in per_scenario.items():
                    print(f"{kind} {log} {name}: " + "\n    ".join(lines))
    return split, views


def split_by_marker(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    pending: list[str] = []
    for line in text.splitlines():
        m = re.search(r"/__mark/(\w+)", line)
        if m:
            out[m.group(1)] = pending
            pending = []
        else:
            pending.append(line)
    return out


def normalise(log: str, lines: list[str]) -> list[str]:
    if log == "custom":
        return normalise_custom(lines)
    return [re.sub(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", "[TIME]", line)
            for line in lines]


def normalise_custom(lines: list[str]) -> list[str]:
    connections: dict[str, str] = {}
    out = []
    for line in lines:
        values = line.split("|")
        if len(values) != len(CUSTOM_FIELDS):
            out.append(f"unparsed: {line}")
            continue
        fields = []
        for name, value in zip(CUSTOM_FIELDS, values):
            if name in TIME_FIELDS:
                value = re.sub(r"\d+\.\d+", "T", value)
            elif name == "server_port":
                value = "{port}"
            elif name == "connection":
                value = connections.setdefault(value, f"conn#{len(connections)}")
            fields.append(f"{name}={value}")
        out.append("\t".join(fields))
    return out


def compare(logs, log: str, scenario: str) -> list[str]:
    split, _ = logs
    kinds = list(split)
    ref = normalise(log, split[kinds[0]][log].get(scenario, ["<no marker>"]))
    for kind in kinds[1:]:
        got = normalise(log, split[kind][log].get(scenario, ["<no marker>"]))
        if log == "custom" and len(got) == len(ref):
            for r, g in zip(ref, got):
                diffs = [f"  {a.split('=')[0]}: {kinds[0]}={a.partition('=')[2]!r} "
                         f"{kind}={b.partition('=')[2]!r}"
                         for a, b in zip(r.split("\t"), g.split("\t")) if a != b]
                assert not diffs, f"{scenario}: fields differ\n" + "\n".join(diffs)
        assert got == ref, f"{scenario} in {log}.log:\n{kinds[0]}: {ref}\n{kind}: {got}"
    return ref


# ---------------------------------------------------------------- documented differences

ALL_LOGS = "*"
KNOWN = {   # (log or "*", scenario): how ngate differs; the test asserts that it still differs
    (ALL_LOGS, "r400_bad_request_line"): "$request is rebuilt from the parsed method and URI, "
                                         "not the raw request line",
    (ALL_LOGS, "r408_header_timeout"): "no access-log line for a head that timed out",
    (ALL_LOGS, "r414_uri_too_long"): "$request ends with the protocol; nginx logs the line as read",
    ("custom", "r400_no_host"): "$host/$uri empty for a head refused after parsing",
    ("custom", "r494_header_too_large"): "$uri empty for a head refused while parsing",
}


def known(log: str, scenario: str) -> str | None:
    return KNOWN.get((log, scenario)) or KNOWN.get((ALL_LOGS, scenario))


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("log", LOGS)
def test_access_log_line(logs, log, scenario):
    if known(log, scenario) is None or len(logs[0]) == 1:
        compare(logs, log, scenario)
        return
    with pytest.raises(AssertionError):     # documented: when it starts to match, drop it
        compare(logs, log, scenario)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_client_side(logs, scenario):
    _, views = logs
    kinds = list(views)
    for kind in kinds[1:]:
        assert views[kind][scenario] == views[kinds[0]][scenario], scenario


def reference(logs, log: str, scenario: str) -> list[str]:
    split, _ = logs
    return normalise(log, next(iter(split.values()))[log][scenario])


def test_custom_fields_have_their_meaning(logs):
    """The reference itself: what the tests above rely on."""
    compare = reference
    ka = compare(logs, "custom", "keep_alive")
    assert [re.search(r"connection_requests=(\d+)", line).group(1) for line in ka] == ["1", "2", "3"]
    pipe = compare(logs, "custom", "pipelined")
    assert [re.search(r"pipe=(\S)", line).group(1) for line in pipe] == [".", "p", "p"]
    (refused,) = compare(logs, "custom", "r502_refused")
    assert "upstream_status=502, 502" in refused
    assert "upstream_addr=127.0.0.1:" in refused and ", 127.0.0.1:" in refused
    assert compare(logs, "combined", "access_log_off") == []
    assert len(compare(logs, "cond", "conditional")) == 1
