"""Static files through nginx and ngate: root, alias, index, autoindex, try_files, types, ETag,
Last-Modified, conditional requests, ranges (single, multipart, 416), HEAD, expires, the
directory slash redirect, 403/404/405, and traversal attempts that must stay inside the root."""
import os

import pytest

from tests.harness.client import build_request, exchange
from tests.harness.paths import readable_tmpdir

MTIME = 1577934245          # 2020-01-02 03:04:05 UTC
LAST_MODIFIED = b"Thu, 02 Jan 2020 03:04:05 GMT"
BIG = bytes(range(256)) * 4096          # 1 MiB

CONF = """
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        root {docroot};

        location /ai/ { alias {docroot}/list/; autoindex on; add_header X-A 1; }
        location /ai-off/ { alias {docroot}/list/; }
        location ~ ^/rx/(.+)$ { alias {docroot}/$1; }
        location /al/ { alias {docroot}/dir/; }
        location /tf/ { try_files $uri $uri/ /a.txt; }
        location /tf404/ { try_files $uri =404; }
        location /tfnamed/ { try_files $uri @named; }
        location /tfdir/ { root {docroot}/list; try_files $uri/ =410; }
        location @named { return 200 "named $uri\\n"; }
        location /typed/ {
            types { text/x-foo foo; }
            default_type text/x-default;
        }
        location /exp-epoch/ { alias {docroot}/; expires epoch; }
        location /exp-max/ { alias {docroot}/; expires max; }
        location /exp-mod/ { alias {docroot}/; expires modified 1h; }
        location /noindex/ { expires 1h; }
        location /dir/ { add_header X-D "d e" always; add_header X-E ""; expires max; }
        location /exp-mod-ai/ { alias {docroot}/list/; autoindex on; expires modified 1h; }
        location /exp-mod0/ { alias {docroot}/; expires modified 0; }
        location /exp-modneg/ { alias {docroot}/; expires modified -1h; }
        location /noetag/ { alias {docroot}/; etag off; }
        location /ims-before/ { alias {docroot}/; if_modified_since before; }
        location /idx/ { alias {docroot}/dir/; index nothere.html index.html; }
        location /err/ { error_page 404 /a.txt; }
        location /mr0/ { alias {docroot}/; max_ranges 0; }
        location /mr2/ { alias {docroot}/; max_ranges 2; }
    }
}
"""


def _write(path, data, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (MTIME, MTIME))
    os.chmod(path, mode)


@pytest.fixture(scope="module")
def docroot():
    # nginx's workers run as nobody: not under pytest's tmp root, which another pytest session
    # sets back to 0700 (tests/harness/paths.py)
    with readable_tmpdir("static-") as root:
        _write(root / "index.html", b"<p>home</p>\n")
        _write(root / "a.txt", b"0123456789abcdefghij")
        _write(root / "Upper.TXT", b"upper\n")
        _write(root / "big.bin", BIG)
        _write(root / "empty.txt", b"")
        _write(root / "dir" / "index.html", b"dir index\n")
        _write(root / "noindex" / "f.css", b"body{}\n")
        _write(root / "list" / "b.txt", b"bb\n")
        _write(root / "list" / "a&b <c>.txt", b"x\n")
        _write(root / "list" / ".hidden", b"h\n")
        _write(root / "list" / ("long" * 20 + ".txt"), b"long\n")
        _write(root / "list" / "sub" / "s.txt", b"s\n")
        _write(root / "typed" / "x.foo", b"foo\n")
        _write(root / "typed" / "x.unknown", b"?\n")
        _write(root / "typed" / "noext", b"?\n")
        _write(root / "old.txt", b"before the epoch\n")
        os.utime(root / "old.txt", (-100, -100))   # Last-Modified: the epoch (ngx_gmtime)
        _write(root / "minus1.txt", b"mtime -1\n")
        os.utime(root / "minus1.txt", (-1, -1))     # nginx's "no time" (-1): no Last-Modified
        _write(root / "half.txt", b"-0.5 s\n")       # st_mtim -1 s + 0.5e9 ns: -1 as well
        os.utime(root / "half.txt", ns=(-500_000_000, -500_000_000))
        _write(root / "oldfrac.txt", b"-100.5 s\n")  # -101 s + 0.5e9 ns: the seconds are -101
        os.utime(root / "oldfrac.txt", ns=(-100_500_000_000, -100_500_000_000))
        _write(root / "future.txt", b"2100\n")
        os.utime(root / "future.txt", (4102444800, 4102444800))
        _write(root / "list" / "neg.txt", b"-100.5 s\n")
        os.utime(root / "list" / "neg.txt", ns=(-100_500_000_000, -100_500_000_000))
        os.symlink(root / "a.txt", root / "link.txt")
        for d in (root, root / "dir", root / "noindex", root / "list", root / "list" / "sub",
                  root / "typed"):
            os.chmod(d, 0o755)
            os.utime(d, (MTIME, MTIME))
        yield root


