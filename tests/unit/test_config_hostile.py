"""Hostile configuration input (issue 10, items 3 and 6), checked against nginx -t.

Values at and past nginx's limits (2^63 - 1 for numbers, sizes, offsets and milliseconds),
digits that are not ASCII, header names outside Latin-1, special files as includes, deep
nesting, log files that cannot be opened: ngate refuses what nginx refuses with nginx's words
and file:line, accepts what nginx accepts, and never answers with a traceback or a hang.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ngate import cli
from ngate.config import compile as compile_mod
from ngate.config import rewrite as rewrite_handlers
from ngate.config.loader import load_config
from ngate.errors import ConfigError
from tests.harness.processes import REPO_ROOT
from tests.unit._config_helpers import nginx_available, nginx_error, ngate_error, write_conf

MAX = 2 ** 63 - 1
S = "server { listen 127.0.0.1:8080; %s }"
L = "server { listen 127.0.0.1:8080; location / { %s } }"

# (http block body, nginx's message or "OK"); an error is on line 3 (the http body's first line)
CASES = [
    # header names and values outside Latin-1: nginx takes the bytes as written
    (L % "proxy_set_header X-\u023f \u023f;", "OK"),
    (L % "add_header X-\u023f \u023f always;", "OK"),
    (L % "fastcgi_param X-\u023f \u023f;", "OK"),
    (L % "proxy_hide_header X-\u023f;", "OK"),
    # times: milliseconds up to 2^63 - 1, no years or months; seconds values take them
    (L % f"proxy_read_timeout {'9' * 400}s;", '"proxy_read_timeout" directive invalid value'),
    (L % f"proxy_read_timeout {MAX // 1000 + 1}s;", '"proxy_read_timeout" directive invalid value'),
    (L % f"proxy_read_timeout {MAX // 1000}s;", "OK"),
    (L % f"proxy_read_timeout {MAX}ms;", "OK"),
    (L % "proxy_read_timeout 1y;", '"proxy_read_timeout" directive invalid value'),
    (L % "proxy_read_timeout 1M;", '"proxy_read_timeout" directive invalid value'),
    (L % "proxy_read_timeout \u0663s;", '"proxy_read_timeout" directive invalid value'),
    (L % "proxy_read_timeout '5 6';", "OK"),
    (L % "expires 1y;", "OK"),
    (L % f"expires {'9' * 30}y;", '"expires" directive invalid value'),
    (L % "expires 1ms;", '"expires" directive invalid value'),
    (L % "expires @25h;", '"expires" directive daily time value must be less than 24 hours'),
    (L % "expires modified @1h;",
     '"expires" directive daily time cannot be used with "modified" parameter'),
    # sizes (size_t: k, m) and offsets (off_t: also g)
    (L % f"client_max_body_size {MAX // 1024 ** 3 + 1}g;",
     '"client_max_body_size" directive invalid value'),
    (L % f"client_max_body_size {MAX // 1024 ** 3}g;", "OK"),
    (L % "client_max_body_size 99999999999999999999g;",
     '"client_max_body_size" directive invalid value'),
    (L % "proxy_buffer_size 1g;", '"proxy_buffer_size" directive invalid value'),
    (L % f"proxy_buffer_size {MAX + 1};", '"proxy_buffer_size" directive invalid value'),
    (S % "large_client_header_buffers 0 1k;", '"large_client_header_buffers" directive invalid value'),
    (S % f"large_client_header_buffers {MAX + 1} 1k;",
     '"large_client_header_buffers" directive invalid value'),
    # numbers (ngx_atoi): ASCII digits, at most 2^63 - 1
    (S % f"keepalive_requests {MAX + 1};", '"keepalive_requests" directive invalid number'),
    (S % f"keepalive_requests {MAX};", "OK"),
    (S % "return \u0663\u0660\u0660;", 'invalid return code "\u0663\u0660\u0660"'),
    (S % f"return {'9' * 50};", f'invalid return code "{"9" * 50}"'),
    (S % "return 000000000000000000000000200;", "OK"),
    (S % "error_page 404 =99999999999999999999999 /x;", 'invalid value "=99999999999999999999999"'),
    (S % "error_page \u0664\u0660\u0664 /x;", 'invalid value "\u0664\u0660\u0664"'),
    (S % "try_files $uri =99999999999999999999;", 'invalid code "=99999999999999999999"'),
    ("server { listen 127.0.0.1:99999999999999999999999; }",
     'invalid port in "127.0.0.1:99999999999999999999999" of the "listen" directive'),
    ("server { listen 127.0.0.1:8080 backlog=99999999999999999999; }",
     'invalid backlog "backlog=99999999999999999999"'),
    ("server { listen 127.0.0.1:8080 backlog=-1; }", 'invalid backlog "backlog=-1"'),
    ("server { listen 127.0.0.1:8080 rcvbuf=99999999999999999999; }",
     'invalid rcvbuf "rcvbuf=99999999999999999999"'),
    # variables: a name ends at a non-[A-Za-z0-9_] byte; `$http_` is the empty header; a
    # capture is one digit ($12 is $1 and "2"); `${1}` and `$0` are names nginx does not know
    (S % "return 200 \"$http_\u023f\";", "OK"),
    (S % "return 200 \"$arg_$cookie_$sent_http_$upstream_http_\";", "OK"),
    ("server { listen 127.0.0.1:8080; location ~ (a)(b) { return 200 \"$12\"; } }", "OK"),
    # structure: an if is never inside an if
    (L % "if ($uri) { if ($args) { return 200; } }", '"if" directive is not allowed here'),
]


IDS = [http.split("; ", 1)[-1][:48] for http, _ in CASES]


@pytest.mark.parametrize("http,message", CASES, ids=IDS)
def test_ngate_refuses_or_accepts_as_nginx(tmp_path, http, message):
    conf = write_conf(tmp_path, http)
    expected = "OK" if message == "OK" else f"{message} in {conf}:3"
    assert ngate_error(conf, str(tmp_path)) == expected


@pytest.mark.parametrize("http,message", CASES, ids=IDS)
def test_nginx_says_the_same(tmp_path, http, message):
    _need_nginx()
    conf = write_conf(tmp_path, http)
    expected = "OK" if message == "OK" else f"{message} in {conf}:3"
    assert nginx_error(conf, str(tmp_path)) == expected


@pytest.mark.parametrize("main,message", [
    (f"worker_shutdown_timeout {'9' * 300}s;", '"worker_shutdown_timeout" directive invalid value'),
    (f"events {{ worker_connections {MAX + 1}; }}", f'invalid number "{MAX + 1}"'),
    (f"worker_processes {MAX + 1};", '"worker_processes" directive invalid value'),
    ("worker_processes 5000;", "OK"),     # nginx -t accepts it; at run time no more than 1024
])
def test_main_values(tmp_path, main, message):
    text = main if "events" in main else main + "\nevents {}"
    conf = tmp_path / "nginx.conf"
    conf.write_text(text + "\n")
    expected = "OK" if message == "OK" else f"{message} in {conf}:1"
    assert ngate_error(str(conf), str(tmp_path)) == expected
    if nginx_available() or os.environ.get("CI") == "true":
        assert nginx_error(str(conf), str(tmp_path)) == expected


@pytest.mark.parametrize("text", ["${1}", "$0", "${10}", "$" + "0" * 4000])
def test_captures_are_one_digit(tmp_path, text):
    """nginx knows `$1`..`$9` only; other digit names are unknown variables (reported by nginx
    without file:line, as every unknown variable: see test_config_errors.DIFFERENT)."""
    name = text.strip("${}")
    conf = write_conf(tmp_path, f"server {{ listen 127.0.0.1:8080; return 200 \"{text}\"; }}")
    assert ngate_error(conf, str(tmp_path)) == f'unknown "{name}" variable in {conf}:3'
    if len(text) < 10 and (nginx_available() or os.environ.get("CI") == "true"):
        assert nginx_error(conf, str(tmp_path)) == f'unknown "{name}" variable'


@pytest.mark.parametrize("token,message", [
    ("b" * 4095, "OK"),
    ("b" * 4096, 'too long parameter "bbbbbbbbbb..." started'),
    ('"' + "b" * 4094 + '"', "OK"),
    ("'" + "b" * 4095 + "'", 'too long parameter "bbbbbbbbbb..." started'),
    ('"' + "b" * 5000 + '"', 'too long parameter, probably missing terminating """ character'),
    ('"' + "\u023f" * 2047 + '"', "OK"),                       # bytes count, not characters
    ('"' + "\u023f" * 2048 + '"',
     'too long parameter, probably missing terminating """ character'),
    ("x;\n# " + "c" * 4094, 'too long parameter "# cccccccc..." started'),    # comments too
], ids=["4095", "4096", "q4094", "sq4095", "q5000", "utf8-4094", "utf8-4096", "comment"])
def test_tokens_longer_than_nginx_s_buffer(tmp_path, token, message):
    """nginx reads a config through a 4096-byte buffer: a longer token is refused."""
    conf = write_conf(tmp_path, f"server {{ listen 127.0.0.1:8080;\nreturn 200 {token}; }}")
    line = 4 + token.count("\n")
    expected = "OK" if message == "OK" else f"{message} in {conf}:{line}"
    assert ngate_error(conf, str(tmp_path)) == expected
    if nginx_available() or os.environ.get("CI") == "true":
        assert nginx_error(conf, str(tmp_path)) == expected


