"""`syslog:` targets across a reload (HUP) and a log reopen (USR1), against nginx and ngate:
after HUP the new configuration's server gets the lines and the old one none; after USR1 the
lines keep going to the same server."""
from __future__ import annotations

import os
import signal
import socket
import time

from tests.harness.client import request
from tests.harness.processes import wait_for

CONF = """
error_log {prefix}/logs/error.log info;
error_log syslog:server=127.0.0.1:{udp},tag=main notice;
pid {prefix}/logs/nginx.pid;
worker_processes 1;
events { worker_connections 64; }
http {
    access_log syslog:server=127.0.0.1:{udp},tag=access;
    server {
        listen 127.0.0.1:{port};
        location / { return 200 "{text}"; }
    }
}
"""


def _receiver() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    return s


def _read(sock: socket.socket) -> list[bytes]:
    out = []
    try:
        while True:
            out.append(sock.recv(65536))
    except (socket.timeout, BlockingIOError):
        return out


def _access_lines(sock: socket.socket, port: int, path: str) -> list[bytes]:
    request(port, "GET", path)
    time.sleep(0.2)
    return [d for d in _read(sock) if b" access: " in d]


def test_reload_and_reopen_move_and_keep_the_targets(start_proxy):
    first, second = _receiver(), _receiver()
    try:
        proc = start_proxy(CONF, udp=first.getsockname()[1], text="one")
        pid_file = proc.prefix / "logs" / "nginx.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "the pid file")
        pid = int(pid_file.read_text())
        got = _access_lines(first, proc.port, "/before")
        assert len(got) == 1 and b'"GET /before HTTP/1.1" 200 3' in got[0]
        assert got[0].startswith(b"<190>")

        conf = proc.conf_text.replace(f":{first.getsockname()[1]},",
                                      f":{second.getsockname()[1]},").replace('"one"', '"two"')
        (proc.prefix / "nginx.conf").write_text(conf)
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: request(proc.port, "GET", "/probe").body == b"two",
                 "the new configuration")
        time.sleep(0.3)
        _read(first), _read(second)
        assert _access_lines(second, proc.port, "/after") != []
        assert [d for d in _read(first) if b" access: " in d] == []
        # the master's notices of the reload went to the new server
        os.kill(pid, signal.SIGUSR1)
        wait_for(lambda: b"reopening logs" in b"".join(_read(second) or [b""]) or
                 "reopening logs" in proc.error_log(), "the reopen")
        time.sleep(0.3)
        got = _access_lines(second, proc.port, "/reopened")
        assert len(got) == 1 and b"/reopened" in got[0]
        assert _read(first) == []
    finally:
        first.close()
        second.close()
