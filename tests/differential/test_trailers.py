"""add_trailer, nginx vs ngate: the trailers of static, proxied (length-delimited and chunked
upstream responses), FastCGI (php-fpm) and locally made responses, over HTTP/1.1 (the last chunk;
a response of known length goes chunked), HTTP/1.0 and HEAD (none), error statuses (`always`
only), `chunked_transfer_encoding off`, inheritance, and over HTTP/2 (a trailing HEADERS frame).

Variables whose value depends on timing ($upstream_response_time, and $body_bytes_sent, which
counts what left before the last buffer) are left out: they differ between two nginx runs."""
from __future__ import annotations

import os

import h2.events
import pytest

from tests.harness.backend import Reply
from tests.harness.client import Response
from tests.harness.differential import Differential
from tests.harness.h2client import H2Client
from tests.harness.paths import readable_tmpdir
from tests.harness.phpfpm import PhpFpm

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name localhost;
        root {docroot};
        add_trailer X-Var $host;
        add_trailer X-Always "$status always" always;
        add_trailer X-Empty '';
        add_trailer X-Sent-Trailer $sent_trailer_x_var;
        location /file.txt { }
        location /empty.txt { }
        location /ret { return 200 "made here\\n"; }
        location /nx { }
        location /off { chunked_transfer_encoding off; }
        location /own { add_trailer X-Own $uri; }
        location /p/ {
            proxy_pass http://127.0.0.1:{backend_port}/b/;
            proxy_http_version 1.1;
            add_trailer X-Up-Length $upstream_response_length;
            add_trailer X-Up-Status $upstream_status;
            add_trailer X-Up-Header $upstream_http_x_up;
        }
        location /pc/ {
            # a chunked upstream response ($upstream_response_length differs: ngate counts the
            # body without the upstream's chunk framing, nginx with it)
            proxy_pass http://127.0.0.1:{backend_port}/b/;
            proxy_http_version 1.1;
            add_trailer X-Up-Status $upstream_status;
        }
        location /php {
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_param SCRIPT_FILENAME {fpm_docroot}/t.php;
            fastcgi_param REQUEST_METHOD $request_method;
            add_trailer X-Fcgi "$status $upstream_status";
        }
    }
}
"""

CACHE_CONF = """
http {
    proxy_cache_path {prefix}/cache keys_zone=tc:1m use_temp_path=off;
    server {
        listen 127.0.0.1:{port};
        location / {
            proxy_pass http://127.0.0.1:{backend_port}/b/;
            proxy_cache tc;
            proxy_cache_valid 200 1m;
            add_trailer X-Cache $upstream_cache_status;
        }
    }
}
"""

H2_CONF = CONF.replace("listen 127.0.0.1:{port};", "listen 127.0.0.1:{port} http2;")


@pytest.fixture(scope="module")
def fpm(tmp_path_factory):
    with PhpFpm(tmp_path_factory.mktemp("fpm-trailers")) as f:
        f.script("t.php", "<?php header('X-Php: 1'); echo 'from php ', strlen('abc'), \"\\n\";")
        yield f


@pytest.fixture(scope="module")
def docroot():
    with readable_tmpdir("trailers-") as root:
        (root / "file.txt").write_bytes(b"SEE-THIS")
        (root / "empty.txt").write_bytes(b"")
        (root / "own").write_bytes(b"own file\n")
        (root / "off").write_bytes(b"not chunked\n")
        for p in root.iterdir():
            os.chmod(p, 0o644)
        yield root


def _routes(d) -> None:
    d.backend.route("/b/len", Reply(headers=[(b"Content-Type", b"text/x"), (b"X-Up", b"u")],
                                    body=b"from backend\n"))
    d.backend.route("/b/chunked", Reply(chunks=[b"one ", b"two"]))
    d.backend.route("/b/missing", Reply(status=404, body=b"no such thing\n"))


@pytest.fixture(scope="module")
def diff(differential, docroot, fpm):
    d = differential(CONF, docroot=str(docroot), fpm_port=fpm.port, fpm_docroot=str(fpm.docroot))
    _routes(d)
    return d


@pytest.fixture(scope="module")
def diff_h2(differential, docroot, fpm):
    d = differential(H2_CONF, docroot=str(docroot), fpm_port=fpm.port,
                     fpm_docroot=str(fpm.docroot))
    _routes(d)
    return d


TARGETS = ["/file.txt", "/empty.txt", "/ret", "/nx", "/own", "/p/len", "/pc/chunked",
           "/p/missing", "/php"]


@pytest.mark.parametrize("target", TARGETS + ["/off"])
def test_http11(diff, target):
    out = diff.check_request("GET", target)
    r = out.response
    if target in ("/file.txt", "/ret", "/php", "/p/len"):
        assert r.framing == "chunked", r            # a known length goes chunked for trailers
    if target in ("/file.txt", "/ret"):
        assert r.trailers[0] == (b"X-Var", b"example.test")
        assert (b"X-Sent-Trailer", b"example.test") in r.trailers
    if target == "/p/len":                          # its own add_trailer: none inherited
        assert r.trailers == [(b"X-Up-Length", b"13"), (b"X-Up-Status", b"200"),
                              (b"X-Up-Header", b"u")]
    if target == "/php":
        assert r.trailers == [(b"X-Fcgi", b"200 200")]
    if target == "/off":
        assert r.trailers == [] and r.framing == "length"


@pytest.mark.parametrize("target", ["/file.txt", "/ret", "/nx", "/p/len", "/php"])
def test_http10_and_head_get_none(diff, target):
    out = diff.check_request("GET", target, version="HTTP/1.0")
    assert out.response.trailers == []
    out = diff.check_request("HEAD", target)
    assert out.response.trailers == []


@pytest.fixture(scope="module")
def diff_cache():
    # the workers run as nobody under a root test run and write the cache: a base directory
    # of its own, outside pytest's 0700 tree
    with readable_tmpdir("trailers-cache-") as base:
        d = Differential(CACHE_CONF, base).start()
        try:
            _routes(d)
            yield d
        finally:
            d.stop()


def test_cached_response(diff_cache):
    first = diff_cache.check_request("GET", "/len").response
    again = diff_cache.check_request("GET", "/len").response
    assert (first.trailers, again.trailers) == ([(b"X-Cache", b"MISS")], [(b"X-Cache", b"HIT")])
    assert again.body == b"from backend\n" and again.framing == "chunked"


def test_error_status_only_always(diff):
    r = diff.check_request("GET", "/nx").response
    assert r.status == 404
    assert r.trailers == [(b"X-Always", b"404 always")]


def _h2(path: str, method: str = "GET"):
    def script(port: int) -> Response:
        with H2Client(port) as c:
            sid = c.request(path, method=method, authority="localhost")
            status, _head, data = c.response(sid)
            hdrs = [(n, v) for n, v in c.heads.get(sid, []) if n not in (b":status", b"date")]
            trailers = [h for ev in c.events if isinstance(ev, h2.events.TrailersReceived)
                        and ev.stream_id == sid for h in ev.headers]
            return Response(b"HTTP/2", status, b"", hdrs, data, trailers=trailers)
    return script


@pytest.mark.parametrize("target", TARGETS)
def test_http2(diff_h2, target):
    r = diff_h2.check(_h2(target)).response
    if target in ("/file.txt", "/ret"):
        assert (b"x-var", b"localhost") in r.trailers
    if target == "/php":
        assert r.trailers == [(b"x-fcgi", b"200 200")]


def test_http2_head_gets_none(diff_h2):
    assert diff_h2.check(_h2("/file.txt", "HEAD")).response.trailers == []


@pytest.mark.parametrize("target", ["/file.txt", "/empty.txt", "/own"])
@pytest.mark.parametrize("rng", ["bytes=4-", "bytes=-2", "bytes=0-1,4-5", "bytes=99-", "bytes=x"])
def test_range_then_chunked(diff, target, rng):
    """nginx's range header filter runs before its chunked filter drops the length: a static
    file's range (and a 416) go chunked, with the trailers of their status."""
    out = diff.check_request("GET", target, headers=[(b"Range", rng.encode())])
    if target == "/file.txt" and rng == "bytes=-2":
        assert out.response.status == 206 and out.response.body == b"IS"
