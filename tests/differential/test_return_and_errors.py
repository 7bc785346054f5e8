"""Answers nginx makes itself: return (text, redirects), error_page (URI, named location, =code),
proxy_intercept_errors, upstream down (502) and upstream timeout (504)."""
import pytest

from tests.harness.backend import Reply
from tests.harness.client import Connection, build_request

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;

        location = /text { return 200 "hello $request_method $uri\n"; }
        location = /url-only { return http://other.test/only-url; }
        location = /r301 { return 301 /target?x=1; }
        location = /r302abs { return 302 http://other.test/abs; }
        location = /r307 { return 307 https://other.test$request_uri; }
        location = /r404 { return 404; }
        location = /r403text { return 403 "forbidden text"; }
        location = /r204 { return 204; }
        location = /r500 { return 500; }

        location /down/ {
            proxy_pass http://127.0.0.1:{dead_port};
        }
        location /slow/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_read_timeout 1s;
        }
        location /ep/ {
            proxy_pass http://127.0.0.1:{dead_port};
            error_page 502 /errors/502.txt;
        }
        location /ep-named/ {
            proxy_pass http://127.0.0.1:{dead_port};
            error_page 502 504 = @fallback;
        }
        location /ep-code/ {
            proxy_pass http://127.0.0.1:{dead_port};
            error_page 502 =200 /errors/502.txt;
        }
        location /intercept/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_intercept_errors on;
            error_page 404 /errors/404.txt;
            error_page 500 = @fallback;
            error_page 401 /errors/401.txt;
        }
        location /no-intercept/ {
            proxy_pass http://127.0.0.1:{backend_port};
            error_page 404 /errors/404.txt;
        }
        location /errors/ {
            internal;
            return 200 "error page for $request_uri\n";
        }
        location = /small { client_max_body_size 10; return 200 "small ok\n"; }
        location = /small-ep {
            client_max_body_size 10;
            error_page 413 /errors/413.txt;
            return 200 "small ok\n";
        }
        location @fallback {
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /rec-on/ { recursive_error_pages on; error_page 404 /rec-missing; return 404; }
        location /rec-off/ { error_page 404 /rec-missing; return 404; }
        location = /rec-missing { error_page 404 /errors/second.txt; return 404; }
    }
}
"""

GARBAGE = b"NOT HTTP AT ALL\r\n\r\n"


@pytest.fixture(scope="module")
def diff(differential):
    d = differential(CONF)
    d.backend.route("/slow/x", Reply(delay=3, body=b"late"))
    d.backend.route("/slow/reset", Reply(action="reset"))
    d.backend.route("/slow/close", Reply(action="close"))
    d.backend.route("/slow/garbage", Reply(raw=GARBAGE))
    d.backend.route("/intercept/missing", Reply(status=404, body=b"backend 404"))
    d.backend.route("/intercept/broken", Reply(status=500, body=b"backend 500"))
    d.backend.route("/intercept/fine", Reply(status=200, body=b"backend 200"))
    d.backend.route("/intercept/auth", Reply(status=401, body=b"no",
                                             headers=[(b"WWW-Authenticate", b"Basic realm=x"),
                                                      (b"WWW-Authenticate", b"Bearer")]))
    d.backend.route("/no-intercept/missing", Reply(status=404, body=b"backend 404"))
    return d


@pytest.mark.parametrize("target", ["/text", "/url-only", "/r301", "/r302abs", "/r307?a=b",
                                    "/r404", "/r403text", "/r204", "/r500"])
def test_return(diff, target):
    diff.check_request("GET", target)


@pytest.mark.parametrize("target", ["/text", "/r301", "/r404"])
def test_return_http10_and_head(diff, target):
    diff.check_request("GET", target, version="HTTP/1.0")
    diff.check_request("HEAD", target)


def test_recursive_error_pages(diff):
    """on: the error page's own 404 goes to its error_page too; off: nginx's 404 page."""
    on = diff.check_request("GET", "/rec-on/x").response
    off = diff.check_request("GET", "/rec-off/x").response
    assert b"error page for" in on.body and b"error page for" not in off.body


def test_return_301_location_is_absolute(diff):
    out = diff.check_request("GET", "/r301")
    assert out.response.header("location") == f"http://example.test:{out.port}/target?x=1".encode()


def test_upstream_down_is_502(diff):
    out = diff.check_request("GET", "/down/x")
    assert out.response.status == 502


def test_upstream_timeout_is_504(diff):
    out = diff.check_request("GET", "/slow/x")
    assert out.response.status == 504


@pytest.mark.parametrize("target", ["/slow/reset", "/slow/close"])
def test_upstream_reset_or_close_is_502(diff, target):
    assert diff.check_request("GET", target).response.status == 502


def test_upstream_garbage_is_passed_as_http09(diff):
    """nginx logs "upstream sent no valid HTTP/1.0 header" and relays the bytes as HTTP/0.9."""
    def script(port):
        with Connection(port) as conn:
            conn.send(build_request("GET", "/slow/garbage"))
            return conn.read_exactly(len(GARBAGE))
    assert diff.check(script).result == GARBAGE


@pytest.mark.parametrize("target", ["/ep/x", "/ep-named/x", "/ep-code/x"])
def test_error_page(diff, target):
    diff.check_request("GET", target)


def test_error_page_named_location_reaches_backend(diff):
    out = diff.check_request("GET", "/ep-named/y?q=1")
    assert out.requests()[0].target == b"/ep-named/y?q=1"


@pytest.mark.parametrize("target", ["/intercept/missing", "/intercept/broken", "/intercept/fine",
                                    "/intercept/auth",
                                    "/no-intercept/missing"])
def test_proxy_intercept_errors(diff, target):
    diff.check_request("GET", target)


def test_internal_location_is_404_from_outside(diff):
    assert diff.check_request("GET", "/errors/502.txt").response.status == 404


@pytest.mark.parametrize("target, body", [
    ("/small", b"x" * 11), ("/small", b"x" * 10), ("/small-ep", b"y" * 64)])
def test_body_limit_is_checked_before_return(diff, target, body):
    """nginx checks client_max_body_size when the location is found, before rewrite/return."""
    out = diff.check_request("POST", target, body=body)
    assert out.response.status == (200 if len(body) <= 10 else 413)
