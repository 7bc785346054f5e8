"""$upstream_response_time of a request whose client closed before the upstream answered: nginx
sets it when it finalizes the request (499), as for any other end."""
import re
import socket
import time

import pytest

from tests.harness.backend import Reply

CONF = """
http {
    log_format t '$request_uri $status $upstream_connect_time $upstream_response_time';
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        location / {
            proxy_pass http://127.0.0.1:{backend_port};
            access_log {prefix}/logs/access.log t;
        }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    d = differential(CONF)
    d.backend.route("/slow", Reply(delay=1.5))
    return d


def test_response_time_logged_when_the_client_closes(diff):
    for kind, proc in diff.procs.items():
        with socket.create_connection(("127.0.0.1", proc.port)) as s:
            s.sendall(b"GET /slow HTTP/1.1\r\nHost: example.test\r\n\r\n")
            time.sleep(0.4)         # the upstream is connected and has not answered yet
        deadline = time.monotonic() + 5
        while "/slow" not in proc.access_log() and time.monotonic() < deadline:
            time.sleep(0.05)
        m = re.search(r"^/slow 499 (\d+\.\d{3}) (\S+)$", proc.access_log(), re.M)
        assert m, (kind, proc.access_log())
        connect, response = m.groups()
        assert response != "-" and float(response) > float(connect), kind
