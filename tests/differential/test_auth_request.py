"""auth_request / auth_request_set through nginx and ngate, with a recording auth service: what
the service receives (the subrequest: GET, the client's headers, no body), which of its answers
let the request in (2xx), refuse it (401 with the service's WWW-Authenticate, 403) or fail it
(500), satisfy any/all with it, variables set from the service's response (also after an
internal redirect), and `set`/map values kept across internal redirects."""
import pytest

from tests.harness.backend import Reply
from tests.harness.client import build_request
from tests.harness.differential import Differential
from tests.harness.paths import readable_tmpdir

AUTH = """
            proxy_pass http://127.0.0.1:{auth_port}/;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
"""

CONF = """
http {
    map $uri $first_uri { default "$uri"; }
    server {
        listen 127.0.0.1:{port};
        server_name example.test;

        location /app/ {
            auth_request /_auth/ok;
            auth_request_set $user $upstream_http_x_user;
            auth_request_set $args "from-auth";
            proxy_set_header X-User $user;
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /app401/ { auth_request /_auth/deny401; proxy_pass http://127.0.0.1:{backend_port}; }
        location /app403/ { auth_request /_auth/deny403; proxy_pass http://127.0.0.1:{backend_port}; }
        location /app500/ { auth_request /_auth/fail; proxy_pass http://127.0.0.1:{backend_port}; }
        location /app302/ { auth_request /_auth/redirect; proxy_pass http://127.0.0.1:{backend_port}; }
        location /appdead/ { auth_request /_dead; proxy_pass http://127.0.0.1:{backend_port}; }
        location /apptext/ { auth_request /_text; proxy_pass http://127.0.0.1:{backend_port}; }
        location /off/ { auth_request /_auth/deny403; location /off/inner/ { auth_request off;
                         proxy_pass http://127.0.0.1:{backend_port}; } }
        location /any-allow/ {
            satisfy any; allow 127.0.0.1; deny all;
            auth_request /_auth/deny403;
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /any-deny/ {
            satisfy any; deny all;
            auth_request /_auth/ok;
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /any-both-fail/ {
            satisfy any; deny all;
            auth_request /_auth/deny401;
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /all-deny/ {
            deny all;
            auth_request /_auth/ok;
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /after-redirect/ {
            auth_request /_auth/ok;
            auth_request_set $user $upstream_http_x_user;
            set $mine "kept $first_uri";
            error_page 404 = /show;
            return 404;
        }
        location /after-redirect-static/ {
            auth_request /_auth/ok;
            auth_request_set $user $upstream_http_x_user;
            set $mine "kept $first_uri";
            root {docroot};
            error_page 404 = /show;
        }
        location = /show { return 200 "user=$user mine=$mine, first=$first_uri uri=$uri\\n"; }

        location /_auth/ { internal;""" + AUTH + """        }
        location = /_dead { internal; proxy_pass http://127.0.0.1:{dead_port}; }
        location = /_text { return 200 "fine"; }
    }
}
"""


@pytest.fixture(scope="module")
def diff():
    with readable_tmpdir("ngate-auth-request-") as base:
        docroot = base / "docroot"
        docroot.mkdir(mode=0o755)
        (base / "diff").mkdir()
        d = Differential(CONF, base / "diff", backends=("backend", "auth"), docroot=docroot)
        try:
            d.start()
            _routes(d)
            yield d
        finally:
            d.stop()


def _routes(d) -> None:
    auth = d.backends["auth"]
    auth.route("/ok", Reply(headers=[(b"X-User", b"alice"), (b"Content-Type", b"text/plain")],
                            body=b"auth body never seen\n"))
    auth.route("/deny401", Reply(status=401, headers=[
        (b"WWW-Authenticate", b'Bearer realm="sso"'), (b"WWW-Authenticate", b"Basic"),
        (b"X-Hidden", b"1")], body=b"no\n"))
    auth.route("/deny403", Reply(status=403, body=b"no\n"))
    auth.route("/fail", Reply(status=500, body=b"boom\n"))
    auth.route("/redirect", Reply(status=302, headers=[(b"Location", b"http://sso/login")],
                                  body=b""))


def check(diff, target, method="GET", headers=(), body=None):
    return diff.check_raw(build_request(method, target, headers=list(headers), body=body),
                          method=method)


def test_allowed_with_variables_from_the_auth_response(diff):
    out = check(diff, "/app/page?x=1", headers=[(b"User-Agent", b"ua"), (b"Cookie", b"s=1")])
    assert out.response.status == 200
    sub, = out.requests("auth")
    assert sub.method == b"GET" and sub.target == b"/ok"
    assert sub.header(b"x-original-uri") == b"/app/page?x=1"
    assert sub.header(b"cookie") == b"s=1"
    app, = out.requests("backend")
    assert app.header(b"x-user") == b"alice"
    assert app.target == b"/app/page?from-auth"


def test_post_body_goes_to_the_app_only(diff):
    out = check(diff, "/app/form", method="POST", body=b"a=1&b=2")
    sub, = out.requests("auth")
    assert sub.method == b"GET" and sub.body == b""
    assert sub.header(b"x-original-method") == b"POST"
    app, = out.requests("backend")
    assert app.method == b"POST" and app.body == b"a=1&b=2"


@pytest.mark.parametrize("path,status", [("/app401/", 401), ("/app403/", 403), ("/app500/", 500),
                                         ("/app302/", 500), ("/appdead/", 500),
                                         ("/apptext/", 200)])
def test_answers_of_the_auth_service(diff, path, status):
    out = check(diff, path)
    assert out.response.status == status
    if status == 401:
        assert out.response.header("www-authenticate") == b'Bearer realm="sso"'
    assert len(out.requests("backend")) == (1 if status == 200 else 0)


def test_head_and_auth_request_off(diff):
    check(diff, "/app401/", method="HEAD")
    assert check(diff, "/off/x").response.status == 403
    assert check(diff, "/off/inner/x").response.status == 200


@pytest.mark.parametrize("path", ["/any-allow/", "/any-deny/", "/any-both-fail/", "/all-deny/"])
def test_satisfy(diff, path):
    check(diff, path)


def test_variables_survive_internal_redirects(diff):
    r = check(diff, "/after-redirect/x").response      # return: before the access phase
    assert r.body == b"user= mine=kept /after-redirect/x, first=/after-redirect/x uri=/show\n"
    r = check(diff, "/after-redirect-static/missing").response
    assert r.body == (b"user=alice mine=kept /after-redirect-static/missing, "
                      b"first=/after-redirect-static/missing uri=/show\n")
