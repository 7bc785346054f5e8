"""gzip, gunzip and gzip_static through nginx and ngate: which responses get compressed
(status, type, length, Content-Encoding already set, HEAD, Range, HTTP/1.0), every gzip_proxied
flag for requests with Via, gzip_disable (msie6 and a regex), gzip_http_version, gzip_vary, the
weak ETag, proxied, static and `.gz` files, and gunzip for clients without gzip.

Headers are compared as they are; bodies after decompression (the compressed bytes happen to be
equal too, with the same zlib, but only the content is nginx's contract)."""
import gzip
import os
import zlib

import pytest

from tests.harness.backend import Reply
from tests.harness.paths import readable_tmpdir
from tests.harness.client import build_request, exchange

MTIME = 1577934245
CSS = b"".join(b".c%d { color: #%03d; margin: %dpx; }\n" % (i, i % 999, i % 7) for i in range(3000))
JS = b"".join(b"function f%d(a) { return a * %d + %d; }\n" % (i, i, i % 13) for i in range(2000))

SSI_CSS = b"".join(b"/* %d <!--# echo var=\"uri\" --> */ .x%d{}\n" % (i, i) for i in range(3000))

CONF = """
http {
    include /etc/nginx/mime.types;
    gzip on;
    gzip_types text/css application/javascript;
    gzip_vary on;
    gzip_min_length 100;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        root {docroot};
        location /p/ { proxy_pass http://127.0.0.1:{backend_port}/; }
        location /p9/ { proxy_pass http://127.0.0.1:{backend_port}/; gzip_comp_level 9; }
        location /any/ { proxy_pass http://127.0.0.1:{backend_port}/; gzip_proxied any; }
        location /expired/ { proxy_pass http://127.0.0.1:{backend_port}/; gzip_proxied expired; }
        location /cc/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            gzip_proxied no-cache no-store private;
        }
        location /nolm/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            gzip_proxied no_last_modified no_etag;
        }
        location /auth/ { proxy_pass http://127.0.0.1:{backend_port}/; gzip_proxied auth; }
        location /dis/ {
            proxy_pass http://127.0.0.1:{backend_port}/;
            gzip_disable msie6 "^curl/[0-7]";
        }
        location /h10/ { proxy_pass http://127.0.0.1:{backend_port}/; gzip_http_version 1.0; }
        location /novary/ { proxy_pass http://127.0.0.1:{backend_port}/; gzip_vary off; }
        location /anytype/ { proxy_pass http://127.0.0.1:{backend_port}/; gzip_types *; }
        location /off/ { proxy_pass http://127.0.0.1:{backend_port}/; gzip off; }
        location /gun/ { proxy_pass http://127.0.0.1:{backend_port}/; gunzip on; }
        location /gunssi/ {
            # gunzip's bounded steps (1 KiB) in front of SSI and addition (postponed output)
            proxy_pass http://127.0.0.1:{backend_port}/;
            gunzip on; gunzip_buffers 1 1k;
            ssi on; ssi_types text/css;
            addition_types text/css; add_before_body /before.txt; add_after_body /before.txt;
        }
        location = /before.txt { return 200 "[before/after]"; }
        location /s/ { alias {docroot}/; }
        location /gs/ { alias {docroot}/; gzip_static on; }
        location /gsa/ { alias {docroot}/; gzip_static always; gunzip on; }
        location /gsnv/ { alias {docroot}/; gzip_static on; gzip_vary off; }
        location /ret/ { gzip_min_length 1; return 200 "a text/html body from return\\n"; }
    }
}
"""

