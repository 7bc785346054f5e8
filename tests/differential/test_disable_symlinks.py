"""`disable_symlinks` through nginx and ngate: nginx-tests' http_disable_symlinks.t ported (it skips
itself as root for want of a file of another owner; here the fixture makes one), plus the case a
user hit: a directory linked into the web root from outside it (`html/dokuwiki ->
/usr/share/dokuwiki`) is served under the default `off`.

Compared: the client's view, and the error-log line each program writes for a refused symlink.
"""
import os
import re

import pytest

from tests.harness.client import build_request, exchange
from tests.harness.differential import config_test_said

MTIME = 1577934245
OTHER_UID = 65534           # nobody: the owner of the "external" file

CONF = """
http {
    default_type text/plain;
    server {
        listen 127.0.0.1:{port};
        server_name s1;
        root {docroot}/www;

        location /on/ { disable_symlinks on; }
        location /not_owner/ { disable_symlinks if_not_owner; }
        location /try_on/ { disable_symlinks on; try_files $uri $uri.html =404; }
        location /try_not_owner/ { disable_symlinks if_not_owner; try_files $uri $uri.txt =404; }
        location /if_on/ {
            disable_symlinks on;
            if (-f $request_filename) { return 204; }
        }
        location /if_not_owner/ {
            disable_symlinks if_not_owner;
            if (-f $request_filename) { return 204; }
        }
        location /complex/1/ { disable_symlinks on; alias {docroot}/www/./cached/../; }
        location /complex/2/ { disable_symlinks on; alias {docroot}/www//./cached/..//; }
        location ~ (.+/)tail$ { disable_symlinks on; alias {docroot}/www/$1; }
        location ~ (.+/)tailowner$ { disable_symlinks if_not_owner; alias {docroot}/www/$1; }
        location ~ (.+/)tailoff$ { disable_symlinks off; alias {docroot}/www/$1; }
        location /dir { disable_symlinks on; try_files $uri/ =404; }
        location /from {
            disable_symlinks on from=$document_root;
            location /from/wo_slash { alias {docroot}/www/dirlink; }
            location /from/with_slash/ { alias {docroot}/www/dirlink/; }
            location ~ ^/from/exact/(.+)$ { alias {docroot}/www/$1; }
        }
        location /linked-root/ {
            disable_symlinks on from=$document_root;
            alias {docroot}/www/dirlink/;
        }
        location /linked-root-all/ {
            disable_symlinks on;
            alias {docroot}/www/dirlink/;
        }
        location /idx-on/ { disable_symlinks on; alias {docroot}/www/idx/; }
        location /nested-off/ {
            disable_symlinks on;
            location /nested-off/x/ { disable_symlinks off; alias {docroot}/www/on/; }
        }
    }
}
"""


def _write(path, data=b""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (MTIME, MTIME))
    os.chmod(path, 0o644)


@pytest.fixture(scope="module")
def docroot(tmp_path_factory):
    base = tmp_path_factory.mktemp("symlinks")
    www = base / "www"
    ext = base / "external.txt"             # outside the root, another owner
    _write(ext, b"external\n")
    os.chown(ext, OTHER_UID, OTHER_UID)
    app = base / "share" / "app"            # a packaged app outside the root
    _write(app / "images" / "logo.png", b"PNG\n")
    _write(www / "empty.html")
    os.symlink("empty.html", www / "link")
    os.symlink(ext, www / "link2")
    os.symlink(app, www / "app")
    for d in ("on", "not_owner", "if_on", "if_not_owner"):
        _write(www / d / "empty.html")
        os.symlink("empty.html", www / d / "link")
        os.symlink(ext, www / d / "link2")
    _write(www / "try_on" / "try.html", b"LOCAL TRY")
    os.symlink(ext, www / "try_on" / "try")
    _write(www / "try_not_owner" / "try.html", b"LOCAL TRY")
    os.symlink(ext, www / "try_not_owner" / "try")
    os.symlink("try.html", www / "try_not_owner" / "try.txt")
    (www / "cached").mkdir()
    _write(www / "dir" / "empty.html", b"in dir\n")
    os.symlink("dir", www / "dirlink")
    _write(www / "idx" / "real.html", b"index\n")
    os.symlink("real.html", www / "idx" / "index.html")
    for p in [base, *base.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            os.chmod(p, 0o755)
    for p in base.parents:      # nginx's workers run as nobody: the path must be searchable
        if str(p).startswith("/tmp/"):
            os.chmod(p, os.stat(p).st_mode | 0o055)
    return base


@pytest.fixture(scope="module")
def diff(differential, docroot):
    return differential(CONF, backends=(), docroot=docroot)


def _get(host, target):
    return lambda port: exchange(port, build_request("GET", target, host=host))


CASES = [
    ("/link", 200), ("/link2", 200), ("/app/images/logo.png", 200),
    ("/on/link", 403), ("/on/link2", 403), ("/on/empty.html", 200),
    ("/not_owner/link", 200), ("/not_owner/link2", 403),
    ("/try_on/try", 200), ("/try_not_owner/try", 200),
    ("/if_on/link", 403), ("/if_on/link2", 403),
    ("/if_not_owner/link", 204), ("/if_not_owner/link2", 403),
    ("/complex/1/empty.html", 200), ("/complex/2/empty.html", 200),
    ("/link/tail", 404), ("/link/tailowner", 404), ("/link/tailoff", 404),
    ("/dirlink", 404), ("/dirlink/", 404),
    ("/from/wo_slash/empty.html", 200), ("/from/with_slash/empty.html", 200),
    ("/from/exact/link", 200),
    ("/linked-root/empty.html", 200), ("/linked-root-all/empty.html", 404),
    ("/idx-on/", 403), ("/nested-off/x/link2", 200),
]


@pytest.mark.parametrize("target,status", CASES)
def test_symlinks(diff, target, status):
    outcome = diff.check(_get(b"s1", target))
    assert outcome.response.status == status


@pytest.mark.parametrize("target,line", [
    ("/on/link2", '[error] {pid}: *{n} openat() "{www}/on/link2" failed (40: Too many levels'),
    ("/not_owner/link2",
     '[error] {pid}: *{n} openat() "{www}/not_owner/link2" failed (40: Too many levels'),
    ("/try_on/try", '[crit] {pid}: *{n} openat() "{www}/try_on/try" failed (40: Too many levels'),
])
def test_refusal_is_logged_as_nginx_does(diff, docroot, target, line):
    for kind in diff.procs:
        log = diff.run(kind, _get(b"s1", target)).error_log
        log = re.sub(r"\] \d+#\d+: \*\d+ ", "] {pid}: *{n} ", log)
        assert line.replace("{www}", str(docroot / "www")) in log, (kind, log)


def test_default_follows_a_link_out_of_the_root(diff):
    """The report: a Debian-packaged app linked into the root lost its images under ngate."""
    r = diff.check(_get(b"s1", "/app/images/logo.png")).response
    assert r.status == 200 and r.body == b"PNG\n"


@pytest.mark.parametrize("line", [
    "disable_symlinks foo;", "disable_symlinks from=/x;", "disable_symlinks off from=/x;",
    "disable_symlinks on off;", "disable_symlinks on; disable_symlinks off;",
    "if ($uri) { disable_symlinks on; }", "disable_symlinks on from=/a from=/b;",
    "disable_symlinks if_not_owner from=$document_root;",
])
def test_config_errors_as_nginx(tmp_path, line):
    said = config_test_said(tmp_path, f"server {{ location / {{\n{line}\n}} }}")
    assert said["ngate"] == said["nginx"]
