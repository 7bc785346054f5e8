"""open_file_cache through nginx and ngate: what a file changed, replaced or removed between
requests looks like while its entry is valid (the kept descriptor and stat result answer), with
open_file_cache_valid 0 (every request revalidates: stat by name, the descriptor kept while the
inode is the same), open_file_cache_min_uses (a file used fewer times is opened per request),
open_file_cache_errors (a failed open is remembered), a directory, and `off` in a location.

Each scenario writes its own files under the shared docroot at the start of its script, so the
program that runs it second starts from the same state (a new inode) as the first did."""
import os
import re

import pytest

from tests.harness.client import request
from tests.harness.differential import config_test_said
from tests.harness.paths import readable_tmpdir

MTIME = 1577934245          # 2020-01-02 03:04:05 UTC

CONF = """
http {
    default_type text/plain;
    open_file_cache max=8 inactive=60s;
    open_file_cache_valid 60s;
    server {
        listen 127.0.0.1:{port};
        root {docroot};
        location /errors/ { open_file_cache_errors on; }
        location /valid0/ { open_file_cache_valid 0; }
        location /uses/ { open_file_cache_min_uses 2; }
        location /off/ { open_file_cache off; }
        location /cond/ { add_header X-C 1; }
    }
}
"""


def _put(path, data: bytes, mtime: int = MTIME) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o755)
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.utime(tmp, (mtime, mtime))
    os.replace(tmp, path)           # a new inode


def _rewrite(path, data: bytes, mtime: int) -> None:
    """The same inode, new bytes and mtime."""
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()
    os.utime(path, (mtime, mtime))


@pytest.fixture(scope="module")
def docroot():
    with readable_tmpdir("ofc-") as root:
        yield root


@pytest.fixture(scope="module")
def diff(differential, docroot):
    return differential(CONF, backends=(), docroot=docroot)


@pytest.mark.parametrize("loc", ["", "/valid0", "/uses", "/off", "/cond"])
def test_changed_replaced_removed(diff, docroot, loc):
    def script(port):
        f = docroot / loc.lstrip("/") / "f.txt"
        _put(f, b"first\n")
        out = [request(port, "GET", f"{loc}/f.txt")]
        _rewrite(f, b"second, longer\n", MTIME + 10)
        out.append(request(port, "GET", f"{loc}/f.txt"))
        out.append(request(port, "HEAD", f"{loc}/f.txt"))
        _rewrite(f, b"third, longer still\n", MTIME + 20)
        out.append(request(port, "GET", f"{loc}/f.txt"))
        _put(f, b"replaced\n", MTIME + 30)
        out.append(request(port, "GET", f"{loc}/f.txt"))
        f.unlink()
        out.append(request(port, "GET", f"{loc}/f.txt"))
        _put(f, b"back\n", MTIME + 40)
        out.append(request(port, "GET", f"{loc}/f.txt"))
        return out
    diff.check(script)


@pytest.mark.parametrize("loc", ["", "/errors", "/valid0"])
def test_missing_then_created(diff, docroot, loc):
    def script(port):
        f = docroot / loc.lstrip("/") / "m.txt"
        if f.exists():
            f.unlink()
        out = [request(port, "GET", f"{loc}/m.txt")]
        _put(f, b"now here\n")
        out.append(request(port, "GET", f"{loc}/m.txt"))
        f.unlink()
        out.append(request(port, "GET", f"{loc}/m.txt"))
        return out
    diff.check(script)


@pytest.mark.parametrize("loc", ["", "/valid0"])
def test_directory_then_file(diff, docroot, loc):
    def script(port):
        d = docroot / loc.lstrip("/") / "d"
        if d.is_file():
            d.unlink()
        d.mkdir(parents=True, exist_ok=True)
        out = [request(port, "GET", f"{loc}/d"), request(port, "GET", f"{loc}/d?a=1")]
        d.rmdir()
        _put(d, b"a file now\n")
        out.append(request(port, "GET", f"{loc}/d"))
        d.unlink()
        out.append(request(port, "GET", f"{loc}/d"))
        return out
    diff.check(script)


def test_conditional_and_range_on_a_kept_file(diff, docroot):
    def script(port):
        f = docroot / "cond" / "g.txt"
        _put(f, b"0123456789")
        out = [request(port, "GET", "/cond/g.txt")]
        _rewrite(f, b"abcdefghijklmnop", MTIME + 5)
        out.append(request(port, "GET", "/cond/g.txt", headers=[(b"Range", b"bytes=2-4")]))
        out.append(request(port, "GET", "/cond/g.txt",
                           headers=[(b"If-Modified-Since", b"Thu, 02 Jan 2020 03:04:05 GMT")]))
        out.append(request(port, "POST", "/cond/g.txt", body=b"x"))
        return out
    diff.check(script)


def test_removed_file_logged_as_nginx_does(diff, docroot):
    """Revalidating a kept descriptor stats the path first: a removed file is nginx's
    `stat() ... failed` (open_file_cache_valid 0), a remembered error its `open()`."""
    def script(port):
        f = docroot / "valid0" / "gone.txt"
        _put(f, b"here\n")
        request(port, "GET", "/valid0/gone.txt")
        f.unlink()
        g = docroot / "errors" / "never.txt"
        if g.exists():
            g.unlink()
        return [request(port, "GET", "/valid0/gone.txt"), request(port, "GET", "/errors/never.txt"),
                request(port, "GET", "/errors/never.txt")]
    for kind in diff.procs:
        out = diff.run(kind, script)
        assert [r.status for r in out.result] == [404, 404, 404]
        log = re.sub(r"\] \d+#\d+: \*\d+ ", "] {pid}: *{n} ", out.error_log)
        www = str(docroot)
        assert (f'[error] {{pid}}: *{{n}} stat() "{www}/valid0/gone.txt" failed (2: No such file '
                'or directory)') in log, (kind, log)
        assert log.count(f'open() "{www}/errors/never.txt" failed (2: No such file or '
                         'directory)') == 2, (kind, log)


@pytest.mark.parametrize("line", [
    "open_file_cache max=10;", "open_file_cache max=10 inactive=20s;", "open_file_cache off;",
    "open_file_cache;", "open_file_cache inactive=10s;", "open_file_cache max=0;",
    "open_file_cache max=-1;", "open_file_cache max=x;", "open_file_cache max=1 inactive=5ms;",
    "open_file_cache max=1 inactive=x;", "open_file_cache foo;", "open_file_cache off max=x;",
    "open_file_cache max=1 off;", "open_file_cache max=1 inactive=1s off;",
    "open_file_cache max=1; open_file_cache off;", "open_file_cache_valid 10ms;",
    "open_file_cache_valid x;", "open_file_cache_valid 1m; open_file_cache_valid 1m;",
    "open_file_cache_min_uses x;", "open_file_cache_min_uses 0;", "open_file_cache_errors x;",
    "open_file_cache_errors on;", "if ($uri) { open_file_cache off; }",
])
def test_config_errors_as_nginx(tmp_path, line):
    said = config_test_said(tmp_path, f"server {{ location / {{\n{line}\n}} }}")
    assert said["ngate"] == said["nginx"]