LM = [(b"Last-Modified", b"Thu, 02 Jan 2020 03:04:05 GMT")]
ROUTES = {
    "/app.css": Reply(headers=[(b"Content-Type", b"text/css"), (b"ETag", b'"v1"')] + LM, body=CSS),
    "/app.js": Reply(headers=[(b"Content-Type", b"application/javascript; charset=utf-8")],
                     body=JS),
    "/page.html": Reply(headers=[(b"Content-Type", b"text/html")], body=CSS),
    "/data.json": Reply(headers=[(b"Content-Type", b"application/json")], body=CSS),
    "/notype": Reply(headers=[], body=CSS),     # gzip_types * takes it (ngx_http_test_content_type)
    "/short.css": Reply(headers=[(b"Content-Type", b"text/css")], body=b"a{}\n" * 20),
    "/chunked.css": Reply(headers=[(b"Content-Type", b"text/css")],
                          chunks=[CSS[:3000], CSS[3000:9000], b"x{}\n"]),
    "/short-chunked.css": Reply(headers=[(b"Content-Type", b"text/css")], chunks=[b"a{}\n"]),
    "/encoded.css": Reply(headers=[(b"Content-Type", b"text/css"),
                                   (b"Content-Encoding", b"br")], body=CSS),
    "/404.css": Reply(status=404, headers=[(b"Content-Type", b"text/css")], body=CSS),
    "/403.css": Reply(status=403, headers=[(b"Content-Type", b"text/css")], body=CSS),
    "/500.css": Reply(status=500, headers=[(b"Content-Type", b"text/css")], body=CSS),
    "/201.css": Reply(status=201, headers=[(b"Content-Type", b"text/css")], body=CSS),
    "/206.css": Reply(status=206, headers=[(b"Content-Type", b"text/css"),
                                           (b"Content-Range", b"bytes 0-999/99999")],
                      body=CSS[:1000]),
    "/204.css": Reply(status=204, headers=[(b"Content-Type", b"text/css")], body=b""),
    "/past.css": Reply(headers=[(b"Content-Type", b"text/css"),
                                (b"Expires", b"Thu, 01 Jan 1970 00:00:01 GMT")], body=CSS),
    "/future.css": Reply(headers=[(b"Content-Type", b"text/css"),
                                  (b"Expires", b"Thu, 01 Jan 2037 00:00:01 GMT")], body=CSS),
    "/nocache.css": Reply(headers=[(b"Content-Type", b"text/css"),
                                   (b"Cache-Control", b"max-age=0, no-cache")], body=CSS),
    "/private.css": Reply(headers=[(b"Content-Type", b"text/css"),
                                   (b"Cache-Control", b"private")], body=CSS),
    "/public.css": Reply(headers=[(b"Content-Type", b"text/css"),
                                  (b"Cache-Control", b"public, max-age=60")], body=CSS),
    "/plain.css": Reply(headers=[(b"Content-Type", b"text/css")], body=CSS),
    "/etag.css": Reply(headers=[(b"Content-Type", b"text/css"), (b"ETag", b'"e"')], body=CSS),
    "/badetag.css": Reply(headers=[(b"Content-Type", b"text/css"), (b"ETag", b"bare")], body=CSS),
    "/weak.css": Reply(headers=[(b"Content-Type", b"text/css"), (b"ETag", b'W/"w"')], body=CSS),
    "/ranges.css": Reply(headers=[(b"Content-Type", b"text/css"),
                                  (b"Accept-Ranges", b"bytes")], body=CSS),
    "/gz.css": Reply(headers=[(b"Content-Type", b"text/css"), (b"Content-Encoding", b"gzip"),
                              (b"ETag", b'"g"')], body=gzip.compress(CSS, mtime=0)),
    "/gz-ssi.css": Reply(headers=[(b"Content-Type", b"text/css"), (b"Content-Encoding", b"gzip")],
                         body=gzip.compress(SSI_CSS, mtime=0)),
    "/gz-chunked.css": Reply(headers=[(b"Content-Type", b"text/css"),
                                      (b"Content-Encoding", b"gzip")],
                             chunks=[gzip.compress(CSS, mtime=0)[:500],
                                     gzip.compress(CSS, mtime=0)[500:]]),
}

GZ = [(b"Accept-Encoding", b"gzip, deflate")]
VIA = [(b"Via", b"1.1 cache.example")]


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (MTIME, MTIME))


@pytest.fixture(scope="module")
def docroot():
    with readable_tmpdir("ngate-gzroot-") as root:
        yield _fill(root)


