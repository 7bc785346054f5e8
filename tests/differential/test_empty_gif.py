"""empty_gif, nginx vs ngate: the GIF, its headers, HEAD, 405 for other methods, and a nested
location that does not inherit the handler."""
import pytest

from tests.harness.paths import readable_tmpdir

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        location /gif { empty_gif;
            location /gif/nested { return 200 "nested"; } }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF, backends=())


@pytest.mark.parametrize("method,target", [("GET", "/gif"), ("HEAD", "/gif"), ("PUT", "/gif"),
                                           ("GET", "/gif/nested")])
def test_empty_gif(diff, method, target):
    out = diff.check_request(method, target, body=b"" if method == "PUT" else None)
    assert out.response.status in (200, 405)


RANDOM_CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        root {docroot};
        location / { random_index on; }
    }
}
"""


@pytest.fixture(scope="module")
def random_diff(differential):
    import os
    with readable_tmpdir("ri-") as root:
        (root / "one").mkdir()
        (root / "one" / "only.txt").write_text("RIGHT")
        (root / "one" / ".hidden").write_text("WRONG")
        (root / "one" / "sub").mkdir()
        (root / "empty").mkdir()
        (root / "empty" / "index.html").mkdir()          # no regular file: the index module's turn
        for d in (root, root / "one", root / "one" / "sub", root / "empty"):
            os.chmod(d, os.stat(d).st_mode | 0o055)
        os.chmod(root / "one" / "only.txt", 0o644)
        yield differential(RANDOM_CONF, backends=(), docroot=str(root))


@pytest.mark.parametrize("target", ["/one/", "/one/?a=b", "/empty/", "/missing/"])
def test_random_index(random_diff, target):
    random_diff.check_request("GET", target)
