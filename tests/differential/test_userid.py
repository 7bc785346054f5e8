"""The userid module through nginx and ngate: the Set-Cookie line (name, marks, expires, domain,
path, flags, P3P), $uid_got / $uid_set / $uid_reset, and the identifier itself decoded from the
cookie: the service or local address word, the time, the worker's start value (pid in the low 16
bits) and nginx's sequence numbers, in nginx's byte order for `on` and `v1`."""
import base64
import re
import struct
import time

import pytest

from tests.harness.client import build_request, exchange

CONF = """
http {
    map $arg_reset $uid_reset { default 0; yes 1; log log; }
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        userid on;
        add_header X-Got $uid_got;
        add_header X-Set $uid_set;
        add_header X-Reset $uid_reset;
        location / { return 200 "got=$uid_got set=$uid_set\\n"; }
        location /attrs {
            userid_name sid;
            userid_domain example.test;
            userid_path /attrs;
            userid_expires max;
            userid_flags secure httponly samesite=lax;
            userid_p3p 'CP="NOI"';
            userid_mark Z;
            return 200 "$uid_set\\n";
        }
        location /v1 { userid v1; userid_service 258; return 200 "$uid_set\\n"; }
        location /svc { userid_service 65534; return 200 "$uid_set\\n"; }
        location /log { userid log; return 200 "got=$uid_got set=$uid_set\\n"; }
        location /off { userid off; return 200 "got=$uid_got set=$uid_set\\n"; }
        location /mark { userid_mark t; return 200 "$uid_set\\n"; }
        location /exp { userid_expires 1h; return 200 "$uid_set\\n"; }
        location /err { return 404; }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF, backends=())


def responses(diff, target: str, headers=()):
    raw = build_request("GET", target, headers=list(headers))
    return {kind: diff.run(kind, lambda port: exchange(port, raw)).result[0]
            for kind in diff.procs}


def cookie_of(resp):
    return next((v.decode() for n, v in resp.headers if n.lower() == b"set-cookie"), None)


def header(resp, name: bytes):
    return next((v.decode() for n, v in resp.headers if n.lower() == name), None)


def words(value: str) -> tuple:
    raw = base64.b64decode(value[:22] + "==")
    return struct.unpack("<4I", raw), raw


def shape(resp):
    """What must be equal between nginx and ngate once time, pid and sequence are masked."""
    c = cookie_of(resp)
    if c is None:
        return None, resp.status
    name, _, rest = c.partition("=")
    value, _, attrs = rest.partition(";")
    expires = re.sub(r"expires=[^;]+", "expires=*", attrs) if "31-Dec-37" not in attrs else attrs
    return name, len(value), value[21:], expires, header(resp, b"p3p"), resp.status


def test_new_cookie_on_is_nginx_s(diff):
    got = responses(diff, "/")
    assert shape(got["nginx"]) == shape(got["ngate"])
    now = int(time.time())
    for kind, resp in got.items():
        (w0, w1, w2, w3), raw = words(cookie_of(resp).split("=", 1)[1])
        assert raw[:4] == bytes([127, 0, 0, 1]), kind              # the local address
        assert abs(struct.unpack(">I", raw[4:8])[0] - now) < 30, kind  # time, network order
        assert struct.unpack(">I", raw[12:16])[0] & 0xFF == 0x02, kind  # 0x03030302 + n*0x100
        assert header(resp, b"x-set") == "uid=%08X%08X%08X%08X" % (w0, w1, w2, w3), kind
        assert header(resp, b"x-got") is None and header(resp, b"x-reset") == "0", kind


def test_v1_words_are_host_order(diff):
    got = responses(diff, "/v1")
    assert shape(got["nginx"]) == shape(got["ngate"])
    for kind, resp in got.items():
        (w0, w1, w2, w3), _ = words(cookie_of(resp).split("=", 1)[1])
        assert w0 == 258 and abs(w1 - time.time()) < 30 and w3 & 0xFF == 1, kind
        assert resp.body.decode().strip() == "uid=%08X%08X%08X%08X" % (w0, w1, w2, w3), kind


def test_service_word(diff):
    got = responses(diff, "/svc")
    for kind, resp in got.items():
        _, raw = words(cookie_of(resp).split("=", 1)[1])
        assert raw[:4] == struct.pack(">I", 65534), kind


@pytest.mark.parametrize("target", ["/attrs", "/mark", "/exp", "/err", "/log", "/off"])
def test_cookie_attributes(diff, target):
    got = responses(diff, target)
    assert shape(got["nginx"]) == shape(got["ngate"])


def test_cookie_sent_back(diff):
    nginx_cookie = cookie_of(responses(diff, "/")["nginx"]).split(";")[0]
    value = nginx_cookie.split("=", 1)[1]
    w = words(value)[0]
    hexed = "uid=%08X%08X%08X%08X" % w
    for target, headers in [("/", [(b"Cookie", nginx_cookie.encode())]),
                            ("/", [(b"Cookie", b"a=b; " + nginx_cookie.encode() + b"; c=d")]),
                            ("/log", [(b"Cookie", nginx_cookie.encode())]),
                            ("/mark", [(b"Cookie", nginx_cookie.encode())]),
                            ("/?reset=yes", [(b"Cookie", nginx_cookie.encode())]),
                            ("/", [(b"Cookie", b"uid=short")]),
                            ("/", [(b"Cookie", b"uid=!!!!!!!!!!!!!!!!!!!!!!!!")])]:
        got = responses(diff, target, headers)
        n, g = got["nginx"], got["ngate"]
        assert shape(n) == shape(g), (target, headers)
        assert header(n, b"x-got") == header(g, b"x-got"), (target, headers)
        assert (header(n, b"x-set") == hexed) == (header(g, b"x-set") == hexed), (target, headers)
        if target == "/mark":           # the same identifier, marked
            assert cookie_of(g).startswith("uid=" + value[:22] + "t=;")
        if "reset" in target:           # a new one
            assert header(g, b"x-set") not in (None, hexed)
