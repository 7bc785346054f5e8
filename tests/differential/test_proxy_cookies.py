"""proxy_cookie_domain, proxy_cookie_path, proxy_cookie_flags and $upstream_cookie_*: the
Set-Cookie headers an upstream sends, as the client receives them from nginx and from ngate."""
import pytest

from tests.harness.backend import Reply

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;

        location / {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_cookie_domain www.example.org .example.com;
            proxy_cookie_domain .$server_name.net en.$server_name.org;
            proxy_cookie_domain ~^(.+)\\.com$ $1.org;
            proxy_cookie_path /path/ /new/;
            proxy_cookie_path ~*^/caseless/(.+)$ /$1;
            proxy_cookie_flags a secure httponly samesite=none;
            proxy_cookie_flags d nosecure nohttponly nosamesite;
            proxy_cookie_flags ~^ses httponly samesite=lax;
            proxy_cookie_flags $arg_flag secure;
            add_header X-Upstream-Cookie "[$upstream_cookie_tc]";

            location /off/ {
                proxy_pass http://127.0.0.1:{backend_port};
                proxy_cookie_domain off;
                proxy_cookie_path off;
                proxy_cookie_flags off;
            }
        }
    }
}
"""

COOKIES = {
    "domain": [b"v=1; Domain=www.Example.org", b"w=2; domain=.example.test.NET; Path=/x"],
    "regex": [b"v=1;Domain=www.example.COM ;  path=/CASEless/a.html"],
    "path": [b"v=1; Path=/path/a; Path=/other/"],
    "flags": [b"a=1; Secure; SameSite=Strict", b"d=2; secure; HttpOnly; samesite=lax; Max-Age=3",
              b"session=x", b"SESSION=y; samesite", b"other=z; Domain=nope.invalid"],
    "bare": [b"flagonly; Domain=www.example.org", b"a"],
    "var": [b"mine=1; Path=/"],
    "upstream": [b"tcx=no", b"tc = first ; Path=/", b"tc=second"],
}


@pytest.fixture(scope="module")
def diff(differential):
    d = differential(CONF)
    for name, values in COOKIES.items():
        reply = Reply(headers=[(b"Set-Cookie", v) for v in values], body=b"ok")
        d.backend.route(f"/{name}", reply)
        d.backend.route(f"/off/{name}", reply)
    return d


@pytest.mark.parametrize("name", sorted(COOKIES))
def test_set_cookie_rewritten(diff, name):
    diff.check_request("GET", f"/{name}?flag=mine")


@pytest.mark.parametrize("name", sorted(COOKIES))
def test_set_cookie_untouched_with_off(diff, name):
    resp = diff.check_request("GET", f"/off/{name}").response
    assert resp.header_all("set-cookie") == COOKIES[name]


def test_rewrites_seen(diff):
    """The outcomes the differential runs compare, spelled out (nginx's)."""
    get = diff.check_request
    assert get("GET", "/domain").response.header_all("set-cookie") == [
        b"v=1; Domain=example.com", b"w=2; domain=.en.example.test.org; Path=/x"]
    assert get("GET", "/regex").response.header_all("set-cookie") == [
        b"v=1; Domain=www.example.org; path=/a.html"]
    assert get("GET", "/flags").response.header_all("set-cookie") == [
        b"a=1; Secure; SameSite=None; HttpOnly", b"d=2; Max-Age=3",
        b"session=x; HttpOnly; SameSite=Lax", b"SESSION=y; SameSite=Lax; HttpOnly",
        b"other=z; Domain=nope.invalid"]
    assert get("GET", "/upstream").response.header("x-upstream-cookie") == b"[first ]"
