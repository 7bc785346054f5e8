"""Range and conditional requests on proxied and FastCGI responses, nginx against ngate.

nginx's range filter acts on an upstream's 200 only with proxy_force_ranges / fastcgi_force_ranges
(one range, streamed through; more ranges get the whole body), never when the length is unknown
or another filter changed the body; otherwise the upstream's Accept-Ranges passes and Range is
ignored. Without a cache nginx's not_modified filter is off for upstream responses: If-None-Match,
If-Modified-Since, If-Match and If-Unmodified-Since pass to the upstream and the 200 comes back.
add_header Last-Modified / ETag replace the upstream's (and If-Range sees the replaced ones).
"""
import pytest

from tests.harness.backend import Reply
from tests.harness.client import build_request, exchange
from tests.harness.differential import Differential
from tests.harness.paths import readable_tmpdir
from tests.harness.phpfpm import PhpFpm, require_php_fpm

CONF = """
http {
    proxy_cache_path {prefix}/cache keys_zone=one:1m use_temp_path=off;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;

        location /plain/ {
            proxy_pass http://127.0.0.1:{backend_port}/r/;
        }
        location /force/ {
            proxy_pass http://127.0.0.1:{backend_port}/r/;
            proxy_force_ranges on;
        }
        location /force-http11/ {
            proxy_pass http://127.0.0.1:{backend_port}/r/;
            proxy_http_version 1.1;
            proxy_force_ranges on;
            add_header X-Added yes;
        }
        location /force-trailer/ {
            proxy_pass http://127.0.0.1:{backend_port}/r/;
            proxy_force_ranges on;
            add_trailer X-Trailer "$status";
            add_trailer X-Empty "";
        }
        location /force-max0/ {
            proxy_pass http://127.0.0.1:{backend_port}/r/;
            proxy_force_ranges on;
            max_ranges 0;
        }
        location /force-sub/ {
            proxy_pass http://127.0.0.1:{backend_port}/r/;
            proxy_force_ranges on;
            sub_filter_types text/plain;
            sub_filter def DEF;
        }
        location /force-validators/ {
            proxy_pass http://127.0.0.1:{backend_port}/r/;
            proxy_force_ranges on;
            add_header ETag '"replaced"';
            add_header Last-Modified "";
        }
        location /cache-force/ {
            proxy_pass http://127.0.0.1:{backend_port}/c/force/;
            proxy_cache one;
            proxy_cache_valid 200 1h;
            proxy_force_ranges on;
            add_header X-Cache $upstream_cache_status;
        }
        location /cache/ {
            proxy_pass http://127.0.0.1:{backend_port}/c/;
            proxy_cache one;
            proxy_cache_valid 200 1h;
            add_header X-Cache $upstream_cache_status;
        }
        location /php/ {
            root {docroot};
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_param SCRIPT_FILENAME $document_root/body.php;
            fastcgi_param QUERY_STRING $query_string;
        }
        location /php-force/ {
            root {docroot};
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_force_ranges on;
            fastcgi_param SCRIPT_FILENAME $document_root/body.php;
            fastcgi_param QUERY_STRING $query_string;
        }
    }
}
"""

BODY = b"abcdefghijklmnopqrstuvwxyz"
LM = b"Mon, 28 Sep 1970 06:00:00 GMT"

PHP = """<?php
header('ETag: "php1"');
header('Last-Modified: Mon, 28 Sep 1970 06:00:00 GMT');
if (!isset($_GET['nolength'])) header('Content-Length: 26');
echo 'abcdefghijklmnopqrstuvwxyz';
"""


@pytest.fixture(scope="module")
def fpm(tmp_path_factory):
    require_php_fpm()
    with PhpFpm(tmp_path_factory.mktemp("fpm"), children=2) as f:
        f.script("body.php", PHP)
        yield f


@pytest.fixture(scope="module")
def diff(fpm):
    # the workers run as nobody under a root test run and write the cache: a base directory
    # outside pytest's 0700 tree (as test_proxy_cache.py)
    with readable_tmpdir("ngate-ranges-diff-") as base:
        d = Differential(CONF, base, fpm_port=fpm.port, docroot=str(fpm.docroot)).start()
        try:
            _routes(d.backend)
            yield d
        finally:
            d.stop()


def _routes(b):
    headers = [(b"Content-Type", b"text/plain"), (b"ETag", b'"e1"'), (b"Last-Modified", LM),
               (b"Accept-Ranges", b"bytes"), (b"X-Up", b"1")]
    b.route("/r/file", Reply(headers=headers, body=BODY))
    b.route("/r/chunked", Reply(headers=headers, chunks=[BODY[:10], BODY[10:]]))
    for prefix in ("/c/", "/c/force/"):     # nginx's cache key has the upstream's URI
        b.route(prefix + "noranges", Reply(headers=headers[:3] + headers[4:], body=BODY))
        b.route(prefix + "ranges", Reply(headers=headers, body=BODY))
    b.route("/r/missing", Reply(status=404, headers=headers, body=BODY))


