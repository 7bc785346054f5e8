"""`return 408` and `return 499` through nginx and ngate: ngx_http_finalize_request terminates
the request (nothing sent, the connection closed, no error_page), as `return 444`; a 408 made
by error_page's `=408` or `return 408 text` is an ordinary response."""
import re
import socket

import pytest

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name localhost;
        location /e408 { return 408; }
        location /e499 { return 499; }
        location /e444 { return 444; }
        location /e408ep { error_page 408 /x; return 408; }
        location /x { return 200 "x"; }
        location /ep408 { error_page 404 =408 /x; return 404; }
        location /t408 { return 408 "text"; }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF)


def raw(target: str):
    def script(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
                    if data.endswith((b"\r\n\r\nx", b"\r\n\r\ntext")):
                        break
            except ConnectionResetError:
                pass
        return re.sub(rb"(?m)^(Date|Server): .*\r\n", b"", data)
    return script


@pytest.mark.parametrize("target,sent", [
    ("/e408", False), ("/e499", False), ("/e444", False), ("/e408ep", False),
    ("/ep408", True), ("/t408", True)])
def test_terminated(diff, target, sent):
    out = diff.check(raw(target))
    assert bool(out.result) == sent