@pytest.fixture(scope="module")
def diff(differential, docroot):
    return differential(CONF, backends=(), docroot=docroot)


GETS = ["/a.txt", "/index.html", "/", "/dir", "/dir?x=1", "/dir/", "/noindex/", "/nope",
        "/nope/", "/big.bin", "/empty.txt", "/link.txt", "/Upper.TXT", "/old.txt",
        "/minus1.txt", "/noetag/minus1.txt", "/half.txt", "/oldfrac.txt", "/exp-mod/oldfrac.txt",
        "/exp-mod0/a.txt", "/exp-modneg/future.txt",
        "/ai/", "/ai/sub/", "/ai/b.txt", "/ai-off/", "/rx/a.txt", "/rx/dir", "/al/", "/al/index.html",
        "/tf/a.txt", "/tf/missing", "/tf404/missing", "/tfnamed/missing?q=1", "/tfdir/sub",
        "/typed/x.foo", "/typed/x.unknown", "/typed/noext",
        "/exp-epoch/a.txt", "/exp-max/a.txt", "/exp-mod/a.txt", "/exp-max/nope", "/exp-max/dir",
        "/noetag/a.txt", "/idx/", "/err/missing"]


@pytest.mark.parametrize("target", GETS)
def test_get(diff, target):
    diff.check_request("GET", target)


@pytest.mark.parametrize("target", ["/a.txt", "/dir", "/ai/", "/nope", "/big.bin"])
def test_head(diff, target):
    diff.check_request("HEAD", target)


@pytest.mark.parametrize("target", ["/a.txt", "/ai/", "/dir"])
def test_http10(diff, target):
    diff.check_request("GET", target, version="HTTP/1.0")


@pytest.mark.parametrize("method,target", [("POST", "/a.txt"), ("POST", "/nope"),
                                           ("POST", "/dir"), ("PUT", "/a.txt"),
                                           ("DELETE", "/dir/"), ("POST", "/"),
                                           ("OPTIONS", "/a.txt")])
def test_methods(diff, method, target):
    diff.check_request(method, target, body=b"x=1" if method in ("POST", "PUT") else None)


RANGES = ["bytes=0-3", "bytes=-3", "bytes=5-", "bytes=0-3,5-6", "bytes=30-", "bytes=3-1",
          "bytes=abc", "bytes=0-0,-1", "bytes=0-100", "bytes=-100", "BYTES=1-2", "items=0-1",
          "bytes=0-10,5-15", "bytes=0-1,3-4,8-9", "bytes= 1 - 2 , 4-5"]


@pytest.mark.parametrize("value", RANGES)
def test_range(diff, value):
    diff.check_request("GET", "/a.txt", headers=[(b"Range", value.encode())])


@pytest.mark.parametrize("value", ["bytes=-3", "bytes=0-", "bytes=0-1,4-5", "bytes=4-"])
def test_range_empty_file(diff, value):
    """An empty range from 0 (ngx_http_range_parse: start == 0) declines: the whole (empty)
    file with 200, where a range past the end of it is a 416."""
    out = diff.check_request("GET", "/empty.txt", headers=[(b"Range", value.encode())])
    assert out.response.status == (416 if value == "bytes=4-" else 200)


