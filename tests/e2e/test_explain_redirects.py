"""`ngate explain` and the running server agree on internal redirects (issue 13: explain had its
own redirect, which skipped the URI normalisation and the count the request path does).

Both go through ngate/http/phases.py count_redirect and set_uri now: the same URI, the same
location, the same 500 on the 11th redirect (nginx's limit; nginx 1.22 logs "rewrite or
internal redirection cycle while internally redirecting to ...").

The redirect's URI is searched as written, as nginx 1.22's ngx_http_internal_redirect does
(tests/differential/test_internal_redirect_uri.py compares it with nginx).
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.harness.client import request
from tests.harness.paths import readable_tmpdir
from tests.harness.processes import REPO_ROOT, ProxyProcess, fresh_prefix

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        root {prefix}/html;
        location / { try_files /nope /a/../b/x; }
        location /a/ { return 200 "a"; }
        location /b/ { return 200 "b"; }
        location /loop1 { try_files /nope /loop2; }
        location /loop2 { try_files /nope /loop1; }
        location /index/ { index /b/../a/i; }
    }
}
"""


@pytest.fixture(scope="module")
def server():
    with readable_tmpdir() as base:
        prefix = fresh_prefix(base, "ngate")
        (prefix / "html" / "index").mkdir(parents=True)
        with ProxyProcess("ngate", CONF, prefix) as proc:
            yield proc


def explain(proc, target: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "ngate", "explain", "-p", str(proc.prefix), "-c",
         str(proc.prefix / "nginx.conf"), f"http://127.0.0.1:{proc.port}{target}"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def answer(report: str) -> str:
    return next(line for line in report.splitlines() if line.startswith("response"))


@pytest.mark.parametrize("target, status, body", [
    ("/", 200, b"a"),               # try_files' fallback /a/../b/x is searched as written
    ("/index/", 200, b"b"),         # index's /b/../a/i too
])
def test_explain_follows_the_redirected_uri_as_the_server_does(server, target, status, body):
    resp = request(server.port, target=target, host=b"localhost")
    assert (resp.status, resp.body) == (status, body)
    report = explain(server, target)
    assert f"response  {status} OK, body '{body.decode()}'" in report, report
    assert "normalised to" not in report


def test_explain_stops_at_the_eleventh_redirect_as_the_server_does(server):
    resp = request(server.port, target="/loop1", host=b"localhost")
    assert resp.status == 500
    assert 'rewrite or internal redirection cycle while internally redirecting to "/loop' \
        in server.error_log()
    report = explain(server, "/loop1")
    assert answer(report).startswith("response  500 Internal Server Error"), report
    assert report.count("internal redirect to /loop") == 11, report
