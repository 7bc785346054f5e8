"""error_page's status rules (ngx_http_special_response_handler), server_name selection details
and variables across internal redirects, against nginx on the same config."""
import os

import pytest

from tests.harness.paths import readable_tmpdir

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};

        location /e404r405 { error_page 404 /r405; return 404; }
        location /e405r204 { error_page 405 /r204; return 405; }
        location /e405r200text { error_page 405 /r200text; return 405; }
        location /e405r302text { error_page 405 /r302text; return 405; }
        location /e302r200text { error_page 302 /r200text; return 302 "text"; }
        location /e405rewrite { error_page 405 /rw; return 405; }
        location /e405dir { error_page 405 /dir; return 405; }
        location /e404text { error_page 404 /r200text; return 404 "own text"; }
        location /e302again { error_page 302 /r302abs; return 302 "first"; }
        location /setvar { set $foo bar; error_page 404 /showvar; return 404; }
        location /tryvar { set $foo baz; try_files /nonexistent /showvar; }
        location /showvar { return 200 "foo=[$foo]"; }
        location /r405 { return 405; }
        location /r204 { return 204; }
        location /r200text { return 200 "text"; }
        location /r302text { return 302 "text"; }
        location /r302abs { return 302 http://example.com/; }
        location /rw { rewrite ^ http://example.com/ redirect; }
        location /dir { }
    }
    server {
        listen 127.0.0.1:{port};
        server_name "";
        location / { return 200 "no host [$server_name]"; }
    }
    server {
        listen 127.0.0.1:{port};
        server_name .Dot.Example.com;
        location / { return 200 "dot [$server_name]"; }
    }
    server {
        listen 127.0.0.1:{port};
        server_name ~^(?P<name>[a-z]+)\\Q.example.com\\E$;
        root {root};
        location = /index.html { return 200 "name [$name]"; }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    with readable_tmpdir("root-") as root:
        (root / "dir").mkdir()
        (root / "index.html").write_text("")
        for d in (root, root / "dir"):
            os.chmod(d, os.stat(d).st_mode | 0o055)   # nginx's workers run as nobody
        yield differential(CONF, root=str(root))


@pytest.mark.parametrize("target", [
    "/e404r405", "/e405r204", "/e405r200text", "/e405r302text", "/e302r200text", "/e405rewrite",
    "/e405dir", "/e404text", "/e302again", "/setvar", "/tryvar"])
def test_error_page_status(diff, target):
    out = diff.check_request("GET", target)
    assert out.response.status in (204, 200, 302, 301, 404, 405)


def test_error_page_redirect_replaces_location(diff):
    out = diff.check_request("GET", "/e302again")
    assert out.response.header_all("location") == [b"http://example.com/"]


def test_variables_survive_internal_redirect(diff):
    assert diff.check_request("GET", "/setvar").response.body == b"foo=[bar]"


@pytest.mark.parametrize("host", ["x.dot.example.com", "dot.example.com", "blah.example.com"])
def test_server_name_variable(diff, host):
    diff.check_request("GET", "/", host=host.encode())


def test_no_host_picks_empty_server_name(diff):
    out = diff.check_request("GET", "/", version="HTTP/1.0", host=None)
    assert out.response.body == b"no host []"
