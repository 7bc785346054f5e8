"""index names with variables (evaluated per request; an absolute result redirects at once) and
map values used by them, nginx vs ngate."""
import os

import pytest

from tests.harness.paths import readable_tmpdir

CONF = """
http {
    map $uri $picked { /m/ /m/target; default none; }
    server {
        listen 127.0.0.1:{port};
        server_name localhost;
        root {docroot};
        location /var/ { index $server_name.html; }
        location /abs/ { index /$server_name.html; }
        location /m/ { index $picked; }
        location /m/target { return 200 "target $uri"; }
        location /miss/ { index $arg_x.html; }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    with readable_tmpdir("idx-") as root:
        for d in ("var", "m", "miss"):
            (root / d).mkdir()
        (root / "var" / "localhost.html").write_text("var body")
        (root / "miss" / "a.html").write_text("a body")
        (root / "localhost.html").write_text("top body")
        for p in (root, *root.iterdir()):
            os.chmod(p, os.stat(p).st_mode | 0o055)
        for f in (root / "var" / "localhost.html", root / "miss" / "a.html", root / "localhost.html"):
            os.chmod(f, 0o644)
        yield differential(CONF, backends=(), docroot=str(root))


@pytest.mark.parametrize("target", ["/var/", "/abs/", "/m/", "/miss/?x=a", "/miss/?x=b"])
def test_index_with_variables(diff, target):
    diff.check_request("GET", target, host=b"localhost")
