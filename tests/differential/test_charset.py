"""charset / charset_types (the header part of nginx's charset filter): `; charset=` added to the
Content-Type of static files, autoindex listings, `return` texts, status pages and proxied
responses whose type is listed and names no charset; none on 301/302; `charset off` below."""
import os

import pytest

from tests.harness.backend import Reply
from tests.harness.processes import searchable

CONF = """
http {
    include /etc/nginx/mime.types;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        root {docroot};
        charset utf-8;

        location /off/ { alias {docroot}/; charset off; }
        location /any/ { alias {docroot}/; charset koi8-r; charset_types *; }
        location /css/ { alias {docroot}/; charset_types text/css; }
        location /list/ { alias {docroot}/; autoindex on; }
        location = /text { return 200 "text\\n"; }
        location = /moved { return 301 /a.html; }
        location = /found { return 302 /a.html; }
        location = /other { return 303 /a.html; }
        location = /gone { return 410; }
        location /up/ { proxy_pass http://127.0.0.1:{backend_port}; }
    }
}
"""


@pytest.fixture(scope="module")
def docroot(tmp_path_factory):
    root = tmp_path_factory.mktemp("charset")
    for name, data in (("a.html", b"<p>a</p>\n"), ("a.txt", b"a\n"), ("a.css", b"p{}\n"),
                       ("a.png", b"\x89PNG\r\n")):
        (root / name).write_bytes(data)
        os.chmod(root / name, 0o644)
    searchable(root)
    return root


@pytest.fixture(scope="module")
def diff(differential, docroot):
    d = differential(CONF, docroot=docroot)
    d.backend.route("/up/html", Reply(headers=[(b"Content-Type", b"text/html")], body=b"x"))
    d.backend.route("/up/named", Reply(headers=[(b"Content-Type", b"text/html; charset=latin1")],
                                       body=b"x"))
    d.backend.route("/up/json", Reply(headers=[(b"Content-Type", b"application/json")],
                                      body=b"{}"))
    return d


@pytest.mark.parametrize("target", [
    "/a.html", "/a.txt", "/a.css", "/a.png", "/nope", "/off/a.html", "/any/a.png", "/css/a.css",
    "/css/a.html", "/list/", "/text", "/moved", "/found", "/other", "/gone", "/up/html",
    "/up/named", "/up/json",
])
def test_charset(diff, target):
    diff.check_request("GET", target)


def test_ranges_carry_the_charset(diff):
    diff.check_request("GET", "/a.html", headers=[(b"Range", b"bytes=0-1,3-4")])
