"""ngate-only static and rewrite behaviour: the `cors` directive, symlinks that lead out of the
root (followed, as nginx's default), `expires` with a time, rewrite_log lines, and the bundled mime.types fallback."""
import os
import subprocess
import sys

import pytest

from tests.harness.client import request
from tests.harness.processes import REPO_ROOT, ProxyProcess, fresh_prefix, searchable

CONF = """
http {
    include mime.types;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        root {docroot};
        rewrite_log on;
        location /api/ { cors *; return 200 "api\\n"; }
        location /cred/ { cors $http_origin credentials; return 200 "cred\\n"; }
        location /list/ {
            cors https://a.example https://b.example credentials;
            return 200 "list\\n";
        }
        location /one/ { cors https://a.example; return 200 "one\\n"; }
        location /exp/ { alias {docroot}/; expires 1h; }
        location /rw/ { rewrite ^/rw/(.*)$ /$1 break; }
    }
}
"""


@pytest.fixture(scope="module")
def ngate(tmp_path_factory):
    base = tmp_path_factory.mktemp("ngate-static")
    root = base / "root"
    root.mkdir()
    (root / "a.txt").write_bytes(b"inside\n")
    (root / "page.html").write_bytes(b"<p>x</p>\n")
    (base / "secret.txt").write_bytes(b"outside\n")
    os.symlink(base / "secret.txt", root / "escape.txt")
    os.symlink(root / "a.txt", root / "inside.txt")
    searchable(root)            # the workers run as nobody when the tests run as root
    proc = ProxyProcess("ngate", CONF, fresh_prefix(base, "ngate"), docroot=root).start()
    yield proc
    proc.stop()


def test_cors_preflight_is_204_with_headers(ngate):
    r = request(ngate.port, "OPTIONS", "/api/x",
                headers=[(b"Origin", b"http://app.test"),
                         (b"Access-Control-Request-Method", b"PUT"),
                         (b"Access-Control-Request-Headers", b"content-type")])
    assert r.status == 204
    assert r.header("access-control-allow-origin") == b"*"
    assert b"PUT" in r.header("access-control-allow-methods")
    assert r.header("access-control-allow-headers") == b"content-type"


def test_cors_headers_on_ordinary_responses(ngate):
    r = request(ngate.port, "GET", "/api/x", headers=[(b"Origin", b"http://app.test")])
    assert r.status == 200 and r.body == b"api\n"
    assert r.header("access-control-allow-origin") == b"*"
    assert r.header("vary") is None


def test_cors_credentials_reflects_origin(ngate):
    r = request(ngate.port, "GET", "/cred/", headers=[(b"Origin", b"http://app.test")])
    assert r.header("access-control-allow-origin") == b"http://app.test"
    assert r.header("access-control-allow-credentials") == b"true"
    assert r.header("vary") == b"Origin"


@pytest.mark.parametrize("origin", [b"https://a.example", b"https://b.example"])
def test_cors_allow_list_reflects_listed_origins_with_credentials(ngate, origin):
    r = request(ngate.port, "GET", "/list/", headers=[(b"Origin", origin)])
    assert r.status == 200 and r.body == b"list\n"
    assert r.header("access-control-allow-origin") == origin
    assert r.header("access-control-allow-credentials") == b"true"
    assert r.header("vary") == b"Origin"


@pytest.mark.parametrize("origin", [b"https://evil.example", b"https://a.example.evil",
                                    b"null", None])
def test_cors_allow_list_ignores_other_origins(ngate, origin):
    headers = [(b"Origin", origin)] if origin else []
    for method in ("GET", "OPTIONS"):
        r = request(ngate.port, method, "/list/", headers=headers)
        assert r.status == (200 if method == "GET" else 204)
        assert r.header("access-control-allow-origin") is None
        assert r.header("access-control-allow-credentials") is None
        assert r.header("vary") == b"Origin"


def test_cors_single_origin_is_an_allow_list_of_one(ngate):
    r = request(ngate.port, "GET", "/one/", headers=[(b"Origin", b"https://a.example")])
    assert r.header("access-control-allow-origin") == b"https://a.example"
    assert r.header("access-control-allow-credentials") is None
    r = request(ngate.port, "GET", "/one/", headers=[(b"Origin", b"https://b.example")])
    assert r.header("access-control-allow-origin") is None


@pytest.mark.parametrize("line,warned", [
    ("cors * credentials;", True),
    ("cors $http_origin credentials;", True),
    ("cors *;", False),
    ("cors https://a.example https://b.example credentials;", False),
])
def test_reflecting_cors_with_credentials_warns_at_t(tmp_path, line, warned):
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\nhttp {\n  server {\n    listen 127.0.0.1:8080;\n"
                    f"    location / {{\n      {line}\n    }}\n  }}\n}}\n")
    (tmp_path / "logs").mkdir()
    out = subprocess.run([sys.executable, "-m", "ngate", "-t", "-p", str(tmp_path), "-c",
                          str(conf)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=30)
    assert out.returncode == 0, out.stderr
    warn = [l for l in out.stderr.splitlines() if "[warn]" in l]
    if warned:
        assert len(warn) == 1 and warn[0].startswith("ngate: [warn] \"cors ")
        assert warn[0].endswith(f"in {conf}:6") and "list the allowed origins" in warn[0]
    else:
        assert warn == []


@pytest.mark.parametrize("line,error", [
    ("cors https://a.example * credentials;", 'invalid parameter "*"'),
    ("cors https://a.example $http_origin;", 'invalid parameter "$http_origin"'),
    ("cors credentials;", 'invalid number of arguments in "cors" directive'),
])
def test_bad_cors_is_a_config_error(tmp_path, line, error):
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"events {{}}\nhttp {{ server {{ location / {{\n{line}\n}} }} }}\n")
    out = subprocess.run([sys.executable, "-m", "ngate", "-t", "-p", str(tmp_path), "-c",
                          str(conf)], capture_output=True, text=True, cwd=REPO_ROOT, timeout=30)
    assert out.returncode == 1
    assert f"[emerg] {error} in {conf}:3" in out.stderr


def test_symlink_inside_root_is_served(ngate):
    r = request(ngate.port, "GET", "/inside.txt")
    assert r.status == 200 and r.body == b"inside\n"


def test_symlink_out_of_root_is_followed_by_default(ngate):
    """disable_symlinks off, as nginx (tests/differential/test_disable_symlinks.py has the rest)."""
    r = request(ngate.port, "GET", "/escape.txt")
    assert r.status == 200 and r.body == b"outside\n"
    assert "leads out of the document root" not in ngate.error_log()


def test_expires_time_sets_cache_control(ngate):
    r = request(ngate.port, "GET", "/exp/a.txt")
    assert r.header("cache-control") == b"max-age=3600"
    assert r.header("expires") is not None


def test_bundled_mime_types(ngate):
    assert request(ngate.port, "GET", "/page.html").header("content-type") == b"text/html"


def test_rewrite_log_lines(ngate):
    assert request(ngate.port, "GET", "/rw/a.txt").body == b"inside\n"
    log = ngate.error_log()
    assert '[notice]' in log and '"^/rw/(.*)$" matches "/rw/a.txt"' in log
    assert 'rewritten data: "/a.txt", args: ""' in log
