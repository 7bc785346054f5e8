"""try_files with a directory entry (nginx drops the slash: a found directory ends in the 301),
under an alias in a regex location (alias + $uri) and under a parent's alias in a nested regex
location, nginx vs ngate."""
import os

import pytest

from tests.harness.paths import readable_tmpdir

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        root {docroot};
        location /file-dir/ { try_files /found.html/ =404; }
        location /dir-dir/ { try_files /directory/ =404; }
        location /dir-file/ { try_files /directory =404; }
        location ~ /alias-re.html { alias {docroot}/directory; try_files $uri =404; }
        location /alias-nested/ {
            alias {docroot}/;
            location ~ html { try_files $uri =404; }
        }
        location /alias-prefix/ { alias {docroot}/directory/; try_files $uri $uri/ =404; }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    with readable_tmpdir("tf-") as root:
        (root / "directory").mkdir()
        (root / "directory" / "alias-re.html").write_text("SEE THIS")
        (root / "found.html").write_text("FOUND")
        for p in (root, root / "directory"):
            os.chmod(p, os.stat(p).st_mode | 0o055)
        for f in (root / "directory" / "alias-re.html", root / "found.html"):
            os.chmod(f, 0o644)
        yield differential(CONF, backends=(), docroot=str(root))


@pytest.mark.parametrize("target", ["/file-dir/", "/dir-dir/", "/dir-file/", "/alias-re.html",
                                    "/alias-nested/found.html", "/alias-nested/missing.html",
                                    "/alias-prefix/alias-re.html", "/alias-prefix/"])
def test_try_files(diff, target):
    diff.check_request("GET", target)
