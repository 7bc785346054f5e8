"""fastcgi_cache* compiled to a CacheConf, its errors and warning (checked against `nginx -t`),
and the FastCGI response body bounds (fastcgi/rest.py, nginx's f->rest)."""
import os

import pytest

from ngate.fastcgi import rest
from ngate.proxy.fastcgi_proxy import FastCGIPlan
from tests.unit._config_helpers import (load_http, nginx_available, nginx_error, ngate_error,
                                        write_conf)


def _loc(cfg, index=0):
    return cfg.servers[0].locations[index].conf


def test_fastcgi_cache_conf(tmp_path):
    cfg = load_http(tmp_path, """
    fastcgi_cache_path cache levels=1:2 keys_zone=one:1m inactive=1h;
    fastcgi_cache_key $request_uri;
    fastcgi_cache_valid 200 10m;
    server { listen 8001;
        location /a { fastcgi_pass 127.0.0.1:9000; fastcgi_cache one;
                      fastcgi_cache_methods POST; fastcgi_cache_min_uses 3;
                      fastcgi_cache_use_stale error timeout; fastcgi_cache_lock on; }
        location /b { fastcgi_pass 127.0.0.1:9000; }
    }""")
    cc = _loc(cfg).fastcgi.cache
    assert cc.zone.name == "one" and cc.zone.levels == (1, 2) and cc.zone.inactive == 3600
    assert cc.methods == {"GET", "HEAD", "POST"} and cc.min_uses == 3 and cc.lock
    assert cc.use_stale == {"error", "timeout"} and cc.valid == ((frozenset({200}), 600),)
    assert not cc.convert_head                  # nginx has no fastcgi_cache_convert_head
    assert _loc(cfg).proxy.cache is None and _loc(cfg, 1).fastcgi.cache is None
    # nginx's cache params replace the client's validators; the empty ones send nothing
    plan = FastCGIPlan(_loc(cfg))
    assert {b"if_modified_since", b"if_none_match", b"range", b"if_range", b"if_match",
            b"if_unmodified_since"} <= plan.params.skip
    sent = [p[2] for p in plan.params.pieces]
    assert sent == ["HTTP_IF_MODIFIED_SINCE", "HTTP_IF_NONE_MATCH"]
    assert FastCGIPlan(_loc(cfg, 1)).params.skip == frozenset()


def test_fastcgi_param_of_a_cache_header_wins(tmp_path):
    cfg = load_http(tmp_path, """
    fastcgi_cache_path cache keys_zone=one:1m;
    server { listen 8001; location / { fastcgi_pass 127.0.0.1:9000; fastcgi_cache one;
        fastcgi_cache_key $uri; fastcgi_param HTTP_RANGE $http_range; } }""")
    plan = FastCGIPlan(_loc(cfg))
    names = [p[2] for p in plan.params.pieces]
    assert names.count("HTTP_RANGE") == 1


CASES = [
    ("proxy_cache_path c keys_zone=one:1m;",
     "location / { fastcgi_pass 127.0.0.1:9; fastcgi_cache one; fastcgi_cache_key $uri; }",
     'the shared memory zone "one" is already declared for a different use', 5),
    ("fastcgi_cache_path c keys_zone=one:1m;",
     "location / { proxy_pass http://127.0.0.1:9; proxy_cache one; }",
     'the shared memory zone "one" is already declared for a different use', 5),
    ("fastcgi_cache_path c keys_zone=one:1m;",
     "location / { fastcgi_pass 127.0.0.1:9; fastcgi_cache two; fastcgi_cache_key $uri; }",
     '"fastcgi_cache" zone "two" is unknown', None),
]


@pytest.mark.parametrize("http,loc,message,line", CASES)
def test_errors_as_nginx(tmp_path, http, loc, message, line):
    conf = write_conf(tmp_path, f"{http}\nserver {{ listen 8999;\n {loc} }}")
    got = ngate_error(conf, str(tmp_path))
    assert got.startswith(message), got
    if line is not None:
        assert got == f"{message} in {conf}:{line}"
    if not nginx_available():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is required under CI")
        return
    # nginx names the unknown zone at the end of the http block (its merge), ngate at its use
    assert nginx_error(conf, str(tmp_path)) == got if line is not None else \
        nginx_error(conf, str(tmp_path)).startswith(message)


def test_no_key_warns_and_uses_the_empty_key(tmp_path, capfd):
    cfg = load_http(tmp_path, "fastcgi_cache_path c keys_zone=one:1m;\n"
                    "server { listen 8001; location / { fastcgi_pass 127.0.0.1:9;\n"
                    " fastcgi_cache one; } }")
    assert 'no "fastcgi_cache_key" for "fastcgi_cache"' in capfd.readouterr().err
    assert _loc(cfg).fastcgi.cache.key.render(None) == ""


@pytest.mark.parametrize("status,method,length,expected", [
    (200, "GET", 8, 8), (200, "GET", None, rest.UNBOUNDED), (204, "GET", 8, 0),
    (304, "GET", None, 0), (200, "HEAD", 8, rest.UNKNOWN_HEAD)])
def test_initial_rest(status, method, length, expected):
    assert rest.initial(status, method, length) == expected


def test_cut_and_premature():
    assert rest.cut(8, b"SEE-THIS-BUT-NOT-THIS", 8) == (b"SEE-THIS", 0, True)
    assert rest.cut(8, b"SEE", 8) == (b"SEE", 5, False)
    assert rest.cut(0, b"more", 0) == (b"", 0, True)
    assert rest.cut(rest.UNKNOWN_HEAD, b"abcdef", 4) == (b"abcd", 0, True)
    assert rest.cut(rest.UNKNOWN_HEAD, b"abc", None) == (b"abc", rest.UNBOUNDED, False)
    assert rest.premature(5, True) == "upstream prematurely closed FastCGI stdout"
    assert rest.premature(5, False) == "upstream prematurely closed FastCGI request"
    assert rest.premature(0, True) is None and rest.premature(rest.UNBOUNDED, True) is None
