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


SSI_CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        ssi on;
        location /e444 { return 444; }
        location /e408 { return 408; }
        location /e404 { return 404; }
    }
}
"""


@pytest.fixture(scope="module")
def ssi_diff(differential):
    from tests.harness.paths import readable_tmpdir
    with readable_tmpdir("root-") as root:
        for name, uri, extra in (("a", "/e444", ""), ("b", "/e408", ""), ("c", "/e444", ' set="v"'),
                                 ("d", "/e404", "")):
            (root / f"{name}.html").write_text(f'A<!--#include virtual="{uri}"{extra} -->B')
        yield differential(SSI_CONF, root=str(root))


def complete(target: str):
    """"cut" unless a whole chunked response arrived (nginx's client gets nothing at all; ngate
    has sent the head when the include runs)."""
    def script(port: int):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n"
                      f"Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return "complete" if data.endswith(b"0\r\n\r\n") else "cut"
    return script


@pytest.mark.parametrize("target,cut", [("/a.html", True), ("/b.html", True),
                                        ("/c.html", True), ("/d.html", False)])
def test_ssi_include_terminates_main(diff, ssi_diff, target, cut):
    """An SSI include finalized with 444 or 408 terminates the main request (nginx's
    ngx_http_terminate_request); a 404 is only the include's."""
    out = ssi_diff.check(complete(target))
    assert (out.result == "cut") == cut