@pytest.mark.parametrize("target,value", [
    ("/mr0/a.txt", None), ("/mr0/a.txt", "bytes=0-3"), ("/mr2/a.txt", "bytes=0-1,3-4"),
    ("/mr2/a.txt", "bytes=0-1,3-4,8-9"), ("/mr2/a.txt", "bytes=0-1,3-4,9-8,10-11"),
])
def test_max_ranges(diff, target, value):
    """max_ranges 0: no ranges and no Accept-Ranges; N: more ranges than N get the whole file."""
    out = diff.check_request("GET", target,
                             headers=[(b"Range", value.encode())] if value else [])
    assert out.response.status == (206 if target == "/mr2/a.txt" and value.count(",") == 1
                                   else 200)


def test_range_on_big_file_is_exact(diff):
    out = diff.check_request("GET", "/big.bin", headers=[(b"Range", b"bytes=300000-700000")])
    assert out.response.status == 206
    assert out.response.body == BIG[300000:700001]


def test_big_file_whole(diff):
    out = diff.check_request("GET", "/big.bin")
    assert out.response.body == BIG


@pytest.mark.parametrize("if_range", [b'"5e0d5da5-14"', b'"other"', LAST_MODIFIED,
                                      b"Thu, 02 Jan 2020 03:04:06 GMT"])
def test_if_range(diff, if_range):
    diff.check_request("GET", "/a.txt", headers=[(b"Range", b"bytes=0-1"), (b"If-Range", if_range)])


CONDITIONS = [
    [(b"If-Modified-Since", LAST_MODIFIED)],
    [(b"If-Modified-Since", b"Thu, 02 Jan 2020 03:04:06 GMT")],
    [(b"If-Modified-Since", b"garbage")],
    [(b"If-None-Match", b'"5e0d5da5-14"')],
    [(b"If-None-Match", b'W/"5e0d5da5-14"')],
    [(b"If-None-Match", b'"x", "5e0d5da5-14"')],
    [(b"If-None-Match", b"*")],
    [(b"If-None-Match", b'"other"')],
    [(b"If-None-Match", b'"other"'), (b"If-Modified-Since", LAST_MODIFIED)],
    [(b"If-Match", b'"other"')],
    [(b"If-Match", b'"5e0d5da5-14"')],
    [(b"If-Unmodified-Since", b"Wed, 01 Jan 2020 00:00:00 GMT")],
    [(b"If-Unmodified-Since", LAST_MODIFIED)],
]


@pytest.mark.parametrize("headers", CONDITIONS)
def test_conditional(diff, headers):
    diff.check_request("GET", "/a.txt", headers=headers)


@pytest.mark.parametrize("target", ["/ims-before/a.txt", "/noetag/a.txt"])
def test_conditional_settings(diff, target):
    diff.check_request("GET", target, headers=[(b"If-Modified-Since", b"Fri, 03 Jan 2020 00:00:00 GMT")])
    diff.check_request("GET", target, headers=[(b"If-None-Match", b'"5e0d5da5-14"')])


