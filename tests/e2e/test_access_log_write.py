"""When access-log lines reach the file, on nginx and ngate: at once without `buffer=`, only
when the buffer fills or the server stops with `buffer=` / `flush=`. (Tools that tail the log,
fail2ban for one, and nginx's own tests read it right after a response.)"""
from __future__ import annotations

import os
import signal

from tests.harness.client import Connection, build_request

CONF = """
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 64; }
http {
    log_format short '$request_uri $status';
    access_log {prefix}/logs/now.log short;
    server {
        listen 127.0.0.1:{port};
        location / { return 200 "ok\\n"; }
        location /held/ {
            access_log {prefix}/logs/held.log short buffer=64k flush=1h;
            return 200 "held\\n";
        }
    }
}
"""


def read(proc, name: str) -> str:
    path = os.path.join(proc.prefix, "logs", name)
    return open(path).read() if os.path.exists(path) else ""


def get(conn: Connection, target: str) -> None:
    conn.send(build_request("GET", target))
    assert conn.read_response().status == 200


def test_a_line_is_in_the_file_before_the_next_request_is_answered(start_proxy):
    proc = start_proxy(CONF)
    with Connection(proc.port) as conn:
        get(conn, "/first")
        get(conn, "/second")    # the first request's line went out before this one was read
        assert "/first 200\n" in read(proc, "now.log")
        get(conn, "/third")
        assert read(proc, "now.log").startswith("/first 200\n/second 200\n")


def test_buffered_lines_wait_for_the_buffer_or_the_stop(start_proxy):
    proc = start_proxy(CONF)
    with Connection(proc.port) as conn:
        get(conn, "/held/1")
        get(conn, "/held/2")
        get(conn, "/after")
        get(conn, "/again")     # unbuffered log: "/after" was written; the held lines were not
        assert "/after 200\n" in read(proc, "now.log")
    assert read(proc, "held.log") == ""
    proc.proc.send_signal(signal.SIGQUIT)      # a graceful stop writes what is buffered
    proc.proc.wait(10)
    assert read(proc, "held.log") == "/held/1 200\n/held/2 200\n"
