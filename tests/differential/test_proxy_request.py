"""What the backend receives: nginx's default proxy request, the Tomcat block, URI replacement,
hop-by-hop removal, proxy_set_header rules (empty values, replace-not-merge inheritance)."""
import pytest

from tests.harness.backend import Reply
from tests.harness.client import build_request, exchange

CONF = """
http {
    proxy_set_header X-From-Http http;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;

        location / {
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /tomcat/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
            proxy_set_header X-Real-IP $remote_addr;
        }
        location /x/ {
            proxy_pass http://127.0.0.1:{backend_port}/app/;
        }
        location /y {
            proxy_pass http://127.0.0.1:{backend_port}/;
        }
        location /inherit/ {
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /own/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_set_header X-Own own;
        }
        location /empty/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header X-Empty "";
            proxy_set_header User-Agent "";
        }
        location /xff/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Host $host;
        }
        location /utf8/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_set_header X-ȿ "ȿ $arg_a";
            add_header X-ȿ ȿ;
        }
        location /replace/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_set_header Host backend.test;
            proxy_set_header Accept text/x-replaced;
        }
    }
    server {
        listen 127.0.0.1:{port2};
        proxy_set_header X-From-Server server;
        location / {
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /loc/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_set_header X-From-Location loc;
        }
    }
}
"""

HOP_BY_HOP = [(b"Connection", b"keep-alive, X-Custom-Hop"), (b"Keep-Alive", b"timeout=5"),
              (b"Proxy-Connection", b"keep-alive"), (b"TE", b"trailers"),
              (b"Upgrade", b"h2c"), (b"X-Custom-Hop", b"1"), (b"Accept", b"*/*")]


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF)


def test_default_request_is_http10_with_proxy_host_and_close(diff):
    seen = diff.check_request("GET", "/a/b?c=1&d=%41", headers=[(b"Accept", b"*/*")]).requests()
    assert seen[0].head.startswith(b"GET /a/b?c=1&d=%41 HTTP/1.0\r\n")
    assert seen[0].header(b"host") == f"127.0.0.1:{diff.backend.port}".encode()
    assert seen[0].header(b"connection") == b"close"


def test_tomcat_block_http11_and_real_ip(diff):
    seen = diff.check_request("GET", "/tomcat/page", headers=[(b"X-Real-IP", b"6.6.6.6")]).requests()
    assert seen[0].version == b"HTTP/1.1"
    assert seen[0].header(b"x-real-ip") == b"127.0.0.1"
    assert seen[0].header_names().count(b"x-real-ip") == 1


@pytest.mark.parametrize("target", ["/x/", "/x/deep/path?q=1", "/x/a%20b", "/x/%2e%2e/../x/n"])
def test_proxy_pass_with_uri_replaces_location_prefix(diff, target):
    diff.check_request("GET", target)


def test_proxy_pass_with_uri_on_prefix_without_slash(diff):
    seen = diff.check_request("GET", "/yes/sir").requests()
    assert seen[0].target == b"/es/sir"


@pytest.mark.parametrize("target", ["/plain/%7Euser/a%2Fb?x=%20", "//double//slash", "/a/./b/../c"])
def test_proxy_pass_without_uri_passes_request_uri_unchanged(diff, target):
    seen = diff.check_request("GET", target).requests()
    assert seen[0].target == target.encode()


def test_hop_by_hop_headers_are_not_forwarded(diff):
    seen = diff.check_request("GET", "/tomcat/hop", headers=HOP_BY_HOP).requests()
    names = seen[0].header_names()
    for hop in (b"keep-alive", b"te", b"upgrade"):
        assert hop not in names
    # nginx (1.22) forwards Proxy-Connection and headers named in Connection
    assert b"proxy-connection" in names and b"x-custom-hop" in names
    assert seen[0].header(b"connection") == b"close"


def test_inherited_proxy_set_header_from_http(diff):
    seen = diff.check_request("GET", "/inherit/").requests()
    assert seen[0].header(b"x-from-http") == b"http"


def test_location_proxy_set_header_replaces_outer_ones(diff):
    seen = diff.check_request("GET", "/own/").requests()
    assert seen[0].header(b"x-own") == b"own"
    assert seen[0].header(b"x-from-http") is None


def test_server_level_replaces_http_level(diff):
    out = diff.check(lambda port: exchange(_port2(diff, port), build_request("GET", "/s")))
    assert out.requests()[0].header(b"x-from-server") == b"server"
    assert out.requests()[0].header(b"x-from-http") is None
    out = diff.check(lambda port: exchange(_port2(diff, port), build_request("GET", "/loc/")))
    assert out.requests()[0].header(b"x-from-location") == b"loc"
    assert out.requests()[0].header(b"x-from-server") is None


def _port2(diff, port):
    """The second listen port of the program whose first port is `port`."""
    return next(p.params["port2"] for p in diff.procs.values() if p.port == port)


def test_empty_proxy_set_header_value_is_not_sent(diff):
    seen = diff.check_request("GET", "/empty/", headers=[(b"User-Agent", b"curl/8")]).requests()
    names = seen[0].header_names()
    assert b"upgrade" not in names and b"x-empty" not in names and b"user-agent" not in names


def test_empty_proxy_set_header_with_value_is_sent(diff):
    seen = diff.check_request("GET", "/empty/", headers=[(b"Upgrade", b"websocket")]).requests()
    assert seen[0].header(b"upgrade") == b"websocket"


@pytest.mark.parametrize("xff", [None, b"10.0.0.1", b"10.0.0.1, 10.0.0.2"])
def test_proxy_add_x_forwarded_for(diff, xff):
    headers = [(b"X-Forwarded-For", xff)] if xff else []
    seen = diff.check_request("GET", "/xff/", headers=headers, host=b"Example.TEST:8080").requests()
    expected = (xff + b", " if xff else b"") + b"127.0.0.1"
    assert seen[0].header(b"x-forwarded-for") == expected
    assert seen[0].header(b"host") == b"example.test"


def test_proxy_set_header_replaces_client_header(diff):
    seen = diff.check_request("GET", "/replace/", headers=[(b"Accept", b"text/html")]).requests()
    assert seen[0].header_names().count(b"accept") == 1
    assert seen[0].header(b"accept") == b"text/x-replaced"
    assert seen[0].header(b"host") == b"backend.test"


def test_client_headers_order_duplicates_and_case_preserved(diff):
    headers = [(b"x-lower", b"1"), (b"X-Dup", b"a"), (b"Cookie", b"a=1"), (b"X-Dup", b"b"),
               (b"Cookie", b"b=2"), (b"ACCEPT-LANGUAGE", b"fr"), (b"Under_Score", b"dropped")]
    diff.check_request("GET", "/hdrs", headers=headers)


def test_unknown_response_from_backend_passes(diff):
    diff.backend.route("/status418", Reply(status=418, reason="I'm a teapot", body=b"tea"))
    diff.check_request("GET", "/status418")


def test_header_names_and_values_outside_latin1_are_the_config_bytes(diff):
    """Issue 10: `proxy_set_header X-ȿ ...` (a UnicodeEncodeError that killed a reload):
    nginx sends the name and value as the config file's UTF-8 bytes, both ways."""
    out = diff.check_request("GET", "/utf8/?a=%C3%A9")
    utf8 = "ȿ".encode()
    assert b"\r\nX-" + utf8 + b": " + utf8 + b" %C3%A9\r\n" in out.requests()[0].head
    assert out.response.header(b"X-" + utf8) == utf8
