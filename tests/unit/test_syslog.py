"""`syslog:` log targets: the parameters and nginx's errors for them (checked against
`nginx -t`), the header, and the peer's send / error / reconnect (real datagram sockets)."""
from __future__ import annotations

import os
import socket

import pytest

from ngate.config.logs import syslog_server
from ngate.config.model_logs import SyslogServer
from ngate.errors import ConfigError
from ngate.observability import error_log, syslog
from tests.unit._config_helpers import load_http, nginx_available, nginx_error, ngate_error, \
    write_conf

# (access_log / error_log line in http, nginx's [emerg] message)
ERRORS = [
    ("access_log syslog:;", 'unknown syslog parameter ""'),
    ("access_log syslog:tag=x;", "no syslog server specified"),
    ("access_log syslog:nohostname;", "no syslog server specified"),
    ("access_log syslog:server=;", 'no host in syslog server ""'),
    ("access_log syslog:server=:514;", 'no host in syslog server ":514"'),
    ("access_log syslog:server=127.0.0.1:abc;", 'invalid port in syslog server "127.0.0.1:abc"'),
    ("access_log syslog:server=127.0.0.1:0;", 'invalid port in syslog server "127.0.0.1:0"'),
    ("access_log syslog:server=127.0.0.1:70000;",
     'invalid port in syslog server "127.0.0.1:70000"'),
    ("access_log syslog:server=1.2.3.4:;", 'invalid port in syslog server "1.2.3.4:"'),
    ("access_log syslog:server=1.2.3.4:514:1;", 'invalid port in syslog server "1.2.3.4:514:1"'),
    ("access_log syslog:server=1.2.3.4:+5;", 'invalid port in syslog server "1.2.3.4:+5"'),
    ("access_log syslog:server=::1;", 'invalid port in syslog server "::1"'),
    ("access_log syslog:server=256.1.1.1;", 'host not found in syslog server "256.1.1.1"'),
    ("access_log syslog:server=nonexistent.invalid;",
     'host not found in syslog server "nonexistent.invalid"'),
    ("access_log syslog:server=http://1.2.3.4;", 'invalid host in syslog server "http://1.2.3.4"'),
    ("access_log syslog:server=1.2.3.4/x;", 'invalid host in syslog server "1.2.3.4/x"'),
    ("access_log syslog:server=1.2.3.4?x;", 'invalid host in syslog server "1.2.3.4?x"'),
    ("access_log syslog:server=[::1;", 'invalid host in syslog server "[::1"'),
    ("access_log syslog:server=[::1]x;", 'invalid host in syslog server "[::1]x"'),
    ("access_log syslog:server=[::1]/x;", 'invalid host in syslog server "[::1]/x"'),
    ("access_log syslog:server=[::1]:;", 'invalid port in syslog server "[::1]:"'),
    ("access_log syslog:server=[::1]:0;", 'invalid port in syslog server "[::1]:0"'),
    ("access_log syslog:server=[];", 'no host in syslog server "[]"'),
    ("access_log syslog:server=[zz];", 'invalid IPv6 address in syslog server "[zz]"'),
    ("access_log syslog:server=unix:;",
     'no path in the unix domain socket in syslog server "unix:"'),
    ("access_log syslog:server=unix:/" + "a" * 107 + ";",
     'too long path in the unix domain socket in syslog server "unix:/' + "a" * 107 + '"'),
    ("access_log syslog:server=1.2.3.4,server=1.2.3.5;", 'duplicate syslog "server"'),
    ("access_log syslog:server=1.2.3.4,facility=foo;", 'unknown syslog facility "foo"'),
    ("access_log syslog:server=1.2.3.4,facility=;", 'unknown syslog facility ""'),
    ("access_log syslog:server=1.2.3.4,facility=user,facility=user;",
     'duplicate syslog "facility"'),
    ("access_log syslog:server=1.2.3.4,severity=err;", 'unknown syslog severity "err"'),
    ("access_log syslog:server=1.2.3.4,severity=info,severity=info;",
     'duplicate syslog "severity"'),
    ("access_log syslog:server=1.2.3.4,tag=a-b;",
     'syslog "tag" only allows alphanumeric characters and underscore'),
    ("access_log syslog:server=1.2.3.4,tag=" + "a" * 33 + ";", "syslog tag length exceeds 32"),
    ("access_log syslog:server=1.2.3.4,tag=a,tag=b;", 'duplicate syslog "tag"'),
    ("access_log syslog:server=1.2.3.4,nohostname=1;", 'unknown syslog parameter "nohostname=1"'),
    ("access_log syslog:server=1.2.3.4,NOHOSTNAME;", 'unknown syslog parameter "NOHOSTNAME"'),
    ("access_log syslog:Server=1.2.3.4;", 'unknown syslog parameter "Server=1.2.3.4"'),
    ("access_log syslog:server=1.2.3.4,foo=bar,x;", 'unknown syslog parameter "foo=bar"'),
    ("access_log syslog:server=1.2.3.4,;", 'unknown syslog parameter ""'),
    # access_log's other arguments: the format is the second argument whenever there is one
    ("access_log syslog:server=1.2.3.4 buffer=10k;", 'unknown log format "buffer=10k"'),
    ("access_log x.log flush=1s;", 'unknown log format "flush=1s"'),
    ("access_log syslog:server=1.2.3.4 combined buffer=10k;", "logs to syslog cannot be buffered"),
    ("access_log syslog:server=1.2.3.4 combined gzip;", "logs to syslog cannot be buffered"),
    ("access_log syslog:server=1.2.3.4 combined flush=1s;",
     'no buffer is defined for access_log "syslog:server=1.2.3.4"'),
    ("access_log x.log combined buffer=0;", 'invalid buffer size "0"'),
    ("access_log x.log combined buffer=abc;", 'invalid buffer size "abc"'),
    ("access_log x.log combined flush=abc buffer=1k;", 'invalid flush time "abc"'),
    ("access_log x.log combined gzip=10;", 'invalid compression level "10"'),
    ("access_log x.log combined gzipx;", 'invalid parameter "gzipx"'),
    ("error_log syslog:server=1.2.3.4,severity=bogus;", 'unknown syslog severity "bogus"'),
    ("error_log syslog:server=1.2.3.4 bogus;", 'invalid log level "bogus"'),
    ("error_log syslog:bogus bogus;", 'unknown syslog parameter "bogus"'),
]

