"""autoindex_format xml | json | jsonp, nginx vs ngate on the same directory; and a listing through
the response filters, as nginx's output filter sends it (gzip, sub_filter, add_trailer, charset
recoding, addition, SSI)."""
import os

import pytest

from tests.harness.paths import readable_tmpdir

CONF = """
http {
    include /etc/nginx/win-utf;
    server {
        listen 127.0.0.1:{port};
        autoindex on;
        location /html/ { alias {docroot}/; }
        location /xml/ { autoindex_format xml; alias {docroot}/; }
        location /json/ { autoindex_format json; alias {docroot}/; }
        location /jsonp/ { autoindex_format jsonp; alias {docroot}/; }
        location /gz/ {
            alias {docroot}/;
            gzip on; gzip_min_length 1; gzip_types application/json; gzip_vary on;
            location /gz/json/ { alias {docroot}/; autoindex_format json; }
        }
        location /sub/ {
            alias {docroot}/;
            sub_filter "file.txt" "FILE"; sub_filter_once off;
            add_trailer X-T "$status $uri";
        }
        location /cs/ {
            alias {docroot}/;
            charset windows-1251; source_charset utf-8;
        }
        location /add/ {
            alias {docroot}/;
            add_before_body /before.html; add_after_body /after.html;
        }
        location /ssi/ { alias {docroot}/; ssi on; }
        location = /before.html { return 200 "BEFORE"; }
        location = /after.html { return 200 "AFTER"; }
    }
}
"""
MTIME = 1_600_000_000


@pytest.fixture(scope="module")
def docroot():
    with readable_tmpdir("ai-") as root:
        (root / "sub").mkdir()
        for name, data in (("file.txt", b"x" * 42), ('q-"-<&>-\'', b""), ("ctl-\x01-\t", b"1"),
                           ("utf8-\u0444\u0444", b"22"), (".hidden", b"h")):
            (root / name).write_bytes(data)
            os.utime(root / name, (MTIME, MTIME))
        (root / "old.txt").write_bytes(b"-100.5 s")     # before the epoch: the epoch's date
        os.utime(root / "old.txt", ns=(-100_500_000_000, -100_500_000_000))
        os.symlink(root / "file.txt", root / "link")
        os.symlink(root / "missing", root / "dangling")
        os.utime(root / "sub", (MTIME, MTIME))
        for d in (root, root / "sub"):
            os.chmod(d, os.stat(d).st_mode | 0o055)
        for f in root.iterdir():
            if f.is_file():
                os.chmod(f, 0o644)
        yield root


@pytest.fixture(scope="module")
def diff(differential, docroot):
    return differential(CONF, backends=(), docroot=str(docroot))


@pytest.mark.parametrize("target", ["/html/", "/xml/", "/json/", "/jsonp/", "/jsonp/?callback=cb.x_1",
                                    "/jsonp/?a=1&CALLBACK=f", "/jsonp/?callback=bad-name",
                                    "/jsonp/?callback=" + "a" * 129])
def test_autoindex_format(diff, target):
    out = diff.check_request("GET", target)
    assert out.response.status in (200, 400)


def test_head(diff):
    diff.check_request("HEAD", "/json/")


FILTERED = ["/gz/", "/gz/json/", "/sub/", "/cs/", "/add/", "/ssi/"]


@pytest.mark.parametrize("target", FILTERED)
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_filtered_listing(diff, target, version):
    out = diff.check_request("GET", target, version=version,
                             headers=[(b"Accept-Encoding", b"gzip")])
    r = out.response
    if target == "/gz/" and version == "HTTP/1.1":
        assert r.header("content-encoding") == b"gzip"
    if target == "/sub/":
        assert b"FILE" in r.body and b"file.txt" not in r.body
    if target == "/add/":
        assert r.body.startswith(b"BEFORE") and r.body.endswith(b"AFTER")


@pytest.mark.parametrize("target", ["/gz/", "/sub/", "/add/"])
def test_filtered_listing_head(diff, target):
    diff.check_request("HEAD", target, headers=[(b"Accept-Encoding", b"gzip")])
