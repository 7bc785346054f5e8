"""`syslog:` access and error logs of nginx and ngate, compared datagram by datagram.

One nginx.conf sends access-log lines and error-log lines to a UDP socket on 127.0.0.1 and to a
unix datagram socket (the `/dev/log` shape), with the parameters users write (facility,
severity, tag, nohostname, a log_format, `if=`, two targets at once), and one target nothing
listens on (nginx's send error: `[error] send() failed (111: Connection refused)` in the main
log and `[warn] send() to syslog failed while logging request, ...` in the request's).
Each program gets its own receivers; what they received is compared byte for byte after
normalising only what differs by run: the times (syslog header, error-log time, $time_local),
pid#tid, connection numbers, the listening port and the prefix.
"""
from __future__ import annotations

import os
import re
import socket
import time

import pytest

from tests.harness.client import Connection
from tests.harness.differential import kinds
from tests.harness.paths import readable_tmpdir
from tests.harness.processes import ProxyProcess, fresh_prefix, require_kind

CONF = """
http {
    server_tokens off;
    log_format short '$request_method $uri $status "$http_x_test"';
    access_log {prefix}/logs/access.log;
    error_log {prefix}/logs/http-error.log info;

    server {
        listen 127.0.0.1:{port};
        server_name syslog.test;
        root {prefix}/html;
        error_log syslog:server=127.0.0.1:{udp},facility=local0,tag=ngx_err;

        location = /ok { return 200 "ok\\n"; }
        location /a { access_log syslog:server=127.0.0.1:{udp}; }
        location /u {
            access_log syslog:server=unix:{sock},facility=user,severity=notice,nohostname short;
        }
        location /both {
            access_log syslog:server=127.0.0.1:{udp},tag=one short;
            access_log syslog:server=unix:{sock} short;
        }
        location /if { access_log syslog:server=127.0.0.1:{udp} short if=$arg_log; }
        location /e {
            error_log syslog:server=unix:{sock},severity=alert,nohostname warn;
            error_log syslog:server=127.0.0.1:{udp},tag=second info;
        }
        location /dead {
            access_log syslog:server=127.0.0.1:{dead} short;
            error_log {prefix}/logs/dead.log info;
            return 204;
        }
    }
}
"""

REQUESTS = [
    ("GET", "/a/missing", {}),
    ("GET", "/ok", {}),                       # no syslog target: nothing
    ("GET", "/u/x", {"X-Test": 'quote" and \x01'}),
    ("HEAD", "/both", {}),
    ("GET", "/if?log=", {}),
    ("GET", "/if?log=0", {}),
    ("GET", "/if?log=yes", {}),
    ("GET", "/e/missing", {"Referer": "http://r.test/"}),
    ("GET", "/dead", {}),
    ("GET", "/dead", {}),                     # the ICMP of the first makes this one fail
]

STAMP = r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"


def _udp_receiver() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def _drain(sock: socket.socket, wait: float) -> list[bytes]:
    out = []
    sock.settimeout(wait)
    try:
        while True:
            out.append(sock.recv(65536))
            sock.settimeout(0.2)
    except (socket.timeout, BlockingIOError):
        pass
    return out


