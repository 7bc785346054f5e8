"""proxy_cache against Debian's nginx, with two workers sharing the keys zone: sequences of
requests with $upstream_cache_status in a header, and what the backend saw (how many requests,
with which headers), compared request by request."""
import time

import pytest

from tests.harness.backend import Reply
from tests.harness.client import build_request, exchange
from tests.harness.differential import Differential
from tests.harness.paths import readable_tmpdir

CONF = """
worker_processes 2;
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log {prefix}/logs/access.log;
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=one:1m use_temp_path=off;
    proxy_cache_path {prefix}/cache2 keys_zone=two:1m inactive=1h use_temp_path=off;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        add_header X-Cache $upstream_cache_status always;

        location / {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache one;
            proxy_cache_valid 200 302 1h;
            proxy_cache_valid 404 1m;
            proxy_cache_bypass $arg_bypass;
            proxy_no_cache $arg_nocache;
        }
        location /headers/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache two;
        }
        location /ignore/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache two;
            proxy_cache_valid 200 1h;
            proxy_ignore_headers Set-Cookie Cache-Control Expires X-Accel-Expires;
        }
        location /key/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache two;
            proxy_cache_valid 1h;
            proxy_cache_key $uri;
        }
        location /post/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache two;
            proxy_cache_valid 1h;
            proxy_cache_methods POST;
        }
        location /stale/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache two;
            proxy_cache_use_stale error timeout http_500 http_502;
            proxy_cache_revalidate on;
        }
        location /nohead/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cache two;
            proxy_cache_valid 1h;
            proxy_cache_convert_head off;
            proxy_cache_key $request_method$uri;
        }
    }
}
"""

B = b"example.test"


def get(port, target, headers=None, method="GET"):
    return exchange(port, build_request(method, target, headers=headers), method=method)[0]


def seq(*steps):
    """A script: each step (method, target, headers) on a fresh connection (either worker).
    nginx renames a cache file into place after the response went out: a short pause between
    steps keeps the next request from racing that rename (not a timing assertion)."""
    def script(port):
        out = []
        for m, t, h in steps:
            out.append(get(port, t, h, m))
            time.sleep(0.05)
        return out
    return script


def status(outcome) -> list:
    return [r.header("x-cache") for r in outcome.result]


@pytest.fixture(scope="module")
def diff():
    # the workers run as nobody under a root test run and write the cache: a base directory
    # of its own, outside pytest's 0700 tree (which other pytest runs may reset meanwhile)
    with readable_tmpdir("ngate-cache-diff-") as base:
        d = Differential(CONF, base).start()
        try:
            _routes(d.backend)
            yield d
        finally:
            d.stop()


def _routes(b):
    plain = [(b"Content-Type", b"text/plain")]
    validators = plain + [(b"Last-Modified", b"Mon, 01 Jan 2001 00:00:00 GMT"),
                          (b"ETag", b'"v1"'), (b"Accept-Ranges", b"bytes")]
    b.route("/a", Reply(headers=validators, body=b"0123456789"))
    b.route("/ranged", Reply(headers=validators, body=b"0123456789"))
    b.route("/ranged-miss", Reply(headers=validators, body=b"0123456789"))
    b.route("/noranges", Reply(headers=plain, body=b"0123456789"))
    b.route("/chunked", Reply(headers=plain, chunks=[b"abc", b"def"]))
    b.route("/missing", Reply(status=404, headers=plain, body=b"nope"))
    b.route("/teapot", Reply(status=418, headers=plain, body=b"tea"))
    b.route("/cookie", Reply(headers=plain + [(b"Set-Cookie", b"s=1")], body=b"c"))
    b.route("/headers/private", Reply(headers=plain + [(b"Cache-Control", b"private, max-age=60")]))
    b.route("/headers/nostore", Reply(headers=plain + [(b"Cache-Control", b"no-store")]))
    b.route("/headers/maxage", Reply(headers=plain + [(b"Cache-Control", b"max-age=60")]))
    b.route("/headers/maxage0", Reply(headers=plain + [(b"Cache-Control", b"max-age=0")]))
    b.route("/headers/smaxage", Reply(headers=plain + [(b"Cache-Control", b"public, s-maxage=60")]))
    b.route("/headers/expires-past", Reply(headers=plain + [(b"Expires", b"Thu, 01 Jan 1970 00:00:01 GMT")]))
    b.route("/headers/expires", Reply(headers=plain + [(b"Expires", b"Thu, 01 Jan 2099 00:00:01 GMT")]))
    b.route("/headers/xae", Reply(headers=plain + [(b"X-Accel-Expires", b"60"),
                                                   (b"Cache-Control", b"no-cache")]))
    b.route("/headers/xae0", Reply(headers=plain + [(b"X-Accel-Expires", b"0"),
                                                    (b"Cache-Control", b"max-age=60")]))
    b.route("/headers/none", Reply(headers=plain))
    b.route("/headers/vary-star", Reply(headers=plain + [(b"Cache-Control", b"max-age=60"),
                                                        (b"Vary", b"*")]))
    b.route("/headers/vary", Reply(headers=plain + [(b"Cache-Control", b"max-age=60"),
                                                   (b"Vary", b"Accept-Language")]))
    b.route("/headers/cookie", Reply(headers=plain + [(b"Cache-Control", b"max-age=60"),
                                                     (b"Set-Cookie", b"a=b")]))
    b.route("/ignore/all", Reply(headers=plain + [(b"Cache-Control", b"no-store"),
                                                 (b"Set-Cookie", b"a=b"),
                                                 (b"X-Accel-Expires", b"0")]))
    b.route("/nohead/x", Reply(headers=plain, body=b"body"))
    b.route("/stale/ok", Reply(headers=validators + [(b"Cache-Control", b"max-age=1")],
                               body=b"fresh"))
    b.route("/stale/reval", Reply(headers=validators + [(b"Cache-Control", b"max-age=1")],
                                  body=b"fresh"))


