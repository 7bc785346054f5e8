"""limit_req / limit_conn configuration: nginx -t's messages for bad directives (compared with
Debian's nginx), inheritance of the limits into locations, and zone reuse across reloads."""
from __future__ import annotations

import pytest

from ngate.config.loader import load_config
from ngate.errors import ConfigError
from ngate.limits import zones
from tests.unit._config_helpers import load_http, nginx_error, ngate_error, write_conf

Z = "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;\n"
C = "limit_conn_zone $binary_remote_addr zone=c:1m;\n"
S = "server { listen 127.0.0.1:8080; location / { %s } }"

# the http block body of configurations nginx refuses (the message is compared with nginx -t)
BAD = [
    "limit_req_zone $binary_remote_addr zone=one rate=1r/s;",
    "limit_req_zone $binary_remote_addr zone=one:1x rate=1r/s;",
    "limit_req_zone $binary_remote_addr zone=one:16k rate=1r/s;",
    "limit_req_zone $binary_remote_addr zone=one:1m rate=0r/s;",
    "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/h;",
    "limit_req_zone $binary_remote_addr zone=one:1m foo=1;",
    "limit_req_zone $binary_remote_addr rate=1r/s foo;",
    "limit_req_zone $binary_remote_addr rate=1r/s rate=2r/s;",
    "limit_req_zone $nope zone=one:1m rate=1r/s;",
    Z + Z,
    Z + "limit_req_zone $binary_remote_addr zone=one:2m rate=1r/s;",
    Z + "limit_conn_zone $binary_remote_addr zone=one:1m;",
    Z + S % "limit_req zone=one burst=0;",
    Z + S % "limit_req zone=one burst=x;",
    Z + S % "limit_req zone=one delay=0;",
    Z + S % "limit_req zone=one fast;",
    Z + S % "limit_req burst=5;",
    Z + S % "limit_req zone=one; limit_req zone=one;",
    Z + S % "limit_req zone=two;",
    Z + S % "limit_req_status 399;",
    Z + S % "limit_req_status abc;",
    Z + S % "limit_req_status 500; limit_req_status 501;",
    Z + S % "limit_req_log_level debug;",
    Z + S % "limit_req_dry_run maybe;",
    "server { listen 8080; limit_req_zone $uri zone=x:1m rate=1r/s; }",
    "limit_conn_zone $binary_remote_addr zone=c;",
    "limit_conn_zone $binary_remote_addr zone=c:1m rate=1r/s;",
    "limit_conn_zone $binary_remote_addr;",
    C + S % "limit_conn c 0;",
    C + S % "limit_conn c x;",
    C + S % "limit_conn c 65536;",
    C + S % "limit_conn c 1; limit_conn c 2;",
    C + S % "limit_conn d 1;",
    C + "limit_req_zone $uri zone=c:1m rate=1r/s;",
    C + S % "limit_req zone=c;",
    C + S % "limit_conn_status 600;",
    C + S % "limit_conn_log_level crit;",
    C + S % "limit_conn c;",
]


@pytest.mark.parametrize("http", BAD)
def test_refused_as_nginx_refuses(tmp_path, http):
    conf = write_conf(tmp_path, http)
    ours = ngate_error(conf, str(tmp_path))
    assert ours != "OK"
    assert ours == nginx_error(conf, str(tmp_path))


GOOD = [
    Z + S % "limit_req zone=one burst=5 nodelay; limit_req_status 429;",
    Z + S % "limit_req zone=one burst=5 delay=2; limit_req_log_level info; limit_req_dry_run on;",
    "server { listen 8080; location / { limit_req zone=late; } }\n"
    "limit_req_zone $uri zone=late:32k rate=10r/m;",
    C + S % "limit_conn c 65535; limit_conn_status 599; limit_conn_log_level warn;",
    "limit_req_zone $binary_remote_addr zone=one:1m rate=5;",
]


