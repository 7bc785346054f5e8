"""X-Accel-Redirect, X-Accel-Limit-Rate, proxy_ignore_headers, limit_rate / limit_rate_after /
$limit_rate and proxy_limit_rate: nginx and ngate side by side. Rates are checked by what they
imply at least (30000 bytes at 12k/s cannot all arrive within the first second), never by an
upper bound."""
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.harness.backend import Reply
from tests.harness.client import Connection, build_request

BODY = b"X" * 30000

CONF = """
http {
    log_format rate $uri:$limit_rate;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        access_log logs/rate.log rate;
        root {docroot};

        location /xar/ {
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /ignored/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_ignore_headers X-Accel-Redirect x-accel-limit-rate;
        }
        location /internal/ {
            internal;
            return 200 "internal $uri $args $request_method $upstream_http_x_accel_redirect\\n";
        }
        location @named {
            return 200 "named $uri\\n";
        }
        location /limited/ {
            limit_rate 12k;
            limit_rate_after 256;
            alias {docroot}/;
        }
        location /fast/ {
            alias {docroot}/;
        }
        location /var/ {
            set $limit_rate $arg_rate;
            alias {docroot}/;
        }
        location /read-limited/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_limit_rate 12k;
        }
    }
}
"""


@pytest.fixture(scope="module")
def docroot():
    path = Path(tempfile.mkdtemp(prefix="ngate-accel-"))
    path.chmod(0o755)       # nginx's workers (nobody) read it
    (path / "data").write_bytes(BODY)
    (path / "data").chmod(0o644)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def diff(differential, docroot):
    d = differential(CONF, docroot=str(docroot))
    b = d.backend
    for path, target in [("/xar/uri", b"/internal/to%20x?a=1"), ("/xar/named", b"@named"),
                         ("/xar/dotdot", b"/internal/../secret"), ("/ignored/uri", b"/internal/x")]:
        b.route(path, Reply(headers=[
            (b"X-Accel-Redirect", target), (b"X-Other", b"dropped"), (b"Content-Type", b"text/x"),
            (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2"), (b"Cache-Control", b"no-cache"),
            (b"Content-Disposition", b"attachment"), (b"Expires", b"fake"),
            (b"Accept-Ranges", b"parrots")], body=b"from the backend"))
    for prefix in ("/xar", "/ignored"):
        b.route(f"{prefix}/rate", Reply(headers=[(b"X-Accel-Limit-Rate", b"12000")], body=BODY))
    b.route("/read-limited/data", Reply(body=BODY + BODY))    # 60000 at 12k/s: beyond 3s
    return d


@pytest.mark.parametrize("target", ["/xar/uri", "/xar/named", "/xar/dotdot", "/ignored/uri"])
@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
def test_x_accel_redirect(diff, target, method):
    body = b"x" if method == "POST" else None
    diff.check_request(method, target, body=body)


def test_x_accel_redirect_outcomes(diff):
    get = diff.check_request
    assert get("POST", "/xar/uri", body=b"x").response.body == \
        b"internal /internal/to x a=1 GET /internal/to%20x?a=1\n"
    named = get("GET", "/xar/named").response
    assert named.body == b"named /xar/named\n"
    assert named.header("content-type") == b"text/x" and named.header("x-other") is None
    assert named.header_all("set-cookie") == [b"a=1", b"b=2"]
    assert get("GET", "/xar/dotdot").response.status == 404
    assert get("GET", "/ignored/uri").response.body == b"from the backend"


def _timed(target: str):
    def script(port):
        with Connection(port, timeout=10) as c:
            started = time.monotonic()
            c.send(build_request("GET", target))
            r = c.read_response()
            return r.status, len(r.body), time.monotonic() - started >= 1.0
    return script


@pytest.mark.parametrize("target, slow", [
    ("/limited/data", True), ("/fast/data", False), ("/var/data?rate=12k", True),
    ("/var/data?rate=0", False), ("/xar/rate", True), ("/ignored/rate", False),
    ("/read-limited/data", True)])
def test_rates(diff, target, slow):
    out = diff.check(_timed(target))
    status, length, took_a_second = out.result
    assert status == 200 and length in (len(BODY), 2 * len(BODY))
    if slow:
        assert took_a_second