def test_miss_then_hit_backend_once(diff):
    o = diff.check(seq(("GET", "/a", None), ("GET", "/a", None), ("GET", "/a", None)))
    assert status(o) == [b"MISS", b"HIT", b"HIT"]
    assert len(o.requests()) == 1


def test_query_is_part_of_the_default_key(diff):
    o = diff.check(seq(("GET", "/a?x=1", None), ("GET", "/a?x=2", None), ("GET", "/a?x=1", None)))
    assert status(o) == [b"MISS", b"MISS", b"HIT"]
    assert len(o.requests()) == 2


def test_client_validators_and_range_never_reach_upstream(diff):
    h = [(b"If-None-Match", b'"v1"'), (b"Range", b"bytes=0-1"), (b"If-Modified-Since",
                                                                  b"Mon, 01 Jan 2001 00:00:00 GMT")]
    o = diff.check(seq(("GET", "/noranges?v", h), ("GET", "/noranges?v", h)))
    assert [r.status for r in o.result] == [200, 200]      # no validators, no Accept-Ranges
    assert status(o) == [b"MISS", b"HIT"]
    assert o.result[1].body == b"0123456789"


def test_precondition_failed_on_a_miss_is_not_stored(diff):
    h = [(b"If-Match", b'"x"')]
    o = diff.check(seq(("GET", "/a?pre", h), ("GET", "/a?pre", h), ("GET", "/a?pre", None)))
    assert [r.status for r in o.result] == [412, 412, 200]
    assert len(o.requests()) == 3


def test_one_range_at_most_on_a_miss(diff):
    h = [(b"Range", b"bytes=0-1,3-4")]
    for kind in diff.procs:     # (multipart boundaries differ by design: compared per program)
        o = diff.run(kind, seq(("GET", "/ranged?multi", h), ("GET", "/ranged?multi", h)))
        assert [r.status for r in o.result] == [200, 206], kind
        assert o.result[0].body == b"0123456789"
        assert b"Content-Range: bytes 3-4/10\r\n\r\n34\r\n" in o.result[1].body
    assert o.requests()[0].header(b"range") is None
    assert o.requests()[0].header(b"if-none-match") is None


def test_ranges_and_conditionals_on_hits(diff):
    o = diff.check(seq(
        ("GET", "/ranged", None),
        ("GET", "/ranged", [(b"Range", b"bytes=2-4")]),
        ("GET", "/ranged", [(b"Range", b"bytes=-3")]),
        ("GET", "/ranged", [(b"Range", b"bytes=50-")]),
        ("GET", "/ranged", [(b"If-None-Match", b'"v1"')]),
        ("GET", "/ranged", [(b"If-None-Match", b'"v2"')]),
        ("GET", "/ranged", [(b"If-Match", b'"v2"')]),
        ("GET", "/ranged", [(b"If-Modified-Since", b"Mon, 01 Jan 2001 00:00:00 GMT")]),
        ("GET", "/ranged", [(b"Range", b"bytes=0-0"), (b"If-Range", b'"v1"')]),
        ("GET", "/ranged", [(b"Range", b"bytes=0-0"), (b"If-Range", b'"v0"')]),
        ("HEAD", "/ranged", None),
    ))
    assert [r.status for r in o.result] == [200, 206, 206, 416, 304, 200, 412, 304, 206, 200, 200]
    assert len(o.requests()) == 1


def test_range_on_a_miss(diff):
    o = diff.check(seq(("GET", "/ranged-miss", [(b"Range", b"bytes=2-4")]),
                       ("GET", "/ranged-miss", [(b"Range", b"bytes=2-4")])))
    assert status(o) == [b"MISS", b"HIT"]