@pytest.mark.parametrize("http", GOOD)
def test_accepted_as_nginx_accepts(tmp_path, http):
    conf = write_conf(tmp_path, http)
    assert ngate_error(conf, str(tmp_path)) == "OK"
    assert nginx_error(conf, str(tmp_path)) == "OK"


def _loc(cfg, path: str):
    srv = cfg.servers[0]
    return next(loc for loc in srv.locations if loc.pattern == path).conf


def test_limits_inherit_as_whole_lists(tmp_path):
    cfg = load_http(tmp_path, Z + C + """
        limit_req_zone $uri zone=two:1m rate=30r/m;
        limit_req zone=one burst=2;
        limit_req_status 429;
        server { listen 127.0.0.1:8080;
            limit_conn c 3;
            location /a { }
            location /b { limit_req zone=two nodelay; limit_req_log_level info; }
            location /c { limit_conn_dry_run on; }
        }
        server { listen 127.0.0.1:8081; location /free { } }
    """)
    a, b, c = (_loc(cfg, p) for p in ("/a", "/b", "/c"))
    assert [lr.zone.name for lr in a.limits.req] == ["one"]
    assert a.limits.req[0].burst == 2000 and a.limits.req[0].delay == 0
    assert a.limits.req_status == 429 and a.limits.req_log_level == "error"
    assert a.limits.req_delay_level == "warn"
    assert [lc.conn for lc in a.limits.conn] == [3]
    # a level with its own limit_req replaces the inherited list
    assert [lr.zone.name for lr in b.limits.req] == ["two"]
    assert b.limits.req[0].delay > 10 ** 15                 # nodelay
    assert b.limits.req_delay_level == "info"
    assert c.limits.conn_dry_run and not a.limits.conn_dry_run
    zone = a.limits.req[0].zone
    assert zone.rate == 1000 and cfg.servers[1].locations[0].conf.limits.req[0].zone is zone
    assert {z.name: z.rate for z in cfg.zones if z.module == "limit_req"} == \
        {"one": 1000, "two": 500}


def test_locations_without_limits_have_none(tmp_path):
    cfg = load_http(tmp_path, Z + "server { listen 127.0.0.1:8080; location / { } }")
    assert _loc(cfg, "/").limits is None


def test_reload_reuses_a_zone_of_the_same_name_and_size(tmp_path):
    first = load_http(tmp_path, Z + S % "limit_req zone=one;")
    zones.adopt(first.zones)
    try:
        same = load_http(tmp_path, Z.replace("1r/s", "5r/s") + S % "limit_req zone=one;")
        assert same.zones[0].table is first.zones[0].table
        assert same.zones[0].rate == 5000                 # the new rate applies to the old states
        bigger = load_http(tmp_path, Z.replace("1m", "2m") + S % "limit_req zone=one;")
        assert bigger.zones[0].table is not first.zones[0].table
        with pytest.raises(ConfigError) as err:
            load_http(tmp_path, Z.replace("$binary_remote_addr", "$uri") + S % "limit_req zone=one;")
        assert str(err.value) == ('limit_req "one" uses the "$uri" key while previously it used '
                                  'the "$binary_remote_addr" key')
        conn = load_http(tmp_path, C.replace("zone=c", "zone=one") + S % "limit_conn one 1;")
        assert conn.zones[0].table is not first.zones[0].table    # another module: a new zone
    finally:
        zones.adopt(())


def test_key_change_of_a_kept_limit_conn_zone_is_refused(tmp_path):
    first = load_http(tmp_path, C + S % "limit_conn c 1;")
    zones.adopt(first.zones)
    try:
        with pytest.raises(ConfigError) as err:
            load_config(write_conf(tmp_path, C.replace("$binary_remote_addr", "$host")
                                   + S % "limit_conn c 1;"), str(tmp_path))
        assert str(err.value) == ('limit_conn_zone "c" uses the "$host" key while previously it '
                                  'used the "$binary_remote_addr" key')
    finally:
        zones.adopt(())
