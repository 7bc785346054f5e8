"""proxy_redirect with variables in its first argument and with regexes (an unanchored search
whose replacement stands for the whole value), on Location and Refresh."""
import pytest

from tests.harness.backend import Reply

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        location / {
            set $some_var var_here;
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_redirect http://127.0.0.1:{backend_port}/$some_var/ /replaced/;
            proxy_redirect ~^(.+)/regex_w_([^/]+) $1/$2/test.html;
            proxy_redirect ~*re+gexp? /replaced/test.html;
        }
    }
}
"""

PATHS = ["/var_here/test.html", "/ReeegEX/test.html", "/regex_w_captures/test.html",
         "/other/test.html"]


@pytest.fixture(scope="module")
def diff(differential):
    d = differential(CONF)
    b = d.backend
    for path in PATHS:
        url = f"http://127.0.0.1:{b.port}{path}".encode()
        b.route(path, Reply(status=302, body=b"", headers=[
            (b"Location", url), (b"Refresh", b"7; url=" + url)]))
    return d


@pytest.mark.parametrize("path", PATHS)
def test_proxy_redirect_rules(diff, path):
    diff.check_request("GET", path)


def test_regex_replaces_the_whole_value(diff):
    resp = diff.check_request("GET", "/ReeegEX/test.html").response
    assert resp.header("location").endswith(b"/replaced/test.html")
    assert resp.header("refresh") == b"7; url=/replaced/test.html"
