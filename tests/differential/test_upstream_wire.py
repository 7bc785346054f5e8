"""What goes on the wire and into the log for a proxied response, through nginx and ngate:

- an upstream status line without a reason phrase (`HTTP/1.1 200 `, as Tomcat sends, or
  `HTTP/1.1 200`) is passed on as it came: nginx copies the status line from the code to the end
  of the line;
- `$body_bytes_sent` / `$bytes_sent` count the chunk framing ngate writes to an HTTP/1.1 client
  (nginx logs `302 5` for an empty chunked 302: the last chunk `0\\r\\n\\r\\n`).
"""
import os
import time

import pytest

from tests.harness.backend import Reply
from tests.harness.client import build_request, exchange
from tests.harness.paths import readable_tmpdir

CONF = """
http {
    log_format wire '$request_uri $status $body_bytes_sent $bytes_sent';
    access_log logs/access.log wire;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        location / {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
        }
        location /listing/ { alias {docroot}/; autoindex on; }
    }
}
"""

STATUS_LINES = {
    "/tomcat": b"HTTP/1.1 200 \r\nContent-Length: 3\r\n\r\nok\n",
    "/bare": b"HTTP/1.1 200\r\nContent-Length: 3\r\n\r\nok\n",
    "/missing": b"HTTP/1.1 404 \r\nContent-Length: 3\r\n\r\nno\n",
    "/unknown": b"HTTP/1.1 599 \r\nContent-Length: 3\r\n\r\nun\n",
    "/spaces": b"HTTP/1.1 200  Two  Spaces\r\nContent-Length: 3\r\n\r\nok\n",
    "/custom": b"HTTP/1.1 201 Made It\r\nContent-Length: 3\r\n\r\nok\n",
    "/http10": b"HTTP/1.0 200 \r\nContent-Length: 3\r\n\r\nok\n",
}

CHUNKED = {
    "/empty-302": Reply(status=302, headers=[(b"Location", b"http://example.test/x")],
                        chunks=[]),
    "/one-chunk": Reply(chunks=[b"hello\n"]),
    "/close-delimited": Reply(version=b"HTTP/1.0", headers=[(b"Content-Type", b"text/plain")],
                              body=b"until close\n", action="close_after", raw_headers=True),
    "/length": Reply(body=b"sized\n"),
    "/listing/": None,          # autoindex: chunked by the server itself
}


@pytest.fixture(scope="module")
def diff(differential):
    # nginx's workers run as nobody: not under pytest's tmp root, which another pytest session
    # sets back to 0700 (tests/harness/paths.py)
    with readable_tmpdir("listing-") as docroot:
        (docroot / "a.txt").write_bytes(b"a\n")
        os.utime(docroot / "a.txt", (1577934245, 1577934245))
        d = differential(CONF, docroot=docroot)
        for path, raw in STATUS_LINES.items():
            d.backend.route(path, Reply(raw=raw, action="close_after"))
        for path, reply in CHUNKED.items():
            if reply is not None:
                d.backend.route(path, reply)
        yield d


@pytest.mark.parametrize("path", list(STATUS_LINES))
def test_status_line_passed_on_as_it_came(diff, path):
    outcome = diff.check_request("GET", path)
    lines = {}
    for kind in diff.procs:
        r = diff.run(kind, lambda port: exchange(port, build_request("GET", path))).response
        lines[kind] = r.raw.split(b"\r\n", 1)[0]
    assert lines["ngate"] == lines.get("nginx", lines["ngate"])
    code = STATUS_LINES[path].split(b"\r\n", 1)[0][9:]
    assert lines["ngate"] == b"HTTP/1.1 " + code, lines
    assert outcome.response.status == int(code[:3])


def _log_line(proc, path: str) -> list[str]:
    """The access-log line for `path` (written once the response is done)."""
    deadline = time.monotonic() + 10
    while True:
        for line in proc.access_log().splitlines():
            if line.startswith(path + " "):
                return line.split()
        assert time.monotonic() < deadline, proc.access_log()
        time.sleep(0.02)


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
@pytest.mark.parametrize("path", list(CHUNKED))
def test_body_bytes_sent_counts_what_went_on_the_wire(diff, path, version):
    target = f"{path}?{version[-1]}"
    diff.check(lambda port: exchange(port, build_request("GET", target, version=version)))
    logged = {}
    for kind, proc in diff.procs.items():
        response = exchange(proc.port, build_request("GET", target + "&again",
                                                     version=version))[0]
        _, status, body_bytes, total = _log_line(proc, target + "&again")
        head_len = response.raw.index(b"\r\n\r\n") + 4
        assert int(body_bytes) == len(response.raw) - head_len, (kind, response.raw)
        assert int(total) == len(response.raw), (kind, response.raw)
        logged[kind] = (status, body_bytes)
    if "nginx" in logged:
        assert logged["ngate"] == logged["nginx"]
    if path == "/empty-302" and version == "HTTP/1.1":
        assert logged["ngate"] == ("302", "5")
