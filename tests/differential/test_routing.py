"""Routing: location matching order, server_name selection, map, weighted upstream round-robin."""
import pytest

from tests.harness.client import build_request, exchange

CONF = """
http {
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    map $http_x_tier $tier {
        default       standard;
        gold          premium;
        ~^silver-(\\d+)$ silver$1;
    }
    map $http_x_site $site {
        hostnames;
        default          none;
        .example.com     dot-example;
        *.wild.org       star-wild;
        www.back.*       back-star;
        exact.example.com exact;
    }
    upstream weighted {
        server 127.0.0.1:{backend_port} weight=2;
        server 127.0.0.1:{backend2_port};
    }
    server {
        listen 127.0.0.1:{port};
        server_name example.test;

        location = /exact { return 200 "exact\n"; }
        location / { return 200 "root prefix\n"; }
        location /static/ { return 200 "static prefix\n"; }
        location ^~ /static/stop/ { return 200 "caret stop\n"; }
        location ~ \\.php$ { return 200 "php regex\n"; }
        location ~* \\.(PNG|jpg)$ { return 200 "image regex\n"; }
        location /static/long/path/ { return 200 "longest prefix\n"; }
        location /nested/ {
            location ~ \\.txt$ { return 200 "nested regex\n"; }
            return 200 "nested outer\n";
        }
        location /wss { return 200 "wss no slash\n"; }
        location /dir/ {
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /upgrade/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }
        location /tier { return 200 "tier=$tier\n"; }
        location /site { return 200 "site=$site\n"; }
        location /rr/ {
            proxy_pass http://weighted;
        }
    }
    server {
        listen 127.0.0.1:{port};
        server_name www.other.test *.wild.test www.back.*;
        location / { return 200 "other: $server_name $host\n"; }
    }
    server {
        listen 127.0.0.1:{port};
        server_name ~^(?<sub>[a-z]+)\\.regex\\.test$;
        location / { return 200 "regex server: $sub\n"; }
    }
    server {
        listen 127.0.0.1:{port} default_server;
        server_name _;
        location / { return 200 "default server $host\n"; }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF, backends=("backend", "backend2"))


@pytest.mark.parametrize("target", [
    "/exact", "/exact/", "/", "/static/a", "/static/stop/x.php", "/static/x.php", "/static/x.PHP",
    "/img/a.png", "/img/a.JPG", "/static/long/path/x", "/static/long/path/x.jpg", "/nested/a.txt",
    "/nested/a", "/wssfoo", "/wss/x", "/xphp", "/%73tatic/a", "/static/../exact", "/a//static/x",
])
def test_location_matching(diff, target):
    diff.check_request("GET", target)


def test_prefix_with_slash_redirects_when_slash_missing(diff):
    out = diff.check_request("GET", "/dir?x=1")
    assert out.response.status == 301


@pytest.mark.parametrize("host", [b"example.test", b"EXAMPLE.test:80", b"www.other.test", b"a.wild.test",
                                  b"deep.a.wild.test", b"www.back.org", b"abc.regex.test",
                                  b"unknown.test", b"example.test.", b""])
def test_server_name_selection(diff, host):
    diff.check_request("GET", "/who", host=host)


def test_server_name_from_absolute_uri_wins_over_host(diff):
    diff.check_raw(b"GET http://www.other.test/who HTTP/1.1\r\nHost: example.test\r\n\r\n")


@pytest.mark.parametrize("upgrade", [None, b"websocket"])
def test_connection_upgrade_map(diff, upgrade):
    headers = [(b"Upgrade", upgrade)] if upgrade else []
    out = diff.check_request("GET", "/upgrade/x", headers=headers)
    assert out.requests()[0].header(b"connection") == (b"upgrade" if upgrade else b"close")


@pytest.mark.parametrize("tier", [None, b"gold", b"GOLD", b"silver-42", b"bronze"])
def test_map_values(diff, tier):
    diff.check_request("GET", "/tier", headers=[(b"X-Tier", tier)] if tier else [])


@pytest.mark.parametrize("site", [b"example.com", b"a.example.com", b"exact.example.com",
                                  b"x.wild.org", b"wild.org", b"www.back.net", b"EXAMPLE.COM.",
                                  b"other.net"])
def test_map_hostnames(diff, site):
    diff.check_request("GET", "/site", headers=[(b"X-Site", site)])


def test_weighted_round_robin_order(diff):
    def script(port):
        return [exchange(port, build_request("GET", f"/rr/{i}"))[0].body for i in range(6)]
    out = diff.check(script)
    assert out.result.count(b"ok backend\n") == 4 and out.result.count(b"ok backend2\n") == 2
