"""secure_link, secure_link_md5, secure_link_secret and $secure_link / $secure_link_expires,
nginx vs ngate on the same config and links."""
import base64
import hashlib
import time

import pytest

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        location /new/ {
            secure_link $arg_h,$arg_e;
            secure_link_md5 "secret$uri$arg_e";
            return 200 "[$secure_link][$secure_link_expires]";
        }
        location /plain/ {
            secure_link $arg_h;
            secure_link_md5 secret$uri;
            return 200 "[$secure_link][$secure_link_expires]";
        }
        location /p/ {
            secure_link_secret word;
            return 200 "[$secure_link]";
            location /p/in/ { secure_link $arg_h; secure_link_md5 x; return 200 "[$secure_link]"; }
        }
        location /none/ { return 200 "[$secure_link][$secure_link_expires]"; }
    }
}
"""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF, backends=())


def targets():
    future, past = int(time.time()) + 86400, int(time.time()) - 86400
    good = b64(hashlib.md5(b"secret/plain/a").digest())
    out = [f"/plain/a?h={good}", f"/plain/a?h={good}==", f"/plain/a?h={good}QQ",
           f"/plain/a?h={good}-TOOLONG", "/plain/a?h=BADHASHLENGTH", "/plain/a", "/plain/b?h=" + good,
           "/none/x", "/p/" + hashlib.md5(b"f.txtword").hexdigest() + "/f.txt",
           "/p/" + "x" * 32 + "/f.txt", "/p/short/f.txt", "/p%2f", "/p/in/x?h=" +
           b64(hashlib.md5(b"x").digest())]
    for e in (future, past, 0):
        h = b64(hashlib.md5(f"secret/new/a{e}".encode()).digest())
        out.append(f"/new/a?h={h}&e={e}")
    return out


def test_secure_link(diff):
    for target in targets():
        diff.check_request("GET", target)
