"""gzip with real clients: curl --compressed through a proxy and from static files, Chromium
loading a page whose CSS and JS come gzipped (proxied and static), a server-sent-events stream
that must not stall in the compressor (proxy_buffering off), $gzip_ratio in the access log,
gunzip for a client without gzip, and the config errors nginx gives for these directives."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
import zlib

import pytest

from tests.harness.backend import Backend, Reply
from tests.harness.paths import readable_tmpdir
from tests.harness.processes import ProxyProcess, config_test, fresh_prefix

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
CSS = b"".join(b".c%d { color: #%03d; margin: %dpx; }\n" % (i, i % 999, i % 7)
               for i in range(3000)) + b"#probe { color: rgb(1, 2, 3); }\n"
JS = b"".join(b"function f%d(a) { return a * %d; }\n" % (i, i) for i in range(2000)) \
    + b"window.probe = f7(6);\n"
PAGE = (b"<!doctype html><html><head><link rel=stylesheet href=/p/app.css>"
        b"<link rel=stylesheet href=/s/static.css></head><body><p id=probe>x</p>"
        b"<p id=probe2 class=c5>y</p><script src=/s/app.js></script>"
        b"<script src=/p/app.js></script></body></html>")

CONF = """
http {
    include mime.types;
    log_format ratio '$request_uri $status $gzip_ratio $body_bytes_sent';
    access_log logs/access.log ratio;
    gzip on;
    gzip_types text/css application/javascript text/event-stream;
    gzip_vary on;
    server {
        listen 127.0.0.1:{port};
        root {docroot};
        location /p/ { proxy_pass http://127.0.0.1:{backend_port}/; }
        location /s/ { alias {docroot}/; }
        location /sse/ {
            proxy_pass http://127.0.0.1:{sse_port}/;
            proxy_buffering off;
        }
        location /gun/ { proxy_pass http://127.0.0.1:{backend_port}/; gunzip on; }
        location /ai/ {
            alias {docroot}/; index none.html; autoindex on; add_trailer X-Listed $uri;
        }
    }
}
"""


class SseBackend:
    """One event, then waits until the test has seen it decompressed, then a second event."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.seen_first = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            for i, event in enumerate((b"data: first\n\n", b"data: second\n\n")):
                if i:
                    self.seen_first.wait(10)
                conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
            conn.sendall(b"0\r\n\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def site():
    with readable_tmpdir("ngate-gzip-e2e-") as base:     # workers run as nobody (user)
        yield from _site(base)


def _site(base):
    docroot = base / "root"
    docroot.mkdir()
    (docroot / "app.js").write_bytes(JS)
    (docroot / "static.css").write_bytes(CSS.replace(b"#probe {", b"#probe2 {"))
    (docroot / "index.html").write_bytes(PAGE)
    backend = Backend().start()
    backend.route("/app.css", Reply(headers=[(b"Content-Type", b"text/css")], body=CSS))
    backend.route("/app.js", Reply(headers=[(b"Content-Type", b"application/javascript")],
                                   body=JS))
    backend.route("/gz.css", Reply(headers=[(b"Content-Type", b"text/css"),
                                            (b"Content-Encoding", b"gzip")],
                                   body=zlib.compress(CSS, wbits=31)))
    sse = SseBackend()
    proc = ProxyProcess("ngate", CONF, fresh_prefix(base, "ngate"), docroot=docroot,
                        backend_port=backend.port, sse_port=sse.port).start()
    yield proc, sse
    proc.stop()
    sse.close()
    backend.stop()


def _log_line(proc, mark: str) -> str:
    """The access log line with `mark` (written once the request is finished: wait for it)."""
    deadline = time.monotonic() + 10
    while True:
        found = [ln for ln in proc.access_log().splitlines() if mark in ln]
        if found or time.monotonic() > deadline:
            assert found, proc.access_log()
            return found[-1]
        time.sleep(0.05)


def _curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=30)


@pytest.mark.parametrize("path,body", [("/p/app.css", CSS), ("/s/app.js", JS)],
                         ids=["proxied-css", "static-js"])
def test_curl_compressed(site, tmp_path, path, body):
    proc, _ = site
    out = tmp_path / "out"
    r = _curl("--compressed", "-D", "-", "-o", str(out), "-w", "%{size_download}",
              f"http://127.0.0.1:{proc.port}{path}")
    assert r.returncode == 0, r.stderr
    head = r.stdout.decode()
    assert re.search(r"(?im)^content-encoding: gzip\r$", head)
    assert re.search(r"(?im)^vary: accept-encoding\r$", head)
    assert out.read_bytes() == body                 # curl inflated it
    wire = int(head.rsplit("\n", 1)[-1])
    assert wire < len(body) // 4


def test_curl_compressed_autoindex(site):
    """An autoindex listing goes through the filters as nginx's does: gzipped (text/html),
    chunked with add_trailer's trailer."""
    proc, _ = site
    r = _curl("--compressed", "-D", "-", f"http://127.0.0.1:{proc.port}/ai/")
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert re.search(r"(?im)^content-encoding: gzip\r$", text)
    assert re.search(r"(?im)^transfer-encoding: chunked\r$", text)
    assert '<a href="app.js">app.js</a>' in text
    assert re.search(r"(?im)^x-listed: /ai/\r$", text)       # curl -D prints the trailer


def test_gzip_ratio_in_access_log(site):
    proc, _ = site
    r = _curl("--compressed", "-o", "/dev/null", "-w", "%{size_download}",
              f"http://127.0.0.1:{proc.port}/p/app.css?ratio")
    size = int(r.stdout)
    line = _log_line(proc, "?ratio")
    _, status, ratio, sent = line.split()
    assert status == "200"
    expected = len(CSS) / size        # body bytes = the gzip stream (curl counts no framing)
    assert abs(float(ratio) - expected) < 0.05, (ratio, expected)
    assert int(sent) > size             # with the chunk framing, as nginx counts it
    r = _curl("-o", "/dev/null", f"http://127.0.0.1:{proc.port}/p/app.css?plain")
    line = _log_line(proc, "?plain")
    assert line.split()[2] == "-"


def test_gunzip_for_a_client_without_gzip(site):
    proc, _ = site
    r = _curl("-D", "-", f"http://127.0.0.1:{proc.port}/gun/gz.css")
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert body == CSS
    assert b"Content-Encoding" not in head
    r = _curl("--compressed", f"http://127.0.0.1:{proc.port}/gun/gz.css")
    assert r.stdout == CSS


def test_sse_is_flushed_per_upstream_read(site):
    """The first event reaches the client, decompressed, before the backend sends the second
    (which it does only once the client has seen the first): nothing is held in the compressor."""
    proc, sse = site
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as s:
        s.sendall(b"GET /sse/ HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"Content-Encoding: gzip" in head and b"Transfer-Encoding: chunked" in head
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        text = b""
        buf = rest
        while b"data: first\n\n" not in text:
            while True:         # whole chunks only
                m = re.match(rb"([0-9a-f]+)\r\n", buf)
                if m is None or len(buf) < m.end() + int(m.group(1), 16) + 2:
                    break
                n = int(m.group(1), 16)
                text += inflate.decompress(buf[m.end():m.end() + n])
                buf = buf[m.end() + n + 2:]
            if b"data: first\n\n" in text:
                break
            more = s.recv(65536)        # a stalled compressor: the 10 s timeout fails here
            assert more, "connection closed before the first event"
            buf += more
        assert b"second" not in text
        sse.seen_first.set()
        while not buf.endswith(b"0\r\n\r\n"):
            more = s.recv(65536)
            assert more
            buf += more
        assert b"second" in text + inflate.decompress(b"".join(
            buf[m.end():m.end() + int(m.group(1), 16)]
            for m in re.finditer(rb"([0-9a-f]+)\r\n", buf) if int(m.group(1), 16)))


def test_chromium_loads_gzipped_css_and_js(site):
    if not os.access(CHROMIUM, os.X_OK) and os.environ.get("CI") != "true":
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright
    proc, _ = site
    encodings = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.on("response", lambda r: encodings.__setitem__(
                r.url.split(str(proc.port), 1)[1], r.headers.get("content-encoding")))
            page.goto(f"http://127.0.0.1:{proc.port}/s/index.html")
            page.wait_for_function("window.probe === 42", timeout=10000)
            color = page.eval_on_selector("#probe", "e => getComputedStyle(e).color")
            color2 = page.eval_on_selector("#probe2", "e => getComputedStyle(e).color")
        finally:
            browser.close()
    assert color == "rgb(1, 2, 3)" and color2 == "rgb(1, 2, 3)"
    for path in ("/p/app.css", "/s/static.css", "/s/app.js", "/p/app.js"):
        assert encodings.get(path) == "gzip", encodings


@pytest.mark.parametrize("directive,message", [
    ("gzip_comp_level 10;", "value must be between 1 and 9"),
    ("gzip_proxied bogus;", 'invalid value "bogus"'),
    ("gzip_http_version 2.0;", 'invalid value "2.0"'),
    ("gzip_static maybe;", 'invalid value "maybe"'),
    ("gzip_buffers 0 4k;", '"gzip_buffers" directive invalid value'),
    ("gzip_min_length x;", '"gzip_min_length" directive invalid value'),
    ("gzip maybe;", 'invalid value "maybe" in "gzip" directive, it must be "on" or "off"'),
    ("gzip_types;", 'invalid number of arguments in "gzip_types" directive'),
])
def test_config_errors_as_nginx(tmp_path, directive, message):
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\nhttp {\n" + directive + "\n}\n")
    r = config_test(conf)
    assert r.returncode == 1
    assert f"[emerg] {message} in {conf}:3" in r.stderr
