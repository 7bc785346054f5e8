"""The URI an internal redirect sets is used as it is, not parsed again (ngx_http_internal_redirect
takes it whole): error_page, try_files' fallback, an absolute index, rewrite ... last keep dots,
doubled slashes and %XX in $uri and in the location search; X-Accel-Redirect alone checks and
unescapes its URI (ngx_http_parse_unsafe_uri)."""
import pytest

from tests.harness.backend import Reply
from tests.harness.paths import readable_tmpdir

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        root {docroot};
        location /a/ { return 200 "a: $uri|$args\\n"; }
        location / { return 200 "root: $uri|$args\\n"; }
        location = /err-dots { error_page 404 /a/../b; return 404; }
        location = /err-slashes { error_page 404 //a//b?x=1; return 404; }
        location = /err-encoded { error_page 404 /a/x%2Fy%20z; return 404; }
        location = /err-above { error_page 404 /../a/c; return 404; }
        location = /err-dot { error_page 404 /a/./c; return 404; }
        location = /tf { try_files /no-such-file /a/../tf//c?q=1; }
        location /idx/ { index /a/../index; }
        location = /rw { rewrite ^ /a/../rw last; }
        location /accel/ { proxy_pass http://127.0.0.1:{backend_port}; }
    }
}
"""

TARGETS = ["/err-dots", "/err-slashes", "/err-encoded", "/err-above", "/err-dot", "/tf", "/idx/",
           "/rw", "/accel/slashes", "/accel/encoded", "/accel/dots"]


@pytest.fixture(scope="module")
def docroot():
    with readable_tmpdir("ngate-redirect-uri-") as root:
        yield root


@pytest.fixture(scope="module")
def diff(differential, docroot):
    d = differential(CONF, docroot=docroot)
    for name, target in (("slashes", b"/a//b"), ("encoded", b"/a/x%2Fy%20z"),
                         ("dots", b"/a/../b")):
        d.backend.route("/accel/" + name, Reply(headers=[(b"X-Accel-Redirect", target)],
                                                body=b""))
    return d


@pytest.mark.parametrize("target", TARGETS)
def test_redirected_uri(diff, target):
    diff.check_request("GET", target)


def test_facts(diff):
    assert diff.check_request("GET", "/err-dots").response.body == b"a: /a/../b|\n"
    assert diff.check_request("GET", "/err-encoded").response.body == b"a: /a/x%2Fy%20z|\n"