ACCEPTED = [
    "access_log syslog:server=127.0.0.1;",
    "access_log syslog:server=localhost;",
    "access_log syslog:server=1.2.3.4:0514;",
    "access_log syslog:server=[::1]:99;",
    "access_log SYSLOG:server=1.2.3.4;",            # not a syslog target: a file of that name
    "access_log syslog:server=UNIX:/x;",
    "access_log syslog:server=unix:relative/x;",
    "access_log syslog:server=unix:/x:y;",
    "access_log syslog:server=1.2.3.4,tag=;",
    "access_log syslog:server=1.2.3.4,tag=" + "A_z09" * 6 + "ab;",
    "access_log syslog:severity=debug,server=1.2.3.4,nohostname combined if=$arg_a;",
    "error_log syslog:server=1.2.3.4 info; error_log syslog:server=1.2.3.4 info;",
]


def _expected(tmp_path, message: str) -> str:
    return f"{message} in {tmp_path}/nginx.conf:3"


@pytest.mark.parametrize("http,message", ERRORS)
def test_error(tmp_path, http, message):
    assert ngate_error(write_conf(tmp_path, http), str(tmp_path)) == _expected(tmp_path, message)


@pytest.mark.parametrize("http", ACCEPTED)
def test_accepted(tmp_path, http):
    assert ngate_error(write_conf(tmp_path, http), str(tmp_path)) == "OK"


def _need_nginx():
    if not nginx_available():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is required under CI")
        pytest.skip("nginx is not installed")


@pytest.mark.parametrize("http,message", ERRORS)
def test_nginx_says_the_same(tmp_path, http, message):
    _need_nginx()
    assert nginx_error(write_conf(tmp_path, http), str(tmp_path)) == _expected(tmp_path, message)


@pytest.mark.parametrize("http", ACCEPTED)
def test_nginx_accepts_the_same(tmp_path, http):
    _need_nginx()
    assert nginx_error(write_conf(tmp_path, http), str(tmp_path)) == "OK"


# ---------------------------------------------------------------- the parsed target

