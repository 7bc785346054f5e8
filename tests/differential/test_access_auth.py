"""The access phase through nginx and ngate: allow/deny, auth_basic (every password format
Debian's nginx accepts, malformed credentials, the user file's name from variables, a missing
file), satisfy any/all, limit_except (GET implies HEAD, the block replaces the location's
configuration for other methods), $remote_user, error_page 401."""
import base64
import os
import subprocess

import pytest

from tests.harness.client import build_request
from tests.harness.differential import Differential
from tests.harness.paths import readable_tmpdir

# made with the system's crypt(3) (python's crypt module) once: bcrypt and yescrypt salts
BCRYPT_2B = "$2b$05$abcdefghijklmnopqrstuufhXdHJtkiUiNQ6n8/s9Kw6bfnPI6Ytq"     # bcrypt-pw
BCRYPT_2Y = "$2y$05$abcdefghijklmnopqrstuufhXdHJtkiUiNQ6n8/s9Kw6bfnPI6Ytq"     # bcrypt-pw
YESCRYPT = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$1wzOs3/VG1PFk7e.acZzQ8bFIpJbyqGqqlctCMUihbC"  # yes-pw
DES = "abHmYwzWPQJxg"                                                          # des-pw

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        root {docroot};

        location / {
            auth_basic "closed site $host";
            auth_basic_user_file {docroot}/../htpasswd;
            add_header X-User "[$remote_user]" always;

            location /open/ { auth_basic off; }
            location /var/ { auth_basic_user_file $arg_f; }
        }
        location /relative/ { auth_basic "rel"; auth_basic_user_file htpasswd-rel; }
        location /missing/ { auth_basic "m"; auth_basic_user_file {docroot}/nothere; }
        location /dirfile/ { auth_basic "d"; auth_basic_user_file {docroot}; }
        location /realm-only/ { auth_basic "r"; }
        location /realm-var/ {
            auth_basic $arg_realm;
            auth_basic_user_file {docroot}/../htpasswd;
        }

        location /deny/ { deny all; }
        location /allow/ { allow 127.0.0.1; deny all; }
        location /deny-other/ { deny 10.0.0.0/8; allow ::1; deny all; }

        location /any-allowed/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            auth_basic "any"; auth_basic_user_file {docroot}/../htpasswd;
        }
        location /any-denied/ {
            satisfy any;
            deny all;
            auth_basic "any"; auth_basic_user_file {docroot}/../htpasswd;
        }
        location /any-missing/ {
            satisfy any;
            deny all;
            auth_basic "any"; auth_basic_user_file {docroot}/nothere;
        }
        location /all-allowed/ {
            allow 127.0.0.1;
            auth_basic "all"; auth_basic_user_file {docroot}/../htpasswd;
        }

        location /le/ { limit_except GET { deny all; } }
        location /le-post/ { limit_except POST PUT { deny all; } }
        location /le-auth/ {
            limit_except GET {
                auth_basic "writers";
                auth_basic_user_file {docroot}/../htpasswd;
            }
            error_page 405 =200 /le/index.html;
        }
        location /le-return/ {
            limit_except GET { allow all; }
            return 200 "location's return\\n";
        }

        location /ep401/ {
            auth_basic "ep"; auth_basic_user_file {docroot}/../htpasswd;
            error_page 401 /denied.html;
        }
        location = /denied.html { auth_basic off; }
    }
}
"""

USERS = [
    ("plain", "{PLAIN}plain-pw", "plain-pw"),
    ("sha", "{SHA}" + base64.b64encode(__import__("hashlib").sha1(b"sha-pw").digest()).decode(),
     "sha-pw"),
    ("ssha", "{SSHA}yI6cZwQadOA1e+/f+T+H3eCQQhRzYWx0", "password"),
    ("bcrypt2b", BCRYPT_2B, "bcrypt-pw"),
    ("bcrypt2y", BCRYPT_2Y, "bcrypt-pw"),
    ("yescrypt", YESCRYPT, "yes-pw"),
    ("des", DES, "des-pw"),
]
OPENSSL = [("md5", "-1", "md5-pw"), ("sha256", "-5", "sha256-pw"), ("sha512", "-6", "sha512-pw"),
           ("apr1", "-apr1", "apr1-pw")]


def openssl_passwd(flag: str, password: str) -> str:
    out = subprocess.run(["openssl", "passwd", flag, password], capture_output=True, check=True)
    return out.stdout.decode().strip()


def htpasswd_text() -> str:
    lines = ["# a comment", "", "broken:{SSHA}Zm9vCg==", "trailing:{PLAIN}tpw:comment field"]
    lines += [f"{user}:{stored}" for user, stored, _ in USERS]
    lines += [f"{user}:{openssl_passwd(flag, pw)}" for user, flag, pw in OPENSSL]
    lines += ["dup:{PLAIN}first", "dup:{PLAIN}second", "crlf:{PLAIN}crlf-pw\r", "last:{PLAIN}eof"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def diff():
    with readable_tmpdir("ngate-auth-") as base:
        docroot = base / "html"
        for d in ("", "open", "var", "relative", "missing", "dirfile", "realm-only", "realm-var",
                  "deny", "allow", "deny-other", "any-allowed", "any-denied", "any-missing",
                  "all-allowed", "le", "le-post", "le-auth", "le-return", "ep401"):
            (docroot / d).mkdir(parents=True, exist_ok=True)
            (docroot / d / "index.html").write_text(f"page {d or 'root'}\n")
        (docroot / "denied.html").write_text("denied page\n")
        (base / "htpasswd").write_text(htpasswd_text())
        (base / "diff").mkdir()
        d = Differential(CONF, base / "diff", docroot=docroot)
        try:
            d.start()
            for proc in d.procs.values():       # the config's directory is each program's prefix
                (proc.prefix / "htpasswd-rel").write_text("rel:{PLAIN}rel-pw\n")
            readable(base)
            yield d
        finally:
            d.stop()


def readable(top) -> None:
    """nginx's workers run as nobody: files readable, directories searchable."""
    for path in [top, *top.rglob("*")]:
        if path.is_dir() or path.name.startswith("htpasswd") or path.suffix == ".html":
            os.chmod(path, 0o755 if path.is_dir() else 0o644)


