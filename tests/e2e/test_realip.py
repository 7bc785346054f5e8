"""realip where the differential suite cannot reach: a unix-socket listener trusted with
`set_real_ip_from unix:`, a host name in set_real_ip_from, and the error log's `client:` field
(it names the real address, as nginx's). Runs on nginx and ngate, with curl as the client."""
from __future__ import annotations

import re
import subprocess
import time

import pytest

CONF = """
http {
    server {
        listen unix:{prefix}/realip.sock;
        listen 127.0.0.1:{port};
        set_real_ip_from unix:;
        set_real_ip_from localhost;
        location / {
            return 200 "remote=$remote_addr binary=$binary_remote_addr_len xff=$proxy_add_x_forwarded_for realip=$realip_remote_addr\\n";
        }
        location /denied/ {
            deny all;
        }
    }
    map $binary_remote_addr $binary_remote_addr_len {
        default "other";
        "~^.{4}$" "4";
        "~^.{16}$" "16";
    }
}
"""


@pytest.fixture
def server(start_proxy, tmp_path):
    return start_proxy(CONF)


def curl(*args: str) -> str:
    return subprocess.run(["curl", "-sS", "--max-time", "5", *args], capture_output=True,
                          check=True).stdout.decode()


def test_unix_socket_client_is_trusted(server):
    sock = f"{server.prefix}/realip.sock"
    out = curl("--unix-socket", sock, "-H", "X-Real-IP: 192.0.2.1", "http://localhost/")
    assert out == "remote=192.0.2.1 binary=4 xff=192.0.2.1 realip=unix:\n"
    out = curl("--unix-socket", sock, "-H", "X-Real-IP: 2001:db8::1", "-H",
               "X-Forwarded-For: 198.51.100.1", "http://localhost/")
    assert out == "remote=2001:db8::1 binary=16 xff=198.51.100.1, 2001:db8::1 realip=unix:\n"


def test_host_name_in_set_real_ip_from(server):
    out = curl("-H", "X-Real-IP: 192.0.2.2", f"http://127.0.0.1:{server.port}/")
    assert out == "remote=192.0.2.2 binary=4 xff=192.0.2.2 realip=127.0.0.1\n"


def test_error_log_names_the_real_client(server):
    curl("-H", "X-Real-IP: 192.0.2.3", f"http://127.0.0.1:{server.port}/denied/x")
    pattern = r"\[error\] .* access forbidden by rule, client: 192\.0\.2\.3, server: "
    deadline = time.monotonic() + 5
    while not re.search(pattern, server.error_log()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert re.search(pattern, server.error_log()), server.error_log()[-1500:]