@pytest.mark.parametrize("value,expected", [
    ("syslog:server=127.0.0.1", SyslogServer("127.0.0.1:514", socket.AF_INET, ("127.0.0.1", 514))),
    ("syslog:server=localhost:5140,facility=user,severity=alert,tag=SEE_this,nohostname",
     SyslogServer("127.0.0.1:5140", socket.AF_INET, ("127.0.0.1", 5140), 1, 1, "SEE_this", True)),
    ("syslog:severity=debug,server=[::1]", SyslogServer("[::1]:514", socket.AF_INET6,
                                                        ("::1", 514, 0, 0), 23, 7)),
    ("syslog:server=unix:/dev/log,facility=local0",
     SyslogServer("unix:/dev/log", socket.AF_UNIX, "/dev/log", 16)),
])
def test_parsed(value, expected):
    assert syslog_server(value, None) == expected


def test_model_carries_the_targets(tmp_path):
    cfg = load_http(tmp_path, "access_log syslog:server=127.0.0.1:9 combined if=$arg_x;\n"
                              "error_log syslog:server=127.0.0.1:9,tag=t warn;\n"
                              "server { listen 127.0.0.1:8080; }")
    conf = cfg.http_conf
    (alog,) = conf.log.access_log
    assert alog.syslog.address == ("127.0.0.1", 9) and alog.condition is not None
    (elog,) = conf.error_log
    assert (elog.level, elog.syslog.tag, elog.path) == ("warn", "t", "syslog:server=127.0.0.1:9,tag=t")
    with pytest.raises(ConfigError):
        syslog_server("syslog:server=1.2.3.4,tag=a b", None)


# ---------------------------------------------------------------- header and body (sans-IO)

def test_header():
    s = SyslogServer("x", socket.AF_INET, ("127.0.0.1", 514))
    assert syslog.header(s, 6, "vm", "Dec  7 09:05:01") == b"<190>Dec  7 09:05:01 vm nginx: "
    s = SyslogServer("x", socket.AF_INET, ("127.0.0.1", 514), facility=1, tag="T",
                     nohostname=True)
    assert syslog.header(s, 3, "vm", "Jan 31 23:59:59") == b"<11>Jan 31 23:59:59 T: "


