"""fastcgi_cache against Debian's nginx, with a real php-fpm: sequences of requests with
$upstream_cache_status in a header and a per-server counter in the body (how often PHP ran),
compared request by request (status, headers without Date/Server, framing, body)."""
import hashlib
import time

import pytest

from tests.harness.client import build_request
from tests.differential.test_fastcgi import base, normalise  # noqa: F401  (fixture)
from tests.harness.client import Connection, ProtocolError
from tests.harness.phpfpm import PhpFpm
from tests.harness.processes import ProxyProcess, fresh_prefix, require_kind

CONF = """
http {
    # nginx writes a cached response to a temp file first; its compiled-in fastcgi_temp_path
    # (/var/lib/nginx/fastcgi, levels 1 2) may hold subdirectories a root-run nginx made, which
    # its `nobody` workers cannot write (the cause of this file's rare empty answers)
    fastcgi_temp_path {prefix}/fastcgi_temp 1 2;
    fastcgi_cache_path {prefix}/cache levels=1:2 keys_zone=fcgi:1m;
    fastcgi_cache_path {prefix}/cache2 keys_zone=nokey:1m;
    proxy_cache_path {prefix}/pcache keys_zone=pz:1m;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        add_header X-Cache $upstream_cache_status always;
        fastcgi_param REQUEST_METHOD $request_method;
        fastcgi_param QUERY_STRING $query_string;
        fastcgi_param SERVER_PORT $server_port;
        fastcgi_param REQUEST_URI $request_uri;
        fastcgi_param SCRIPT_FILENAME {docroot}/count.php;

        location /c/ {
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_cache fcgi;
            fastcgi_cache_key $request_uri;
            fastcgi_cache_valid 200 1h;
            fastcgi_cache_valid 404 1m;
            fastcgi_cache_bypass $arg_bypass;
            fastcgi_no_cache $arg_nocache;
        }
        location /uses/ {
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_cache fcgi;
            fastcgi_cache_key $request_uri;
            fastcgi_cache_valid 1h;
            fastcgi_cache_min_uses 2;
        }
        location /post/ {
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_cache fcgi;
            fastcgi_cache_key $request_method$request_uri;
            fastcgi_cache_valid 1h;
            fastcgi_cache_methods POST;
        }
        location /var/ {
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_cache $arg_zone;
            fastcgi_cache_key $uri;
            fastcgi_cache_valid 1h;
        }
        location /nokey/ {
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_cache nokey;
            fastcgi_cache_valid 1h;
        }
    }
}
"""

# how often PHP ran for this server (its port) and this URI; what it saw of the validators
COUNT = r"""<?php
@mkdir(__DIR__ . "/counts");
$f = __DIR__ . "/counts/" . $_SERVER["SERVER_PORT"] . "-" . md5($_SERVER["REQUEST_URI"]);
$n = (int)@file_get_contents($f) + 1; file_put_contents($f, $n);
parse_str($_SERVER["QUERY_STRING"], $q);
if (isset($q["code"])) http_response_code((int)$q["code"]);
if (isset($q["cc"])) header("Cache-Control: " . $q["cc"]);
if (isset($q["cookie"])) setcookie("s", "1");
header("Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT");
header("ETag: \"v1\"");
$seen = [];
foreach (["HTTP_IF_MODIFIED_SINCE", "HTTP_IF_NONE_MATCH", "HTTP_RANGE", "HTTP_IF_MATCH"] as $k)
    if (isset($_SERVER[$k])) $seen[] = $k;
$body = "run $n method " . $_SERVER["REQUEST_METHOD"] . " saw [" . implode(",", $seen) . "]\n"
        . str_repeat("x", 40) . "\n";
if (isset($q["len"])) header("Content-Length: " . strlen($body));
if (isset($q["ar"])) header("Accept-Ranges: bytes");
echo $body;
"""


@pytest.fixture(scope="module")
def fpm(base):  # noqa: F811
    with PhpFpm(base) as f:
        f.script("count.php", COUNT)
        yield f


@pytest.fixture(scope="module")
def pair(fpm, base):  # noqa: F811
    procs = {}
    try:
        for kind in ("nginx", "ngate"):
            require_kind(kind)
            procs[kind] = ProxyProcess(kind, CONF, fresh_prefix(base, kind), fpm_port=fpm.port,
                                       docroot=fpm.docroot).start()
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def sequence(pair, steps) -> dict:
    """Each program runs the whole sequence on one server; the results must be the same."""
    out = {}
    for kind, proc in pair.items():
        got = []
        for method, target, headers in steps:
            with Connection(proc.port, timeout=10) as conn:
                conn.send(build_request(method, target, headers=headers,
                                        body=b"x" if method == "POST" else None))
                try:
                    got.append(normalise(conn.read_response(method), proc))
                except ProtocolError as exc:    # which program, and what it logged
                    pytest.fail(f"{kind} {method} {target}: {exc}\n{proc.diagnostics()}")
        out[kind] = got
    for i, (a, b) in enumerate(zip(out["nginx"], out["ngate"])):
        assert a == b, f"step {i} {steps[i][:2]}:\nnginx {a}\nngate {b}\n" \
            + pair["ngate"].error_log()[-2000:]
    return out["nginx"]