def test_deep_nesting_is_read_without_recursion(tmp_path):
    """3000 nested `if`: nginx refuses the second one; so does ngate (the reader keeps no
    Python stack per block)."""
    body = "server { listen 127.0.0.1:8080;\n" + "if ($uri) {\n" * 3000 + "}\n" * 3000 + "}"
    conf = write_conf(tmp_path, body)
    assert ngate_error(conf, str(tmp_path)) == \
        f'"if" directive is not allowed here in {conf}:5'


def test_too_deep_locations_are_an_emerg(tmp_path):
    """nginx takes 3000 nested locations; ngate refuses them with an [emerg] at the block where
    its compiler gives up (a documented limit), never a RecursionError."""
    body = ("server { listen 127.0.0.1:8080;\n" + "location /a {\n" * 3000 + "return 200;\n"
            + "}\n" * 3000 + "}")
    conf = write_conf(tmp_path, body)
    err = ngate_error(conf, str(tmp_path))
    assert err.startswith('"location" directive is nested too deeply in ' + conf + ":"), err


def test_include_of_a_directory(tmp_path):
    """nginx: `[crit] pread() "dir" failed (21: Is a directory)`, without file:line; ngate says
    the same as an [emerg] with the include's file:line."""
    (tmp_path / "sub").mkdir()
    conf = write_conf(tmp_path, f"include {tmp_path}/sub;")
    assert ngate_error(conf, str(tmp_path)) == \
        f'pread() "{tmp_path}/sub" failed (21: Is a directory) in {conf}:3'
    (tmp_path / "sub" / "a.conf").write_text("\n")
    (tmp_path / "sub" / "dir").mkdir()          # a glob matches directories too, in nginx
    conf = write_conf(tmp_path, f"include {tmp_path}/sub/*;")
    assert ngate_error(conf, str(tmp_path)) == \
        f'pread() "{tmp_path}/sub/dir" failed (21: Is a directory) in {conf}:3'


