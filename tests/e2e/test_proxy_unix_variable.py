"""proxy_pass with variables that render to `unix:/path:/uri` reaches the unix socket, on nginx
and ngate alike."""
import os
import shutil
import socket
import tempfile
import threading

import pytest

from tests.harness.client import request

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        location /var {
            proxy_pass http://$arg_b;
        }
    }
}
"""


@pytest.fixture
def unix_backend():
    directory = tempfile.mkdtemp(prefix="ngate-unix-")
    os.chmod(directory, 0o755)          # nginx's workers (nobody) connect too
    path = os.path.join(directory, "b.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    os.chmod(path, 0o666)
    srv.listen(8)
    seen = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                seen.append(head.split(b"\r\n")[:2])
                c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nunix\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield path, seen
    srv.close()
    shutil.rmtree(directory)


def test_variable_proxy_pass_to_a_unix_socket(start_proxy, unix_backend):
    path, seen = unix_backend
    proxy = start_proxy(CONF)
    resp = request(proxy.port, "GET", f"/var?b=unix:{path}:/there")
    assert resp.status == 200 and resp.body == b"unix\n"
    assert seen[-1] == [b"GET /there HTTP/1.0", b"Host: localhost"]
