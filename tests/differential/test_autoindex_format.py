"""autoindex_format xml | json | jsonp, nginx vs ngate on the same directory."""
import os

import pytest

from tests.harness.paths import readable_tmpdir

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        autoindex on;
        location /html/ { alias {docroot}/; }
        location /xml/ { autoindex_format xml; alias {docroot}/; }
        location /json/ { autoindex_format json; alias {docroot}/; }
        location /jsonp/ { autoindex_format jsonp; alias {docroot}/; }
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
