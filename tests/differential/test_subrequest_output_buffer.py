"""subrequest_output_buffer_size through nginx and ngate: an SSI `include set=` keeps the
subrequest's body in a buffer of its location's size; a body that fits sets the variable, one
above it (a Content-Length known at once, or a proxied or static body) ends the main request:
"too big subrequest response" in the error log, the connection closed, no complete response.

(nginx's client gets nothing at all: its write filter still holds the main response's head,
below postpone_output. ngate has sent the head when the include runs, so its client sees the
head and then the close; the views below compare "cut" for both.)"""
import re
import socket

import pytest

from tests.harness.paths import readable_tmpdir

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        location / { proxy_pass http://127.0.0.1:{port2}; subrequest_output_buffer_size 42; }
        location /longok { proxy_pass http://127.0.0.1:{port2}/long; }
        location /st { subrequest_output_buffer_size 42; alias {root}/long; }
        location /st400 { subrequest_output_buffer_size 400; alias {root}/long; }
        location /st399 { subrequest_output_buffer_size 399; alias {root}/long; }
        location /ret { subrequest_output_buffer_size 4; return 200 "abcde"; }
        location /ret4 { subrequest_output_buffer_size 4; return 200 "abcd"; }
        location /ssi { ssi on; }
    }
    server {
        listen 127.0.0.1:{port2};
        server_name localhost;
        root {root};
        location / { }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    with readable_tmpdir("root-") as root:
        (root / "ssi.html").write_text('<!--#include virtual="/$arg_c" set="x" -->'
                                       'set: <!--#echo var="x" -->')
        (root / "length").write_text("TEST-OK-IF-YOU-SEE-THIS")
        (root / "long").write_text("x" * 400)
        (root / "empty").write_text("")
        yield differential(CONF, root=str(root))


def fetch(target: str):
    def script(port: int):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n"
                      f"Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        if not data.endswith(b"\r\n0\r\n\r\n"):
            return "cut"
        return data.split(b"\r\n\r\n", 1)[1]
    return script


@pytest.mark.parametrize("c,want", [
    ("length", b"set: TEST-OK-IF-YOU-SEE-THIS"), ("empty", b"set: "),
    ("longok", b"set: " + b"x" * 400), ("st400", b"set: " + b"x" * 400), ("ret4", b"set: abcd"),
    ("long", None), ("st", None), ("st399", None), ("ret", None)])
def test_in_memory_subrequest(diff, c, want):
    out = diff.check(fetch(f"/ssi.html?c={c}"))
    if want is None:
        assert out.result == "cut"
        said = {}
        for kind in diff.procs:          # the message, the Content-Length and the action
            log = diff.run(kind, fetch(f"/ssi.html?c={c}")).error_log
            said[kind] = re.findall(r"\[error\] .*?: \*\d+ (too big subrequest response.*)",
                                    log)
            said[kind] = [re.sub(r"127\.0\.0\.1:\d+", "ADDR", line) for line in said[kind]]
        assert len(set(map(tuple, said.values()))) == 1 and said["nginx"], said
    else:
        assert want in out.result