# ---------------------------------------------------------------- special files, via `-t`

def ngate_t(conf: str, prefix, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ngate", "-p", str(prefix), "-c", conf, "-t"],
                          stdin=stdin, capture_output=True, text=True, timeout=20,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/stdin", "/proc/self/mem", "/dev/null"])
def test_special_files_are_empty_includes(tmp_path, path):
    """nginx reads st_size bytes of a config file: these are empty, never an endless read, a
    read that blocks (stdin is a pipe nobody writes to), or `open() "None" failed`."""
    conf = write_conf(tmp_path, f"include {path};")
    r, w = os.pipe()
    try:
        res = ngate_t(conf, tmp_path, stdin=r)
    finally:
        os.close(r)
        os.close(w)
    assert res.returncode == 0, res.stderr
    assert res.stderr.endswith(f"ngate: configuration file {conf} test is successful\n")
    if nginx_available() or os.environ.get("CI") == "true":
        assert nginx_error(conf, str(tmp_path)) == "OK"


def test_main_file_from_dev_zero(tmp_path):
    res = ngate_t("/dev/zero", tmp_path)
    assert res.returncode == 1
    assert res.stderr.startswith('ngate: [emerg] no "events" section in configuration\n')


# ---------------------------------------------------------------- log files opened by -t

@pytest.mark.parametrize("directive", ["access_log", "error_log"])
def test_a_log_that_cannot_be_opened_fails_the_test(tmp_path, directive):
    line = f"{directive} {tmp_path}/missing/x.log;\n"
    if directive == "error_log":        # at the main level (ngate warns below it)
        conf = write_conf(tmp_path, "server { listen 127.0.0.1:8080; }", main=line + "events {}\n")
    else:
        conf = write_conf(tmp_path, line + "server { listen 127.0.0.1:8080; }")
    res = ngate_t(conf, tmp_path)
    message = f'open() "{tmp_path}/missing/x.log" failed (2: No such file or directory)'
    assert res.returncode == 1
    assert res.stderr == (f"ngate: [emerg] {message}\n"
                          f"ngate: configuration file {conf} test failed\n")
    if nginx_available() or os.environ.get("CI") == "true":
        assert nginx_error(conf, str(tmp_path)) == message


def test_the_test_creates_the_logs_as_nginx(tmp_path, capfd):
    conf = write_conf(tmp_path, f"access_log {tmp_path}/a.log;\n"
                      f"server {{ listen 127.0.0.1:8080; access_log {tmp_path}/$host.log; }}",
                      main=f"error_log {tmp_path}/e.log;\nevents {{}}\n")
    assert cli.main(["-p", str(tmp_path), "-c", conf, "-t", "-q"]) == 0
    assert (tmp_path / "a.log").exists() and (tmp_path / "e.log").exists()
    assert not (tmp_path / "$host.log").exists()      # with variables: opened per request


# ---------------------------------------------------------------- one place for every failure

def test_an_unforeseen_handler_failure_is_an_emerg_at_its_line(tmp_path, monkeypatch, capfd):
    def boom(*args):
        raise ZeroDivisionError("boom")
    monkeypatch.setattr(rewrite_handlers, "ReturnOp", boom)
    conf = write_conf(tmp_path, "server { listen 127.0.0.1:8080;\nreturn 200 x; }")
    with pytest.raises(ConfigError) as e:
        load_config(conf, str(tmp_path))
    assert str(e.value) == \
        f'"return" directive invalid value (ZeroDivisionError: boom) in {conf}:4'
    assert cli.main(["-p", str(tmp_path), "-c", conf, "-t"]) == 1
    err = capfd.readouterr().err
    assert err == (f'ngate: [emerg] "return" directive invalid value (ZeroDivisionError: boom) '
                   f"in {conf}:4\nngate: configuration file {conf} test failed\n")


def test_an_unforeseen_build_failure_is_an_emerg(tmp_path, monkeypatch, capfd):
    def boom(*args):
        raise RuntimeError("boom")
    monkeypatch.setattr(compile_mod, "build_matcher", boom)
    conf = write_conf(tmp_path, "server { listen 127.0.0.1:8080; location / { } }")
    assert cli.main(["-p", str(tmp_path), "-c", conf, "-t"]) == 1
    err = capfd.readouterr().err
    assert err.startswith("ngate: [emerg] configuration failed to load (RuntimeError: boom)\n")
    assert "Traceback" not in err


def test_a_reload_survives_any_loader_failure(tmp_path, capfd):
    from ngate.supervisor.master import Master
    conf = write_conf(tmp_path, "server { listen 127.0.0.1:8080; }")
    old = load_config(conf, str(tmp_path))

    def loader():
        raise OverflowError("int too large to convert to float")
    master = Master(old, loader, None)
    master.reload()
    assert master.config is old and master.generation == 0
    assert "[emerg]" in capfd.readouterr().err


def test_expires_dates_past_time_t_are_nginx_s():
    """ngx_http_time: the 64-bit sum wraps (to the epoch), past 9999 it is Dec 31, 9999 (the
    dates nginx sends for `expires 9223372036854775807s` and `expires 315360000000s`)."""
    from ngate.static.expires import http_time
    now = 1_800_000_000
    assert http_time(now + MAX) == b"Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_time(now + 315360000000) == b"Fri, 31 Dec 9999 23:59:59 GMT"
    assert http_time(now) == b"Fri, 15 Jan 2027 08:00:00 GMT"


def test_no_more_than_1024_workers(tmp_path, capfd):
    """nginx's ngx_spawn_process: `no more than 1024 processes can be spawned` (NGX_MAX_PROCESSES);
    a worker_processes above it is accepted by -t as nginx does, and never forks without end."""
    from ngate.supervisor.master import MAX_PROCESSES, Master
    conf = write_conf(tmp_path, "server { listen 127.0.0.1:8080; }")
    master = Master(load_config(conf, str(tmp_path)), None, None)
    master.workers = {pid: object() for pid in range(1, MAX_PROCESSES + 1)}
    assert master.spawn(0) is False
    assert "[alert]" in capfd.readouterr().err and MAX_PROCESSES == 1024


def _need_nginx():
    if not nginx_available():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is required under CI")
        pytest.skip("nginx is not installed")
