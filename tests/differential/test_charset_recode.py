"""charset recoding (source_charset, override_charset, charset_map, `charset $var`) against
nginx with Debian's koi-utf, koi-win and win-utf maps: bodies byte-equal for static files,
`return` texts and proxied responses (whole and chunked in pieces that split UTF-8 sequences),
Content-Type and Content-Length as nginx sends them."""
import os

import pytest

from tests.harness.backend import Reply
from tests.harness.processes import searchable

CONF = """
http {
    include /etc/nginx/mime.types;
    include /etc/nginx/koi-utf;
    include /etc/nginx/koi-win;
    include /etc/nginx/win-utf;
    charset_map iso-8859-5 koi8-r { B0 E1; E1 B0; 41 42; }
    map $arg_cs $cs { default utf-8; w windows-1251; k koi8-r; x nomap; }
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        root {docroot};

        location /k2u/ { alias {docroot}/; source_charset koi8-r; charset utf-8; }
        location /u2k/ { alias {docroot}/; source_charset utf-8; charset koi8-r; }
        location /u2w/ { alias {docroot}/; source_charset utf-8; charset windows-1251; }
        location /w2u/ { alias {docroot}/; source_charset windows-1251; charset utf-8; }
        location /k2w/ { alias {docroot}/; source_charset koi8-r; charset windows-1251; }
        location /w2k/ { alias {docroot}/; source_charset windows-1251; charset koi8-r; }
        location /i2k/ { alias {docroot}/; source_charset iso-8859-5; charset koi8-r; }
        location /same/ { alias {docroot}/; source_charset utf-8; charset UTF-8; }
        location /var/ { alias {docroot}/; source_charset utf-8; charset $cs; }
        location = /ret { source_charset utf-8; charset koi8-r;
                          return 200 "\xd0\x9f\xd1\x80\xd0\xb8 \xe2\x82\xac \xf0\x9f\x98\x80\n"; }
        location /up/ { proxy_pass http://127.0.0.1:{backend_port}; source_charset utf-8;
                        charset koi8-r; }
        location /over/ { proxy_pass http://127.0.0.1:{backend_port}/up/; charset koi8-r;
                          override_charset on; }
        location /keep/ { proxy_pass http://127.0.0.1:{backend_port}/up/; charset koi8-r;
                          source_charset utf-8; }
    }
}
"""

UTF8 = ("Привет, мир! Ёё €„“ ÿ ∞ 😀 x\n".encode() + b"bad: \xc0\xaf \xe0\x41 \xff \xed\xa0\x80 "
        + b"\xf4\x90\x80\x80 end\n")
KOI = "Привет, мир! Ёё ╔═╗ x\n".encode("koi8-r") + bytes(range(0x80, 0x100)) + b"\n"
WIN = "Привет, мир! Ёё €„“ x\n".encode("cp1251") + bytes(range(0x80, 0x100)) + b"\n"


@pytest.fixture(scope="module")
def docroot(tmp_path_factory):
    root = tmp_path_factory.mktemp("recode")
    for name, data in (("u.html", UTF8), ("k.html", KOI), ("w.txt", WIN), ("w.css", WIN),
                       ("empty.html", b"")):
        (root / name).write_bytes(data)
        os.chmod(root / name, 0o644)
    searchable(root)
    return root


def _pieces(data: bytes, n: int) -> list:
    return [data[i:i + n] for i in range(0, len(data), n)]


@pytest.fixture(scope="module")
def diff(differential, docroot):
    d = differential(CONF, docroot=docroot)
    html = [(b"Content-Type", b"text/html")]
    d.backend.route("/up/u", Reply(headers=html, body=UTF8))
    for n in (1, 2, 3, 5):
        d.backend.route(f"/up/c{n}", Reply(headers=html, chunks=_pieces(UTF8, n)))
    d.backend.route("/up/named-k", Reply(headers=[(b"Content-Type",
                                                    b"text/html; charset=KOI8-R")], body=KOI))
    d.backend.route("/up/named-w", Reply(headers=[(b"Content-Type",
                                                    b'text/html; charset="windows-1251"')],
                                         body=WIN))
    d.backend.route("/up/named-x", Reply(headers=[(b"Content-Type",
                                                    b"text/html; charset=latin1")], body=WIN))
    d.backend.route("/up/json", Reply(headers=[(b"Content-Type", b"application/json")],
                                      body=UTF8))
    d.backend.route("/up/gz", Reply(headers=html + [(b"Content-Encoding", b"gzip")], body=UTF8))
    return d


@pytest.mark.parametrize("target", [
    "/k2u/k.html", "/u2k/u.html", "/u2w/u.html", "/w2u/w.txt", "/w2u/w.css", "/k2w/k.html",
    "/w2k/w.txt", "/i2k/k.html", "/same/u.html", "/u2k/empty.html", "/u2k/nope",
    "/var/u.html", "/var/u.html?cs=w", "/var/u.html?cs=k", "/var/u.html?cs=x", "/ret",
    "/up/u", "/up/c1", "/up/c2", "/up/c3", "/up/c5", "/up/json", "/up/gz",
    "/over/named-k", "/over/named-w", "/over/named-x", "/over/u",
    "/keep/named-k", "/keep/named-w",
])
def test_recode(diff, target):
    diff.check_request("GET", target)


def test_recode_head_and_http10(diff):
    diff.check_request("HEAD", "/k2u/k.html")
    diff.check_request("GET", "/u2k/u.html", version="HTTP/1.0")


@pytest.mark.parametrize("http", [
    "charset_map koi8-r utf-8 { C0 D18E; } charset_map KOI8-R UTF-8 { }",
    "charset_map utf-8 koi8-r { }",     # nginx 1.22 accepts it
    "charset_map koi8-r KOI8-R { }",
    "charset_map koi8-r windows-1251 { 100 41; }",
    "charset_map koi8-r windows-1251 { C0 G1; }",
    "charset_map koi8-r windows-1251 { C0 C1 C2; }",
    "charset_map koi8-r utf-8 { C0 D18E8080; }",
    "charset_map koi8-r utf-8 { C0 C0; }",
    "charset_map koi8-r utf-8 { C0 F09F9880; }",
    "server { location / { source_charset koi8-r; charset windows-1251; } }",
    "charset_map koi8-r windows-1251 { } server { location / { source_charset windows-1251;"
    " charset koi8-r; } }",
    "server { charset utf-8; location / { source_charset utf-8; } }",
    "server { override_charset maybe; }",
])
def test_config_errors_as_nginx(tmp_path, http):
    """nginx's [emerg] for charset_map, source_charset and override_charset, word for word."""
    from tests.harness.differential import config_test_said
    said = config_test_said(tmp_path, http)
    assert said["ngate"] == said["nginx"]