def basic(user: str, password: str) -> tuple[bytes, bytes]:
    return (b"Authorization", b"Basic " + base64.b64encode(f"{user}:{password}".encode()))


def check(diff, target, method="GET", headers=(), body=None):
    return diff.check_raw(build_request(method, target, headers=list(headers), body=body),
                          method=method)


def test_no_credentials_gets_401_with_realm(diff):
    r = check(diff, "/").response
    assert r.status == 401
    assert r.header("www-authenticate") == b'Basic realm="closed site example.test"'


@pytest.mark.parametrize("user,password", [(u, p) for u, _, p in USERS]
                         + [(u, p) for u, _, p in OPENSSL]
                         + [("trailing", "tpw"), ("dup", "first"), ("crlf", "crlf-pw"),
                            ("last", "eof")])
def test_each_password_format(diff, user, password):
    assert check(diff, "/", headers=[basic(user, password)]).response.status == 200
    assert check(diff, "/", headers=[basic(user, password + "x")]).response.status == 401


@pytest.mark.parametrize("auth", [
    b"Basic", b"Basic ", b"Basic !!!!", b"Bearer abc", b"basic " + base64.b64encode(b"plain:plain-pw"),
    b"BASIC    " + base64.b64encode(b"plain:plain-pw"), b"Basic " + base64.b64encode(b"plainplain-pw"),
    b"Basic " + base64.b64encode(b":plain-pw"), b"Basic cGxhaW46cGxhaW4tcHc",
    b"Basic cGxhaW46cGxhaW4tcHc=garbage", b"Basic " + base64.b64encode(b"dup:second"),
    b"Basic " + base64.b64encode(b"broken:1"), b"Basic " + base64.b64encode(b"nobody:1"),
    b"Basic " + base64.b64encode(b"# a comment:x"), b"Basic " + base64.b64encode(b"plain:plain-pw\0x"),
])
def test_malformed_and_unknown_credentials(diff, auth):
    check(diff, "/", headers=[(b"Authorization", auth)])


def test_auth_basic_off_and_user_file_from_variables(diff):
    assert check(diff, "/open/").response.status == 200
    # relative to the config's directory
    assert check(diff, "/var/?f=htpasswd-rel", headers=[basic("rel", "rel-pw")]).response.status \
        == 200
    check(diff, "/var/?f=nothere", headers=[basic("plain", "plain-pw")])
    check(diff, "/var/", headers=[basic("plain", "plain-pw")])
    assert check(diff, "/relative/", headers=[basic("rel", "rel-pw")]).response.status == 200


def test_user_file_problems(diff):
    assert check(diff, "/missing/", headers=[basic("plain", "plain-pw")]).response.status == 403
    assert check(diff, "/missing/").response.status == 401
    assert check(diff, "/dirfile/", headers=[basic("plain", "plain-pw")]).response.status == 500
    assert check(diff, "/realm-only/").response.status == 200      # no user file: no auth
    assert check(diff, "/realm-var/?realm=off").response.status == 200
    check(diff, "/realm-var/?realm=x%22y")


def test_allow_deny(diff):
    assert check(diff, "/deny/").response.status == 403
    assert check(diff, "/allow/").response.status == 200
    assert check(diff, "/deny-other/").response.status == 403


def test_satisfy(diff):
    assert check(diff, "/any-allowed/").response.status == 200
    assert check(diff, "/any-denied/").response.status == 401
    assert check(diff, "/any-denied/", headers=[basic("plain", "plain-pw")]).response.status == 200
    assert check(diff, "/any-denied/", headers=[basic("plain", "bad")]).response.status == 401
    assert check(diff, "/any-missing/", headers=[basic("plain", "plain-pw")]).response.status == 403
    assert check(diff, "/all-allowed/").response.status == 401
    assert check(diff, "/all-allowed/", headers=[basic("plain", "plain-pw")]).response.status == 200


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH",
                                    "MKCOL", "REPORT"])
def test_limit_except(diff, method):
    body = b"x" if method in ("POST", "PUT") else None
    for path in ("/le/", "/le-post/", "/le-return/"):
        check(diff, path, method=method, body=body)
    check(diff, "/le-auth/", method=method, body=body)
    check(diff, "/le-auth/", method=method, body=body, headers=[basic("plain", "plain-pw")])


def test_error_page_401_keeps_the_challenge(diff):
    r = check(diff, "/ep401/").response
    assert r.status == 401 and r.body == b"denied page\n"
    assert r.header("www-authenticate") == b'Basic realm="ep"'