def _fill(root):
    _write(root / "app.css", CSS)
    _write(root / "app.js", JS)
    _write(root / "pre.css", CSS)
    _write(root / "pre.css.gz", gzip.compress(CSS, 9, mtime=0))
    _write(root / "tiny.css", b"a{}\n")
    _write(root / "empty.css", b"")
    _write(root / "photo.png", CSS)
    return root


@pytest.fixture(scope="module")
def diff(differential, docroot):
    d = differential(CONF, docroot=docroot)
    for path, reply in ROUTES.items():
        d.backend.route(path, reply)
    return d


def _inflated(method="GET", target="/", **kw):
    """A request script whose responses carry their decompressed body."""
    def script(port):
        resps = exchange(port, build_request(method, target, **kw), method=method)
        for r in resps:
            if r.header("content-encoding") == b"gzip" and r.body:
                r.body = b"<gunzipped>" + zlib.decompress(r.body, 16 + zlib.MAX_WBITS)
        return resps
    return script


PROXIED = [
    ("/p/app.css", GZ), ("/p/app.css", []), ("/p/app.css", [(b"Accept-Encoding", b"gzip;q=0")]),
    ("/p/app.css", [(b"Accept-Encoding", b"br, gzip;q=0.5")]),
    ("/p/app.css", [(b"Accept-Encoding", b"gzip")]), ("/p/app.css", [(b"Accept-Encoding", b"br")]),
    ("/p/app.css", [(b"Accept-Encoding", b"x-gzip")]),
    ("/p/app.css", [(b"Accept-Encoding", b"gzip;q=0.000")]),
    ("/p/app.js", GZ), ("/p/page.html", GZ), ("/p/data.json", GZ), ("/p/short.css", GZ),
    ("/p/chunked.css", GZ), ("/p/short-chunked.css", GZ), ("/p/encoded.css", GZ),
    ("/p/404.css", GZ), ("/p/403.css", GZ), ("/p/500.css", GZ), ("/p/201.css", GZ),
    ("/p/206.css", GZ), ("/p/204.css", GZ), ("/p/etag.css", GZ), ("/p/badetag.css", GZ),
    ("/p/weak.css", GZ), ("/p/ranges.css", GZ), ("/p9/app.css", GZ), ("/anytype/data.json", GZ),
    ("/anytype/notype", GZ), ("/p/notype", GZ),
    ("/off/app.css", GZ), ("/novary/app.css", GZ), ("/novary/app.css", []),
    # gzip_proxied, for requests with Via
    ("/p/app.css", GZ + VIA), ("/any/app.css", GZ + VIA), ("/expired/past.css", GZ + VIA),
    ("/expired/future.css", GZ + VIA), ("/expired/plain.css", GZ + VIA),
    ("/cc/nocache.css", GZ + VIA), ("/cc/private.css", GZ + VIA), ("/cc/public.css", GZ + VIA),
    ("/cc/plain.css", GZ + VIA), ("/nolm/app.css", GZ + VIA), ("/nolm/etag.css", GZ + VIA),
    ("/nolm/plain.css", GZ + VIA), ("/auth/plain.css", GZ + VIA),
    ("/auth/plain.css", GZ + VIA + [(b"Authorization", b"Basic dTpw")]),
    # gzip_disable, gzip_http_version
    ("/dis/app.css", GZ + [(b"User-Agent", b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)")]),
    ("/dis/app.css", GZ + [(b"User-Agent", b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)")]),
    ("/dis/app.css", GZ + [(b"User-Agent", b"Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)")]),
    ("/dis/app.css", GZ + [(b"User-Agent", b"curl/7.88.1")]),
    ("/dis/app.css", GZ + [(b"User-Agent", b"CURL/8.1")]),
    # gunzip
    ("/gun/gz.css", []), ("/gun/gz.css", GZ), ("/gun/gz-chunked.css", []), ("/p/gz.css", []),
    ("/gunssi/gz-ssi.css", []),
]


@pytest.mark.parametrize("target,headers", PROXIED)
def test_proxied(diff, target, headers):
    diff.check(_inflated("GET", target, headers=headers))


def test_gzipped_body_to_ssi_and_addition(diff):
    """A client that takes gzip: no gunzip, SSI leaves an encoded body alone, addition does not
    (nginx wraps the gzip stream in the plain texts), compared byte for byte."""
    out = diff.check_request("GET", "/gunssi/gz-ssi.css", headers=GZ)
    assert out.response.body.startswith(b"[before/after]\x1f\x8b")


@pytest.mark.parametrize("target", ["/p/app.css", "/gun/gz.css", "/s/app.css", "/gs/pre.css"])
def test_head(diff, target):
    diff.check(_inflated("HEAD", target, headers=GZ))


@pytest.mark.parametrize("target", ["/p/app.css", "/h10/app.css", "/s/app.css"])
def test_http10(diff, target):
    diff.check(_inflated("GET", target, headers=GZ, version="HTTP/1.0"))


STATIC = [
    ("/s/app.css", GZ), ("/s/app.css", []), ("/s/app.js", GZ), ("/s/photo.png", GZ),
    ("/s/tiny.css", GZ), ("/s/empty.css", GZ),
    ("/s/app.css", GZ + [(b"Range", b"bytes=0-99")]), ("/s/app.css", [(b"Range", b"bytes=0-99")]),
    ("/s/app.css", GZ + [(b"If-Modified-Since", b"Thu, 02 Jan 2020 03:04:05 GMT")]),
    ("/gs/pre.css", GZ), ("/gs/pre.css", []), ("/gs/app.css", GZ), ("/gs/app.css", []),
    ("/gs/pre.css", GZ + [(b"If-Modified-Since", b"Thu, 02 Jan 2020 03:04:05 GMT")]),
    ("/gs/pre.css", [(b"If-Modified-Since", b"Thu, 02 Jan 2020 03:04:05 GMT")]),
    ("/gs/pre.css", GZ + [(b"Range", b"bytes=0-99")]),
    ("/gsa/pre.css", []), ("/gsa/pre.css", GZ), ("/gsa/app.css", []),
    ("/gsnv/pre.css", []), ("/gsnv/pre.css", GZ),
    ("/s/nope.css", GZ), ("/s/nope.css", GZ + [(b"User-Agent", b"x")]), ("/ret/", GZ),
    ("/ret/", GZ + [(b"Via", b"x")]),
]


@pytest.mark.parametrize("target,headers", STATIC)
def test_static(diff, target, headers):
    diff.check(_inflated("GET", target, headers=headers))


def test_keepalive_after_gzip(diff):
    """Two gzipped responses on one connection: the chunked framing ends where it should."""
    raw = build_request("GET", "/p/app.css", headers=GZ) + build_request("GET", "/s/app.js",
                                                                       headers=GZ)

    def script(port):
        resps = exchange(port, raw, count=2)
        for r in resps:
            r.body = zlib.decompress(r.body, 16 + zlib.MAX_WBITS)
        return resps
    out = diff.check(script)
    assert out.result[0].body == CSS and out.result[1].body == JS


def test_what_nginx_does_is_what_was_meant(diff):
    """The facts the table above relies on, read from nginx's (= ngate's) answers."""
    r = diff.check(_inflated("GET", "/p/app.css", headers=GZ)).response
    assert r.header("content-encoding") == b"gzip" and r.header("content-length") is None
    assert r.header("vary") == b"Accept-Encoding" and r.header("etag") == b'W/"v1"'
    assert r.body == b"<gunzipped>" + CSS
    r = diff.check(_inflated("GET", "/p/app.css")).response
    assert r.header("content-encoding") is None and r.header("vary") == b"Accept-Encoding"
    r = diff.check(_inflated("GET", "/gun/gz.css")).response
    assert r.header("content-encoding") is None and r.body == CSS
    r = diff.check(_inflated("GET", "/gs/pre.css", headers=GZ)).response
    assert r.header("content-encoding") == b"gzip" and r.header("content-length") is not None
    r = diff.check(_inflated("GET", "/p/app.css", headers=GZ + VIA)).response
    assert r.header("content-encoding") is None