REQUESTS = {
    "none": [],
    "middle": [(b"Range", b"bytes=2-5")],
    "open": [(b"Range", b"bytes=20-")],
    "suffix": [(b"Range", b"bytes=-3")],
    "past-end": [(b"Range", b"bytes=30-")],
    "malformed": [(b"Range", b"bytes=x")],
    "other-unit": [(b"Range", b"items=1-2")],
    "two-ranges": [(b"Range", b"bytes=0-1,4-5")],
    "too-long": [(b"Range", b"bytes=0-5,0-30")],
    "if-range-etag": [(b"Range", b"bytes=2-5"), (b"If-Range", b'"e1"')],
    "if-range-etag-php": [(b"Range", b"bytes=2-5"), (b"If-Range", b'"php1"')],
    "if-range-other": [(b"Range", b"bytes=2-5"), (b"If-Range", b'"nope"')],
    "if-range-replaced": [(b"Range", b"bytes=2-5"), (b"If-Range", b'"replaced"')],
    "if-range-date": [(b"Range", b"bytes=2-5"), (b"If-Range", LM)],
    "if-range-date-other": [(b"Range", b"bytes=2-5"),
                            (b"If-Range", b"Mon, 28 Sep 1970 06:00:01 GMT")],
    "if-none-match": [(b"If-None-Match", b'"e1"')],
    "if-modified-since": [(b"If-Modified-Since", LM)],
    "if-match-other": [(b"If-Match", b'"nope"')],
    "if-unmodified-since-old": [(b"If-Unmodified-Since", b"Thu, 01 Jan 1970 00:00:01 GMT")],
}

PROXIED = ["/plain/file", "/force/file", "/force-http11/file", "/force-http11/chunked",
           "/force-trailer/file", "/force-trailer/chunked",
           "/force/missing", "/force-max0/file", "/force-sub/file", "/force-validators/file"]
FASTCGI = ["/php/x", "/php-force/x", "/php-force/x?nolength=1"]


@pytest.mark.parametrize("target", PROXIED + FASTCGI)
@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_range_and_conditionals(diff, target, name):
    out = diff.check_request("GET", target, headers=REQUESTS[name] + [(b"Connection", b"close")])
    if target in ("/force/file", "/force-trailer/file") and name == "middle":
        assert out.response.status == 206 and out.response.body == b"cdef"


@pytest.mark.parametrize("target", ["/force/file", "/php-force/x", "/plain/file",
                                    "/force-trailer/file"])
@pytest.mark.parametrize("name", ["middle", "past-end", "two-ranges"])
def test_head_with_range(diff, target, name):
    diff.check_request("HEAD", target, headers=REQUESTS[name] + [(b"Connection", b"close")])


def test_range_then_keepalive(diff):
    """A 206 cut from a longer upstream body and a 416 leave the connection usable."""
    raw = (build_request("GET", "/force/file", headers=[(b"Range", b"bytes=0-0")])
           + build_request("GET", "/force/file", headers=[(b"Range", b"bytes=99-")])
           + build_request("GET", "/force/file", headers=[(b"Connection", b"close")]))
    out = diff.check(lambda port: exchange(port, raw, count=3))
    assert [r.status for r in out.result] == [206, 416, 200]


@pytest.mark.parametrize("loc", ["/cache-force/", "/cache/"])
@pytest.mark.parametrize("target", ["noranges", "ranges"])
def test_cached_ranges(diff, loc, target):
    """The response being cached gets one range (nginx's single_range); from the entry several
    ranges make a multipart answer; force_ranges serves ranges of an upstream without
    Accept-Ranges, which the plain location refuses."""
    seq = [[(b"Range", b"bytes=4-")], [(b"Range", b"bytes=4-")], [(b"Range", b"bytes=0-2,4-5")],
           [(b"Range", b"bytes=30-")], [(b"If-None-Match", b'"e1"')], []]
    for i, extra in enumerate(seq):
        raw = build_request("GET", f"{loc}{target}", headers=extra + [(b"Connection", b"close")])
        out = diff.check(lambda port: _numbered_boundary(exchange(port, raw)[0]))
    assert out.response.status == 200


def _numbered_boundary(r):
    """(status, headers, body) with the multipart boundary's number (nginx's temp number, which
    its cache's temp files advance too) made BOUNDARY."""
    ctype = r.header("content-type") or b""
    i = ctype.find(b"boundary=")
    if i < 0:
        return r
    number = ctype[i + 9:]
    headers = [(n, v.replace(number, b"BOUNDARY")) for n, v in r.headers
               if n.lower() not in (b"date", b"server")]
    return r.status, headers, r.body.replace(number, b"BOUNDARY")
