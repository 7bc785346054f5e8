"""Range requests with curl through proxy_force_ranges and fastcgi_force_ranges, from upstreams
that ignore Range themselves (max_ranges 0; PHP): `curl -r`, a resumed download (`curl -C -`),
If-Range with the ETag curl saw, `curl -z` (If-Modified-Since: no 304 from an uncached upstream
response, as nginx), and a 416. Also the plain proxy, where the upstream's own answer passes."""
from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from tests.harness.paths import readable_tmpdir
from tests.harness.phpfpm import PhpFpm, require_php_fpm
from tests.harness.processes import ProxyProcess, free_port, fresh_prefix

DATA = hashlib.sha256(b"seed").digest() * 8192      # 256 KiB, not compressible

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        location /f/ { proxy_pass http://127.0.0.1:{port2}/; proxy_force_ranges on; }
        location /ft/ {
            proxy_pass http://127.0.0.1:{port2}/;
            proxy_force_ranges on;
            add_trailer X-Sent $body_bytes_sent;
        }
        location /plain/ { proxy_pass http://127.0.0.1:{port2}/; }
        location /noranges/ { proxy_pass http://127.0.0.1:{port2}/; }
        location /php/ {
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_force_ranges on;
            include fastcgi_params;
            fastcgi_param SCRIPT_FILENAME {docroot}/data.php;
        }
    }
    server {
        listen 127.0.0.1:{port2};
        root {docroot};
        location / { max_ranges 0; }
        location /ranged/ { alias {docroot}/; }
    }
}
"""

PHP = """<?php
header('Content-Type: application/octet-stream');
header('ETag: "php-data"');
header('Content-Length: ' . filesize(__DIR__ . '/data.bin'));
readfile(__DIR__ . '/data.bin');
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    require_php_fpm()
    # the workers run as nobody under a root test run: a docroot outside pytest's 0700 tree
    with readable_tmpdir("ngate-ranges-") as base, PhpFpm(base, children=2) as fpm:
        fpm.script("data.php", PHP)
        (fpm.docroot / "data.bin").write_bytes(DATA)
        os.chmod(fpm.docroot / "data.bin", 0o644)
        proc = ProxyProcess("ngate", CONF, fresh_prefix(tmp_path_factory.mktemp("rng"), "ngate"),
                            fpm_port=fpm.port, docroot=str(fpm.docroot),
                            port2=free_port()).start()
        try:
            yield proc
        finally:
            proc.stop()


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-s", "--max-time", "20", *args], capture_output=True,
                          check=False)


URLS = ["/f/data.bin", "/php/data", "/ft/data.bin"]


@pytest.mark.parametrize("path", URLS)
def test_curl_range(site, path):
    r = curl("-r", "1000-1999", "-w", "%{http_code}", "-o", "-", f"http://127.0.0.1:{site.port}{path}")
    assert r.stdout == DATA[1000:2000] + b"206"


@pytest.mark.parametrize("path", URLS + ["/plain/ranged/data.bin"])
def test_curl_resumes_a_download(site, path, tmp_path):
    out = tmp_path / "partial"
    out.write_bytes(DATA[:100000])
    r = curl("-C", "-", "-o", str(out), "-w", "%{http_code}", f"http://127.0.0.1:{site.port}{path}")
    assert r.stdout == b"206"
    assert out.read_bytes() == DATA


def test_without_force_ranges_the_whole_body_comes(site, tmp_path):
    """The upstream ignores Range and ngate does not cut (nginx: ranges need force_ranges)."""
    r = curl("-r", "1000-1999", "-D", "-", "-o", str(tmp_path / "b"),
             f"http://127.0.0.1:{site.port}/noranges/data.bin")
    assert r.stdout.startswith(b"HTTP/1.1 200") and b"accept-ranges" not in r.stdout.lower()
    assert (tmp_path / "b").read_bytes() == DATA


@pytest.mark.parametrize("path", URLS)
def test_if_range(site, path):
    url = f"http://127.0.0.1:{site.port}{path}"
    head = curl("-I", url).stdout.decode()
    etag = next(line.split(":", 1)[1].strip() for line in head.splitlines()
                if line.lower().startswith("etag:"))
    same = curl("-r", "10-19", "-H", f"If-Range: {etag}", "-o", "-", url)
    assert same.stdout == DATA[10:20]
    changed = curl("-r", "10-19", "-H", 'If-Range: "other"', "-o", "-", url)
    assert changed.stdout == DATA


@pytest.mark.parametrize("path", URLS)
def test_conditionals_pass_to_the_uncached_upstream(site, path):
    """PHP sends ETag "php-data" and ignores If-None-Match: ngate does not turn its 200 into a
    304 (nginx's not_modified filter is off for uncached upstream responses). (curl's own
    %{http_code} says 304 for an unmet -z, whatever the server sent: the status line is read.)"""
    url = f"http://127.0.0.1:{site.port}{path}"
    r = curl("-z", "Thu, 01 Jan 2037 00:00:00 GMT", "-H", 'If-None-Match: "php-data"',
             "-D", "-", "-o", "/dev/null", url)
    assert r.stdout.startswith(b"HTTP/1.1 200 OK\r\n"), r.stdout


@pytest.mark.parametrize("path", URLS)
def test_unsatisfiable_range(site, path):
    r = curl("-r", "999999-", "-D", "-", "-o", "/dev/null", f"http://127.0.0.1:{site.port}{path}")
    assert r.stdout.startswith(b"HTTP/1.1 416")
    assert b"Content-Range: bytes */%d\r\n" % len(DATA) in r.stdout


def test_range_with_trailers(site, tmp_path):
    """add_trailer chunks the response after the range filter cut it (nginx's filter order):
    a chunked 206 of the range, with the trailer at its end."""
    r = curl("-r", "1000-1999", "-D", "-", "-o", str(tmp_path / "b"),
             f"http://127.0.0.1:{site.port}/ft/data.bin")
    assert (tmp_path / "b").read_bytes() == DATA[1000:2000]
    head = r.stdout.lower()
    assert head.startswith(b"http/1.1 206") and b"transfer-encoding: chunked" in head
    assert b"content-range: bytes 1000-1999/%d" % len(DATA) in head
    assert b"\r\nx-sent: 10" in head              # curl -D prints the trailer too