def test_chunked_upstream_is_cached(diff):
    o = diff.check(seq(("GET", "/chunked", None), ("GET", "/chunked", None)))
    assert status(o) == [b"MISS", b"HIT"]
    assert o.result[1].body == b"abcdef"


def test_valid_per_status(diff):
    o = diff.check(seq(("GET", "/missing", None), ("GET", "/missing", None),
                       ("GET", "/teapot", None), ("GET", "/teapot", None)))
    assert status(o) == [b"MISS", b"HIT", b"MISS", b"MISS"]


def test_set_cookie_is_not_cached(diff):
    o = diff.check(seq(("GET", "/cookie", None), ("GET", "/cookie", None)))
    assert status(o) == [b"MISS", b"MISS"]
    assert len(o.requests()) == 2


@pytest.mark.parametrize("name,cached", [
    ("private", False), ("nostore", False), ("maxage", True), ("maxage0", False),
    ("smaxage", True), ("expires-past", False), ("expires", True), ("xae", True),
    ("xae0", False), ("none", False), ("vary-star", False), ("cookie", False),
])
def test_response_headers_decide(diff, name, cached):
    o = diff.check(seq(("GET", f"/headers/{name}", None), ("GET", f"/headers/{name}", None)))
    assert status(o) == [b"MISS", b"HIT" if cached else b"MISS"]


def test_vary_keeps_variants_apart(diff):
    en, de = [(b"Accept-Language", b"en")], [(b"Accept-Language", b"de")]
    o = diff.check(seq(("GET", "/headers/vary", en), ("GET", "/headers/vary", de),
                       ("GET", "/headers/vary", de), ("GET", "/headers/vary", en)))
    assert status(o)[:3] == [b"MISS", b"MISS", b"HIT"]


def test_ignore_headers(diff):
    o = diff.check(seq(("GET", "/ignore/all", None), ("GET", "/ignore/all", None)))
    assert status(o) == [b"MISS", b"HIT"]


def test_bypass_and_no_cache(diff):
    o = diff.check(seq(("GET", "/b1?bypass=1", None), ("GET", "/b1?bypass=1", None),
                       ("GET", "/b1?nocache=1", None), ("GET", "/b1?nocache=1", None),
                       ("GET", "/b1?bypass=0", None), ("GET", "/b1?bypass=0", None)))
    assert status(o) == [b"BYPASS", b"BYPASS", b"MISS", b"MISS", b"MISS", b"HIT"]


def test_custom_key(diff):
    o = diff.check(seq(("GET", "/key/k?x=1", None), ("GET", "/key/k?x=2", None)))
    assert status(o) == [b"MISS", b"HIT"]


def test_methods(diff):
    o = diff.check(seq(("POST", "/post/p", None), ("POST", "/post/p", None),
                       ("GET", "/post/p", None), ("PUT", "/post/p", None)))
    assert status(o) == [b"MISS", b"HIT", b"HIT", None]


def test_head_is_converted_to_get(diff):
    o = diff.check(seq(("HEAD", "/hd", None), ("GET", "/hd", None), ("HEAD", "/hd", None)))
    assert status(o) == [b"MISS", b"HIT", b"HIT"]
    assert o.requests()[0].method == b"GET"


def test_convert_head_off(diff):
    o = diff.check(seq(("HEAD", "/nohead/x", None), ("GET", "/nohead/x", None),
                       ("HEAD", "/nohead/x", None)))
    assert o.requests()[0].method == b"HEAD"


def test_stale_on_error_and_revalidation(diff):
    b = diff.backend

    def script(port):
        b.route("/stale/ok", Reply(headers=[(b"Content-Type", b"text/plain"),
                                            (b"Cache-Control", b"max-age=1")], body=b"fresh"))
        b.route("/stale/reval", Reply(headers=[(b"Content-Type", b"text/plain"),
                                               (b"ETag", b'"r1"'),
                                               (b"Cache-Control", b"max-age=1")], body=b"fresh"))
        out = [get(port, "/stale/ok"), get(port, "/stale/reval")]
        time.sleep(2.1)         # both entries expire (max-age=1)
        b.route("/stale/ok", Reply(status=500, headers=[(b"Content-Type", b"text/plain")],
                                   body=b"broken"))
        b.route("/stale/reval", Reply(status=304, headers=[(b"ETag", b'"r1"'),
                                                           (b"Cache-Control", b"max-age=60")]))
        out += [get(port, "/stale/ok"), get(port, "/stale/reval"), get(port, "/stale/reval")]
        b.route("/stale/ok", Reply(action="close"))
        out += [get(port, "/stale/ok")]
        return out
    o = diff.check(script)
    assert status(o) == [b"MISS", b"MISS", b"STALE", b"REVALIDATED", b"HIT", b"STALE"]
    assert o.result[2].body == b"fresh"
    reval = [r for r in o.requests() if r.target == b"/stale/reval"]
    assert reval[1].header(b"if-none-match") == b'"r1"'