def normalise(data: bytes, port: int, prefix: str) -> str:
    text = data.decode("latin-1")
    text = re.sub(r"^(<\d+>)" + STAMP, r"\1STAMP", text)
    text = re.sub(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: (\*\d+ )?",
                  lambda m: f"TIME [{m.group(1)}] PID: " + ("*N " if m.group(2) else ""), text)
    text = re.sub(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", "[TIME_LOCAL]", text)
    return text.replace(f":{port}", ":{port}").replace(prefix, "{prefix}")


def run(kind: str, base) -> dict:
    require_kind(kind)
    prefix = fresh_prefix(base, kind)
    os.chmod(base, 0o755)
    udp = _udp_receiver()
    dead = _udp_receiver()
    dead_port = dead.getsockname()[1]
    dead.close()                              # a port nothing listens on
    sock_path = str(base / f"{kind}.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unix.bind(sock_path)
    os.chmod(sock_path, 0o777)                # nginx's workers run as nobody
    (prefix / "html").mkdir()
    os.chmod(prefix / "html", 0o755)
    try:
        with ProxyProcess(kind, CONF, prefix, udp=udp.getsockname()[1], sock=sock_path,
                          dead=dead_port) as proc:
            _drain(udp, 0.3)                  # nothing is expected before the requests
            got = []
            for method, target, headers in REQUESTS:
                with Connection(proc.port) as conn:
                    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                    conn.send(f"{method} {target} HTTP/1.1\r\nHost: syslog.test\r\n{extra}"
                              f"Connection: close\r\n\r\n".encode("latin-1"))
                    conn.closed_by_peer(5.0)
                time.sleep(0.1)               # (the ICMP of a refused datagram comes back)
                got.append([("udp", d) for d in _drain(udp, 0.5)]
                           + [("unix", d) for d in _drain(unix, 0.1)])
            port = proc.port
        errors = (prefix / "logs" / "dead.log").read_text(errors="replace")
        main_errors = (prefix / "logs" / "error.log").read_text(errors="replace")
    finally:
        udp.close()
        unix.close()
    norm = [[(where, normalise(d, port, str(prefix))) for where, d in step] for step in got]
    wanted = [normalise(line.encode("latin-1", "replace"), port, str(prefix))
              for line in (main_errors + errors).splitlines() if "syslog" in line or
              "send() failed" in line]
    return {"datagrams": norm, "errors": wanted}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    with readable_tmpdir("syslog-") as base:
        return {kind: run(kind, base) for kind in kinds()}


def test_what_nginx_sends_is_what_the_test_expects(results):
    """The reference itself (whichever program comes first, nginx by default): each request's
    datagrams, in order."""
    ref = results[kinds()[0]]["datagrams"]
    host = socket.gethostname().lower()
    a, ok, u, both, if_empty, if_zero, if_yes, e, dead1, dead2 = ref

    def server_error(uri: str, target: str, method: str = "GET") -> tuple:
        """The server-level error_log's line for a missing file (facility local0, error)."""
        return ("udp", f'<131>STAMP {host} ngx_err: TIME [error] PID: *N open() '
                       f'"{{prefix}}/html{uri}" failed (2: No such file or directory), client: '
                       f'127.0.0.1, server: syslog.test, request: "{method} {target} HTTP/1.1", '
                       f'host: "syslog.test"')
    assert a == [server_error("/a/missing", "/a/missing"),
                 ("udp", f'<190>STAMP {host} nginx: 127.0.0.1 - - [TIME_LOCAL] '
                         f'"GET /a/missing HTTP/1.1" 404 146 "-" "-"')]
    assert ok == []
    assert u == [server_error("/u/x", "/u/x"),
                 ("unix", '<13>STAMP nginx: GET /u/x 404 "quote\\x22 and \\x01"')]
    assert sorted(both) == sorted([server_error("/both", "/both", "HEAD"),
                                   ("udp", f'<190>STAMP {host} one: HEAD /both 404 "-"'),
                                   ("unix", f'<190>STAMP {host} nginx: HEAD /both 404 "-"')])
    assert if_empty == [server_error("/if", "/if?log=")]
    assert if_zero == [server_error("/if", "/if?log=0")]
    assert if_yes == [server_error("/if", "/if?log=yes"),
                      ("udp", f'<190>STAMP {host} nginx: GET /if 404 "-"')]
    line = ('TIME [error] PID: *N open() "{prefix}/html/e/missing" failed (2: No such file or '
            'directory), client: 127.0.0.1, server: syslog.test, request: "GET /e/missing '
            'HTTP/1.1", host: "syslog.test", referrer: "http://r.test/"')
    # an error_log line's severity is its level's (error), whatever severity= says
    assert sorted(e) == [("udp", f"<187>STAMP {host} second: " + line),
                         ("unix", "<187>STAMP nginx: " + line)]
    assert dead1 == dead2 == []
    errors = results[kinds()[0]]["errors"]
    assert errors == [
        "TIME [error] PID: send() failed (111: Connection refused)",
        'TIME [warn] PID: *N send() to syslog failed while logging request, client: 127.0.0.1, '
        'server: syslog.test, request: "GET /dead HTTP/1.1", host: "syslog.test"',
    ], errors


def test_same_datagrams(results):
    names = list(results)
    ref = results[names[0]]["datagrams"]
    for kind in names[1:]:
        got = results[kind]["datagrams"]
        for (method, target, _), want, have in zip(REQUESTS, ref, got):
            assert sorted(have) == sorted(want), f"{method} {target}: {kind} differs"


def test_same_send_errors(results):
    names = list(results)
    for kind in names[1:]:
        assert results[kind]["errors"] == results[names[0]]["errors"]