TRAVERSALS = [b"/../a.txt", b"/dir/../../etc/passwd", b"/%2e%2e/%2e%2e/etc/passwd",
              b"/dir/..%2f..%2f..%2fetc%2fpasswd", b"/al/..%2f..%2fetc/passwd",
              b"/rx/..%2f..%2fetc%2fpasswd", b"/a.txt%00.html", b"/dir/%2e%2e/a.txt",
              b"/ai/..%2f", b"/./a.txt", b"//a.txt"]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_stays_inside(diff, target):
    out = diff.check_raw(b"GET " + target + b" HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert b"root:" not in out.response.body


@pytest.mark.parametrize("raw", [
    b"GET /a.txt HTTP/1.1\r\nHost: example.test\r\nExpect: 100-continue\r\n"
    b"Content-Length: 3\r\n\r\n",
    b"GET /a.txt HTTP/1.1\r\nHost: example.test\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /a.txt HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n",
    b"GET /a.txt HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HEAD /empty.txt HTTP/1.1\r\nHost: example.test\r\n\r\n",
])
def test_file_with_body_or_expect(diff, raw):
    """A file's 200 for requests with a body, Expect: 100-continue, an invalid chunked body
    (the static module discards the body: nginx's 400 there) on the server level's root (the
    plain_file handler's location)."""
    diff.check_raw(raw)


MINUS1_CONDITIONS = [
    [(b"If-Modified-Since", b"Thu, 01 Jan 1970 00:00:00 GMT")],
    [(b"If-Modified-Since", b"Fri, 01 Jan 2100 00:00:00 GMT")],
    [(b"If-Unmodified-Since", b"Fri, 01 Jan 2100 00:00:00 GMT")],
    [(b"If-None-Match", b'"-1-9"')],
    [(b"If-None-Match", b'"-1-9"'), (b"If-Modified-Since", b"Thu, 01 Jan 1970 00:00:00 GMT")],
    [(b"If-Match", b'"-1-9"')],
    [(b"Range", b"bytes=0-1")],
    [(b"Range", b"bytes=0-1"), (b"If-Range", b'"-1-9"')],
    [(b"Range", b"bytes=0-1"), (b"If-Range", b"Thu, 01 Jan 1970 00:00:00 GMT")],
]


@pytest.mark.parametrize("headers", MINUS1_CONDITIONS)
@pytest.mark.parametrize("target", ["/minus1.txt", "/exp-mod/minus1.txt"])
def test_no_last_modified_time(diff, target, headers):
    """A file whose mtime is -1 (nginx's "no time"): no Last-Modified in its 200, 206 or 304,
    If-Modified-Since never matches, If-Unmodified-Since always fails (412), the ETag says -1;
    `expires modified` counts from now (the Expires is compared as Date + 1h)."""
    diff.check(lambda port: _expires_as_date(exchange(
        port, build_request("GET", target, headers=headers))))


@pytest.mark.parametrize("target", ["/exp-mod/minus1.txt", "/exp-mod/half.txt", "/exp-mod/dir",
                                    "/exp-mod-ai/"])
def test_expires_modified_without_time(diff, target):
    """`expires modified 1h` on a response without a Last-Modified time (mtime -1, the
    directory's 301): Expires now + 1h and max-age=3600, as `expires 1h` (ngx_http_set_expires)."""
    out = diff.check(lambda port: _expires_as_date(exchange(port, build_request("GET", target))))
    assert out.response.header("expires") == b"<Date + 3600>"


@pytest.mark.parametrize("headers", [[], [(b"Connection", b"close")],
                                     [(b"If-Modified-Since", LAST_MODIFIED)],
                                     [(b"If-None-Match", b'"5e0d5da5-a"')]])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_add_header_on_a_root_location(diff, method, headers):
    """add_header and expires max in a location with root (plain_file: the lines in the
    entry's head; a conditional request: static_handler's 304)."""
    out = diff.check_request(method, "/dir/index.html", headers=headers)
    assert out.response.header("x-d") == b"d e"


@pytest.mark.parametrize("headers", [[], [(b"Connection", b"close")],
                                     [(b"If-Modified-Since", LAST_MODIFIED)]])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_expires_on_a_root_location(diff, method, headers):
    """`expires 1h` in a location with root (plain_file: the lines in the entry's head)."""
    out = diff.check(lambda port: _expires_as_date(exchange(
        port, build_request(method, "/noindex/f.css", headers=headers), method=method)))
    assert out.response.header("expires") == b"<Date + 3600>"


def _expires_as_date(responses):
    """The responses with an Expires of exactly Date + 1 h written as "<Date + 3600>" (the
    two programs answer in different seconds)."""
    from email.utils import formatdate, parsedate_to_datetime
    for r in responses:
        date = r.header("date")
        if date is None:
            continue
        later = formatdate(parsedate_to_datetime(date.decode()).timestamp() + 3600, usegmt=True)
        r.headers = [(n, b"<Date + 3600>" if n.lower() == b"expires" and v == later.encode()
                      else v) for n, v in r.headers]
    return responses


def test_keepalive_across_static_responses(diff):
    raw = b"".join(build_request("GET", t) for t in ("/a.txt", "/big.bin", "/nope", "/dir", "/ai/"))
    diff.check_raw(raw, count=5)