def cache_status(r) -> bytes:
    return dict((n.lower(), v) for n, v in r["headers"]).get(b"x-cache", b"")


def test_miss_then_hit(pair):
    got = sequence(pair, [("GET", "/c/a", None)] * 3)
    assert [cache_status(r) for r in got] == [b"MISS", b"HIT", b"HIT"]
    assert all(r["body"].startswith(b"run 1 method GET") for r in got)


def test_uncacheable_responses(pair):
    got = sequence(pair, [("GET", "/c/nostore?cc=no-store", None)] * 2
                   + [("GET", "/c/cookie?cookie=1", None)] * 2
                   + [("GET", "/c/teapot?code=418", None)] * 2)
    assert [cache_status(r) for r in got] == [b"MISS"] * 6
    assert got[1]["body"].startswith(b"run 2") and got[5]["body"].startswith(b"run 2")


def test_valid_per_status_bypass_and_no_cache(pair):
    got = sequence(pair, [("GET", "/c/nf?code=404", None), ("GET", "/c/nf?code=404", None),
                          ("GET", "/c/b", None), ("GET", "/c/b?bypass=1", None),
                          ("GET", "/c/n?nocache=1", None), ("GET", "/c/n?nocache=1", None)])
    assert [cache_status(r) for r in got] == [b"MISS", b"HIT", b"MISS", b"BYPASS", b"MISS",
                                               b"MISS"]


def _entry_stored(pair, key: str) -> None:
    """Wait (at most 5 s) until each program's cache holds `key`'s file (levels=1:2): nginx renames
    a response's temp file into the cache after the client has its answer, so a next request sent
    at once can race it (seen: nginx's GET after the HEAD a MISS, 1 run in 4)."""
    digest = hashlib.md5(key.encode()).hexdigest()
    files = [proc.prefix / "cache" / digest[-1] / digest[-3:-1] / digest for proc in pair.values()]
    deadline = time.monotonic() + 5
    while not all(f.exists() for f in files) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_head_is_sent_as_head_and_its_response_stored(pair):
    got = sequence(pair, [("HEAD", "/c/h", None)])
    _entry_stored(pair, "/c/h")
    got += sequence(pair, [("GET", "/c/h", None), ("HEAD", "/c/h", None)])
    assert [cache_status(r) for r in got] == [b"MISS", b"HIT", b"HIT"]


def test_client_validators_are_not_passed_and_apply_to_the_entry(pair):
    # a miss answered 304 or 206 ends before the entry is stored (nginx goes on reading the
    # upstream): such a key is not asked for again in the sequence
    ims = [(b"If-Modified-Since", b"Mon, 01 Jan 2024 00:00:00 GMT")]
    got = sequence(pair, [("GET", "/c/v", None), ("GET", "/c/v", ims),
                          ("GET", "/c/v", [(b"If-None-Match", b'"v1"')]),
                          ("GET", "/c/r?len=1", None),
                          ("GET", "/c/r?len=1", [(b"Range", b"bytes=0-4")]),
                          ("GET", "/c/ar?len=1&ar=1", None),
                          ("GET", "/c/ar?len=1&ar=1", [(b"Range", b"bytes=4-8")]),
                          ("GET", "/c/w", ims),
                          ("GET", "/c/ar2?len=1&ar=1", [(b"Range", b"bytes=0-4")])])
    # ranges only for a response that allowed them (Accept-Ranges), as nginx's range filter
    assert [r["status"].split(b" ")[1] for r in got] == [b"200", b"304", b"304", b"200", b"200",
                                                          b"200", b"206", b"304", b"206"]
    assert [cache_status(r) for r in got] == [b"MISS", b"HIT", b"HIT", b"MISS", b"HIT", b"MISS",
                                               b"HIT", b"MISS", b"MISS"]
    assert b"saw []" in got[0]["body"] and b"saw []" in got[3]["body"]
    assert got[6]["body"] == b"1 met" and got[8]["body"] == b"run 1"


def test_min_uses_and_methods(pair):
    got = sequence(pair, [("GET", "/uses/a", None)] * 3 + [("POST", "/post/p", None)] * 2
                   + [("GET", "/post/p", None)])
    assert [cache_status(r) for r in got] == [b"MISS", b"MISS", b"HIT", b"MISS", b"HIT",
                                               b"MISS"]


def test_without_fastcgi_cache_key_every_request_has_the_empty_key(pair):
    got = sequence(pair, [("GET", "/nokey/one", None), ("GET", "/nokey/two", None)])
    assert [cache_status(r) for r in got] == [b"MISS", b"HIT"]
    assert got[0]["body"] == got[1]["body"]


def test_zone_named_by_a_variable(pair):
    # a proxy_cache_path zone is not the fastcgi module's: nginx's "cache not found", 500
    got = sequence(pair, [("GET", "/var/a?zone=fcgi", None), ("GET", "/var/a?zone=fcgi", None),
                          ("GET", "/var/b", None), ("GET", "/var/c?zone=pz", None),
                          ("GET", "/var/d?zone=none", None)])
    assert [r["status"].split(b" ")[1] for r in got] == [b"200", b"200", b"200", b"500", b"500"]
    assert [cache_status(r) for r in got[:3]] == [b"MISS", b"HIT", b""]
