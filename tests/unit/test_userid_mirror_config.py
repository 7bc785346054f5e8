"""userid and mirror directives: values and errors as `nginx -t` gives them, the merged
settings, and the userid cookie helpers (nginx's cookie parsing, base64 and cookie dates)."""
from __future__ import annotations

import pytest

from ngate.routing import userid
from tests.unit._config_helpers import load_http, ngate_error, nginx_error, write_conf

ERRORS = [
    "userid maybe;", "userid on; userid off;", "userid_mark ab;", "userid_mark -;",
    "userid_mark t; userid_mark t;", "userid_expires 1ms;", "userid_expires x;",
    "userid_expires 1h; userid_expires off;", "userid_service x;", "userid_flags nope;",
    "userid_flags secure secure secure secure;", "userid_name a b;",
    "mirror /a; mirror off;", "mirror off; mirror /a;", "mirror off; mirror off;",
    "mirror_request_body maybe;", "mirror a b;",
    "userid on; userid_name u; userid_domain none; userid_p3p none; userid_mark =;"
    " userid_expires max; userid_flags off secure; userid_service 1;",
    "mirror /a; mirror /b; mirror_request_body off;",
]


@pytest.mark.parametrize("stmt", ERRORS)
def test_errors_as_nginx(tmp_path, stmt):
    conf = write_conf(tmp_path, f"server {{ listen 8080; location / {{ {stmt} }} }}")
    assert ngate_error(conf, str(tmp_path)) == nginx_error(conf, str(tmp_path))


def test_merge(tmp_path):
    from ngate.routing.locations import find_location
    config = load_http(tmp_path, """server { listen 8080; userid v1; userid_mark x;
        location /a { userid_path /a; mirror /m; location /a/b { mirror off; } }
        location /c { userid off; } }""")
    server = config.servers[0]
    a, ab, c = (find_location(server, uri)[0].conf for uri in ("/a", "/a/b", "/c"))
    root = server.conf
    assert a.userid.enable == userid.V1 and a.userid.mark == "x" and a.mirror.uris == ("/m",)
    assert a.userid.path == b"; path=/a" and a.userid.name == "uid" and a.mirror.request_body
    assert ab.mirror.uris is None and ab.userid == a.userid
    assert c.userid is None
    assert root.userid.path == b"; path=/" and root.mirror.uris is None


@pytest.mark.parametrize("line,found", [
    (b"uid=abc", b"abc"), (b"a=b; uid=abc; c=d", b"abc"), (b"a=b,uid = abc ;x", b"abc "),
    (b"UID=abc", b"abc"), (b"uidx=1; uid=2", b"2"), (b"xuid=1", None), (b"uid", None),
])
def test_find_cookie(line, found):
    got = userid._find_cookie([(b"Cookie", line)], b"uid")
    assert (got and got[0]) == found if found is not None else got is None


def test_decode_and_cookie_time():
    assert userid._decode(b"fwAAAWsVKpKaDi4PAwMEAg") == bytes.fromhex(
        "7f0000016b152a929a0e2e0f03030402")
    assert userid._decode(b"!!!!") is None and userid._decode(b"abcde") is None
    assert userid.cookie_time(2145916555) == b"Thu, 31-Dec-37 23:55:55 GMT"
    assert userid.cookie_time(2145916555 + 86400) == b"Fri, 01-Jan-2038 23:55:55 GMT"
    assert userid.cookie_time(0) == b"Thu, 01-Jan-70 00:00:00 GMT"