def test_syslog_time_shape():
    import re
    import time
    stamp = syslog.syslog_time()
    assert re.fullmatch(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d", stamp)
    t = time.localtime()
    assert stamp[4:6] == "%2d" % t.tm_mday or stamp[4:6] == "%2d" % time.localtime().tm_mday


def test_error_body_is_cut_as_nginx_cuts_a_line():
    assert syslog.error_body(b"abc\n") == b"abc"
    assert len(syslog.error_body(b"x" * 5000 + b"\n")) == 2047


def test_hostname_is_lower_case():
    assert syslog.hostname() == socket.gethostname().lower()


# ---------------------------------------------------------------- the peer: real sockets

@pytest.fixture
def logged(monkeypatch):
    lines = []
    monkeypatch.setattr(error_log, "log", lambda level, msg, conn=None: lines.append((level, msg)))
    return lines


def _udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    return s


def test_peer_sends_and_reconnects_after_refused(logged):
    rx = _udp()
    port = rx.getsockname()[1]
    peer = syslog.SyslogPeer(syslog_server(f"syslog:server=127.0.0.1:{port}", None))
    assert peer.sock is None                    # made at the first message
    assert peer.send(b"one") == 3
    assert rx.recv(100) == b"one"
    rx.close()
    assert peer.send(b"two") == 3               # the ICMP comes back after it...
    import time
    time.sleep(0.05)
    assert peer.send(b"three") == syslog.NGX_ERROR      # ...and fails the next one
    assert logged == [("error", "send() failed (111: Connection refused)")]
    assert peer.sock is None
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", port))
    rx.settimeout(2)
    assert peer.send(b"four") == 4              # a new socket
    assert rx.recv(100) == b"four"
    rx.close()
    peer.close()


def test_peer_unix_datagram(tmp_path, logged):
    path = str(tmp_path / "log.sock")
    peer = syslog.SyslogPeer(syslog_server(f"syslog:server=unix:{path}", None))
    assert peer.send(b"lost") == syslog.NGX_ERROR
    assert logged == [("alert", "connect() failed (2: No such file or directory)")]
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(2)
    assert peer.send(b"hello") == 5
    assert rx.recv(100) == b"hello"
    # a full receive queue: the send would block, the message is dropped, nothing is logged
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    results = {peer.send(b"x" * 512) for _ in range(2000)}
    assert syslog.NGX_AGAIN in results
    assert len(logged) == 1
    rx.close()
    peer.close()


def test_error_log_target_does_not_log_into_itself(tmp_path):
    """An error of a syslog target's own send goes to the other main targets only."""
    log = error_log.ErrorLog()
    rx = _udp()
    port = rx.getsockname()[1]
    spec = syslog_server(f"syslog:server=127.0.0.1:{port}", None)
    path = str(tmp_path / "e.log")
    saved = error_log.LOG
    error_log.LOG = log
    try:
        log.set_targets([(path, "info"), (f"syslog:server=127.0.0.1:{port}", "info", spec)],
                        console=False)
        log.log("warn", "first", 7)
        got = rx.recv(3000)
        assert got.startswith(b"<188>") and got.endswith(b"[warn] %d#%d: *7 first"
                                                         % (log.pid, log.pid))
        assert b" nginx: 20" in got
        rx.close()
        log.log("error", "second")
        import time
        time.sleep(0.05)
        log.log("error", "third")
        text = open(path).read()
        assert "send() failed (111: Connection refused)" in text
        assert text.count("send() failed") == 1
        syslog_target = log.targets[1]
        log.reopen()                                 # USR1 keeps a syslog target as it is
        assert log.targets[1] is syslog_target
    finally:
        error_log.LOG = saved
        log.set_targets([], console=False)


# ---------------------------------------------------------------- the access log writer

def test_access_writer_line_and_tunnel_line(monkeypatch):
    """SyslogWriter: header + the log_format line without its newline; a request that becomes
    a tunnel sends the same datagram at the tunnel's end (freeze / write_frozen); a failed
    send is a [warn] of the request, with its context."""
    from ngate.config.model import AccessLog, LogFormat
    from ngate.observability import access_log as al
    from ngate.routing.variables import compile_template
    from tests.unit.test_access_log import _tunnel_ctx

    warned = []
    monkeypatch.setattr(error_log, "log", lambda level, msg, conn=None: None)
    monkeypatch.setattr(error_log, "warn", lambda msg, conn=None: warned.append((msg, conn)))
    rx = _udp()
    port = rx.getsockname()[1]
    fmt = LogFormat("f", compile_template('$remote_addr "$request" $status $body_bytes_sent'),
                    "default")
    spec = AccessLog(f"syslog:server=127.0.0.1:{port},tag=ws",
                     fmt, syslog=syslog_server(f"syslog:server=127.0.0.1:{port},tag=ws", None))
    w = al.writer_for(spec)
    assert isinstance(w, al.SyslogWriter)
    whole = _tunnel_ctx()
    whole.body_bytes_sent = 1000
    w.write(whole)
    direct = rx.recv(3000)
    end = al.TunnelEnd.freeze((w,), _tunnel_ctx())
    end.write(1000, 50)
    frozen = rx.recv(3000)
    host = socket.gethostname().lower().encode()
    assert direct == frozen
    assert direct.startswith(b"<190>") and direct.endswith(
        b" " + host + b' ws: 192.0.2.7 "GET /ws HTTP/1.1" 101 1000')
    rx.close()
    import time
    w.write(whole)                              # the ICMP of this one...
    time.sleep(0.05)
    w.write(whole)                              # ...fails this one
    assert warned == [('send() to syslog failed while logging request, client: 192.0.2.7, '
                       'request: "GET /ws HTTP/1.1", upstream: "http://127.0.0.1:9000/ws"', 3)]
    w.peer.close()


def test_a_long_error_line_is_cut_as_nginx_cuts_it(tmp_path):
    """nginx's error line is at most 2047 bytes and its newline (NGX_MAX_ERROR_STR), in a file
    and in a syslog datagram (without the newline) alike."""
    log = error_log.ErrorLog()
    rx = _udp()
    port = rx.getsockname()[1]
    spec = syslog_server(f"syslog:server=127.0.0.1:{port},nohostname", None)
    path = tmp_path / "e.log"
    try:
        log.set_targets([(str(path), "info"), ("syslog:x", "info", spec)], console=False)
        log.log("error", "x" * 5000, 1)
        line = path.read_bytes()
        assert len(line) == 2048 and line.endswith(b"x\n")
        got = rx.recv(5000)
        assert got.endswith(line[:-1]) and got.startswith(b"<187>")
        log.log("error", "short")
        assert path.read_bytes().endswith(b": short\n")
    finally:
        rx.close()
        log.set_targets([], console=False)
