"""sub_filter through nginx and ngate: proxied, static and `return` responses, several patterns,
sub_filter_once, sub_filter_types, sub_filter_last_modified, variables, matches across upstream
reads and file chunks; with charset on the same responses (charset_types)."""
import os

import pytest

from tests.harness.backend import Reply
from tests.harness.paths import readable_tmpdir

MTIME = 1577934245
HTML = b"<html><head><title>Hello</title></head><body>Hello World hello HELLO</body></html>"

CONF = """
http {
    include /etc/nginx/mime.types;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        root {docroot};
        location /p/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            sub_filter hello bye;
            sub_filter world "$uri!";
        }
        location /all/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            sub_filter hello bye;
            sub_filter_once off;
        }
        location /lm/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            sub_filter hello bye;
            sub_filter_last_modified on;
        }
        location /types/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            sub_filter hello bye;
            sub_filter_types text/plain;
        }
        location /anytype/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            sub_filter hello bye;
            sub_filter_types *;
        }
        location /split/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            sub_filter "across the boundary" "(joined)";
            sub_filter_once off;
        }
        location /s/ { alias {docroot}/; sub_filter hello bye; charset utf-8; }
        location /r/ { sub_filter_types *; sub_filter ab X; sub_filter_once off; return 200 "abcab$arg_a"; }
        location /cs/ { proxy_pass http://127.0.0.1:{backend_port}/; charset utf-8; }
        location /cs-types/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            charset utf-8; charset_types application/json;
        }
        location /cs-static/ { alias {docroot}/; charset utf-8; }
        location /cs-redirect/ { charset utf-8; return 302 /x; }
    }
}
"""

LM = [(b"Last-Modified", b"Thu, 02 Jan 2020 03:04:05 GMT"), (b"ETag", b'"e"')]
ROUTES = {
    "/page.html": Reply(headers=[(b"Content-Type", b"text/html")] + LM, body=HTML),
    "/page.txt": Reply(headers=[(b"Content-Type", b"text/plain")], body=HTML),
    "/split.html": Reply(headers=[(b"Content-Type", b"text/html")],
                         chunks=[b"one across the bou", b"ndary two across", b" the boundary",
                                 b" end across the"]),
    "/koi.html": Reply(headers=[(b"Content-Type", b"text/html; charset=koi8-r")], body=b"x"),
    "/utf.html": Reply(headers=[(b"Content-Type", b"text/html; charset=UTF-8")], body=b"x"),
    "/data.json": Reply(headers=[(b"Content-Type", b"application/json")], body=b"{}"),
    "/empty.html": Reply(headers=[(b"Content-Type", b"text/html")], body=b""),
    "/notype": Reply(headers=[], body=HTML),    # `*` takes it (ngx_http_test_content_type)
}


@pytest.fixture(scope="module")
def docroot():
    with readable_tmpdir("ngate-subroot-") as root:
        yield _fill(root)


def _fill(root):
    for name, data in (("page.html", HTML), ("page.txt", HTML), ("big.html", HTML * 5000)):
        (root / name).write_bytes(data)
        os.utime(root / name, (MTIME, MTIME))
    return root


@pytest.fixture(scope="module")
def diff(differential, docroot):
    d = differential(CONF, docroot=docroot)
    for path, reply in ROUTES.items():
        d.backend.route(path, reply)
    return d


TARGETS = ["/p/page.html", "/p/page.txt", "/all/page.html", "/lm/page.html", "/types/page.txt",
           "/anytype/notype", "/p/notype", "/anytype/data.json",
           "/split/split.html", "/p/empty.html", "/s/page.html", "/s/page.txt", "/s/big.html",
           "/r/?a=xab", "/cs/page.html", "/cs/page.txt", "/cs/data.json", "/cs/koi.html",
           "/cs-types/data.json", "/cs-types/page.html", "/cs-static/page.html",
           "/cs-static/page.txt", "/cs-redirect/"]


@pytest.mark.parametrize("target", TARGETS)
def test_get(diff, target):
    diff.check_request("GET", target)


@pytest.mark.parametrize("target", ["/p/page.html", "/s/page.html", "/cs-static/page.html"])
def test_head(diff, target):
    diff.check_request("HEAD", target)


def test_facts(diff):
    r = diff.check_request("GET", "/split/split.html").response
    assert r.body == b"one (joined) two (joined) end across the"
    r = diff.check_request("GET", "/cs-static/page.html").response
    assert r.header("content-type") == b"text/html; charset=utf-8"
    r = diff.check_request("GET", "/p/page.html").response
    assert r.header("last-modified") is None and b"bye" in r.body
