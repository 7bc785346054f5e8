"""add_trailer with real clients: curl --raw sees the trailers after the last chunk of static,
proxied (streamed, proxy_buffering off), FastCGI (php-fpm) and gzipped responses, with values
taken when the response ends ($upstream_response_time, $body_bytes_sent, $sent_trailer_*);
an HTTP/2 client gets them as a trailing HEADERS frame; a bad `add_trailer` is an [emerg] with
file:line."""
from __future__ import annotations

import gzip
import os
import re
import subprocess

import h2.events
import pytest

from tests.harness.backend import Reply
from tests.harness.h2client import H2Client
from tests.harness.paths import readable_tmpdir
from tests.harness.phpfpm import PhpFpm
from tests.harness.processes import free_port

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{h2port} http2;
        server_name localhost;
        root {docroot};
        add_trailer X-Served $host;
        add_trailer X-Echo "seen $sent_trailer_x_served";
        location /static/ { }
        location /gz/ {
            alias {docroot}/static/;
            gzip on; gzip_min_length 1; gzip_types text/plain;
            add_trailer X-Bytes $body_bytes_sent;
        }
        location /p/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            proxy_buffering off;
            add_trailer X-Time $upstream_response_time;
            add_trailer X-Len $upstream_response_length;
        }
        location ~ \\.php$ {
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_buffering off;
            fastcgi_param SCRIPT_FILENAME {fpm_docroot}$fastcgi_script_name;
            fastcgi_param REQUEST_METHOD $request_method;
            add_trailer X-Php "$status from php" always;
        }
        location /made { return 201 "made here\\n"; }
    }
}
"""


@pytest.fixture
def fpm(tmp_path):
    with PhpFpm(tmp_path) as f:
        f.script("page.php", "<?php echo 'part one '; flush(); echo 'part two';")
        f.script("fail.php", "<?php http_response_code(503); echo 'down';")
        yield f


@pytest.fixture
def proxy(start_proxy, backend, fpm):
    backend.route("/chunked", Reply(chunks=[b"alpha ", b"beta"]))
    backend.route("/len", Reply(body=b"ten bytes\n"))
    with readable_tmpdir("trailers-e2e-") as root:
        (root / "static").mkdir()
        (root / "static" / "a.txt").write_bytes(b"hello static\n" * 10)
        os.chmod(root / "static", 0o755)
        os.chmod(root / "static" / "a.txt", 0o644)
        yield start_proxy(CONF, docroot=str(root), backend_port=backend.port, fpm_port=fpm.port,
                          fpm_docroot=str(fpm.docroot), h2port=free_port())


def curl_raw(port: int, path: str, *args: str) -> bytes:
    out = subprocess.run(["curl", "-s", "--raw", "-i", "-H", "Host: localhost", *args,
                          f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, timeout=20, check=True)
    return out.stdout


def split(raw: bytes) -> tuple[bytes, bytes, dict]:
    """(head, body as sent, trailers) of a chunked HTTP/1.1 response."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"\r\nTransfer-Encoding: chunked\r\n" in head + b"\r\n", head
    assert b"\r\nContent-Length:" not in head
    body, _, tail = rest.rpartition(b"\r\n0\r\n")
    assert tail.endswith(b"\r\n\r\n"), rest
    fields = dict(line.split(b": ", 1) for line in tail[:-4].split(b"\r\n") if line)
    return head, body, fields


def test_static_file_goes_chunked_with_trailers(proxy):
    head, body, t = split(curl_raw(proxy.port, "/static/a.txt"))
    assert body.startswith(b"82\r\nhello static\n")
    assert t == {b"X-Served": b"localhost", b"X-Echo": b"seen localhost"}
    assert b"Accept-Ranges: bytes" in head          # nginx's range filter ran before chunking


def test_gzipped_body_then_trailers(proxy):
    raw = curl_raw(proxy.port, "/gz/a.txt", "-H", "Accept-Encoding: gzip")
    head, body, t = split(raw)
    assert b"Content-Encoding: gzip" in head
    data = b"".join(re.findall(rb"[0-9a-f]+\r\n(.*?)\r\n", body + b"\r\n", re.S))
    assert gzip.decompress(data) == b"hello static\n" * 10
    assert set(t) == {b"X-Bytes"} and int(t[b"X-Bytes"]) >= 0


def test_proxied_stream_trailers_have_the_upstream_values(proxy):
    head, body, t = split(curl_raw(proxy.port, "/p/chunked"))
    assert b"alpha " in body and b"beta" in body
    assert re.fullmatch(rb"\d+\.\d{3}", t[b"X-Time"]), t
    assert int(t[b"X-Len"]) >= 10          # nginx counts the upstream's chunk framing too
    head, body, t = split(curl_raw(proxy.port, "/p/len"))
    assert body == b"a\r\nten bytes\n"
    assert t[b"X-Len"] == b"10"
    assert b"X-Served" not in t                     # a location's own add_trailer replaces


def test_fastcgi_trailers_and_always(proxy):
    _, body, t = split(curl_raw(proxy.port, "/page.php"))
    assert b"part one" in body and b"part two" in body
    assert t == {b"X-Php": b"200 from php"}
    raw = curl_raw(proxy.port, "/fail.php")
    assert raw.startswith(b"HTTP/1.1 503")
    assert split(raw)[2] == {b"X-Php": b"503 from php"}


def test_http10_and_head_get_no_trailers(proxy):
    raw = curl_raw(proxy.port, "/made", "--http1.0")
    assert b"Content-Length: 10\r\n" in raw and raw.endswith(b"\r\n\r\nmade here\n")
    raw = curl_raw(proxy.port, "/made", "-I")
    assert b"X-Served" not in raw and b"Transfer-Encoding" not in raw


def test_http2_trailing_headers_frame(proxy):
    with H2Client(proxy.params["h2port"]) as c:
        got = {}
        for path in ("/made", "/static/a.txt", "/page.php", "/p/chunked"):
            sid = c.request(path)
            status, head, body = c.response(sid)
            trailers = [ev for ev in c.events if isinstance(ev, h2.events.TrailersReceived)
                        and ev.stream_id == sid]
            assert len(trailers) == 1, path
            assert sid in c.ended
            got[path] = (status, head, body, dict(trailers[0].headers))
    status, head, body, t = got["/made"]
    assert (status, body, head[b"content-length"]) == (201, b"made here\n", b"10")
    assert t == {b"x-served": b"localhost", b"x-echo": b"seen localhost"}
    assert got["/static/a.txt"][3] == t
    assert got["/page.php"][3] == {b"x-php": b"200 from php"}
    assert got["/p/chunked"][2] == b"alpha beta" and b"x-time" in got["/p/chunked"][3]


@pytest.mark.parametrize("line,error", [
    ("add_trailer X-A $host sometimes;", 'invalid parameter "sometimes"'),
    ("add_trailer X-A;", 'invalid number of arguments in "add_trailer" directive'),
    ("add_trailer X-A $nope;", 'unknown "nope" variable'),
])
def test_bad_add_trailer_is_an_emerg_with_file_and_line(tmp_path, line, error):
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\nhttp {\n  server {\n    listen 127.0.0.1:1;\n"
                    f"    {line}\n  }}\n}}\n")
    out = subprocess.run(["python", "-m", "ngate", "-t", "-p", str(tmp_path), "-c", str(conf)],
                         capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 1
    assert f"[emerg] {error} in {conf}:5" in out.stderr
