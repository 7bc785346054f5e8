"""When access-log lines reach the file, on nginx and ngate: at once without `buffer=`, only
when the buffer fills or the server stops with `buffer=` / `flush=`. (Tools that tail the log,
fail2ban for one, and nginx's own tests read it right after a response.)"""
from __future__ import annotations

import os
import signal
import socket

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


def test_a_line_is_in_the_file_when_the_client_sees_the_close(start_proxy):
    """A response ended by the close (HTTP/1.0): the line is written before the connection
    closes, as nginx does (limit_rate.t reads its log right after http_get). ngate's own
    transport for a connection's first request closed its socket before the turn's log flush."""
    proc = start_proxy(CONF)
    for i in range(20):
        with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as s:
            s.sendall(b"GET /close%d HTTP/1.0\r\n\r\n" % i)
            got = b""
            while True:
                data = s.recv(4096)
                if not data:
                    break
                got += data
        assert got.startswith(b"HTTP/1.1 200 OK\r\n")
        assert read(proc, "now.log").count("\n") == i + 1, (i, read(proc, "now.log"))


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
