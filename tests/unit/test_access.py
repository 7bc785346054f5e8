"""The access phase's pieces: password formats (checked against openssl and libcrypt), nginx's
user file scanner, base64 as nginx decodes it, the compiled AccessPlan (None where nothing is
checked) and the config errors of limit_except / satisfy / auth_basic, checked against nginx -t."""
from __future__ import annotations

import subprocess

import pytest

from ngate.access.basic import find_password
from ngate.access.passwd import crypt, decode_base64
from tests.unit._config_helpers import load_http, nginx_error, ngate_error, write_conf


def openssl(flag: str, password: str, salt: str) -> bytes:
    out = subprocess.run(["openssl", "passwd", flag, "-salt", salt, password],
                         capture_output=True, check=True)
    return out.stdout.strip()


# (openssl passwd -5/-6 print "<NULL>" for an empty password)
@pytest.mark.parametrize("flag,password", [
    (flag, pw) for flag in ("-apr1", "-1", "-5", "-6")
    for pw in ("p", "pass word", "x" * 40, "ünï", *(("",) if flag in ("-apr1", "-1") else ()))])
def test_openssl_hashes_verify(flag, password):
    stored = openssl(flag, password, "saltsalt")
    assert crypt(password.encode(), stored) == stored
    assert crypt(password.encode() + b"x", stored) != stored


@pytest.mark.parametrize("stored,password", [
    (b"{PLAIN}pw", b"pw"),
    (b"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", b"password"),
    (b"{SSHA}yI6cZwQadOA1e+/f+T+H3eCQQhRzYWx0", b"password"),
    (b"$apr1$salt$Xxd1irWT9ycqoYxGFn4cb.", b"password"),
    (b"$2b$05$abcdefghijklmnopqrstuufhXdHJtkiUiNQ6n8/s9Kw6bfnPI6Ytq", b"bcrypt-pw"),
    (b"$y$j9T$F5Jx5fExrKuPp53xLKQ..1$1wzOs3/VG1PFk7e.acZzQ8bFIpJbyqGqqlctCMUihbC", b"yes-pw"),
    (b"abHmYwzWPQJxg", b"des-pw"),
])
def test_formats(stored, password):
    assert crypt(password, stored) == stored
    assert crypt(password + b"!", stored) != stored
    assert crypt(password + b"\0ignored", stored) == stored      # a C string to nginx


def test_broken_values_never_match():
    for stored in (b"$1$", b"$apr1$", b"{SSHA}Zm9vCg==", b"{SSHA}_____wQad", b"{SHA}Zm9vCg==",
                   b"*", b"!", b""):
        assert crypt(b"1", stored) != stored


@pytest.mark.parametrize("data,user,expected", [
    (b"a:1\nb:2\n", b"b", b"2"),
    (b"a:1\nb:2", b"b", b"2"),
    (b"a:1:extra\n", b"a", b"1"),
    (b"a:1\r\n", b"a", b"1"),
    (b"a:\n", b"a", b""),
    (b"#a:1\na:2\n", b"a", b"2"),
    (b"\ra:1\na:3\n", b"a", b"3"),
    (b"\n\n\na:1", b"a", b"1"),
    (b"a:1\na:2\n", b"a", b"1"),
    (b"ab:1\na:2\n", b"a", b"2"),
    (b"a\na:2\nb:3\n", b"a", None),        # "a" then LF: the LF is consumed, the next line skipped
    (b"a\na:2\nb:3\n", b"b", b"3"),
    (b"ab", b"abc", None),
    (b"", b"a", None),
    (b" a:1\n", b"a", None),
])
def test_user_file_scanner(data, user, expected):
    assert find_password(data, user) == expected


@pytest.mark.parametrize("text,expected", [
    (b"YTpi", b"a:b"), (b"YTpiYw", b"a:bc"), (b"YTpiYw==", b"a:bc"), (b"YTpiYw=junk", b"a:bc"),
    (b"YTpiY", None), (b"YT!i", None), (b"", b""),
])
def test_base64_as_nginx(text, expected):
    assert decode_base64(text) == expected


def test_plan_only_where_something_is_checked(tmp_path):
    config = load_http(tmp_path, """
        server { listen 8080;
            location /none { satisfy any; auth_delay 1s; auth_basic "realm-only"; }
            location /rules { deny all; }
            location /auth { auth_basic "r"; auth_basic_user_file users; satisfy any; }
            location /lim { limit_except GET { deny all; } }
        }""")
    locs = {loc.pattern: loc.conf for loc in config.servers[0].locations}
    assert locs["/none"].access is None
    assert locs["/rules"].access.rules and locs["/rules"].access.auth_basic is None
    auth = locs["/auth"].access.auth_basic
    assert locs["/auth"].access.satisfy_any
    assert auth.user_file.text == str(tmp_path / "users")      # relative to the config's dir
    lim = locs["/lim"]
    assert lim.access is None and lim.limit_except.methods == {"GET", "HEAD"}
    assert lim.limit_except.conf.access.rules == ((False, None),)


ERRORS = [
    ('server { listen 8080; location / { limit_except FOO { } } }', 'invalid method "FOO"'),
    ('server { listen 8080; location / { limit_except GET { } limit_except POST { } } }',
     '"limit_except" directive is duplicate'),
    ('server { listen 8080; limit_except GET { } }', '"limit_except" directive is not allowed here'),
    ('server { listen 8080; location / { auth_basic a; auth_basic b; } }',
     '"auth_basic" directive is duplicate'),
    ('server { listen 8080; location / { auth_basic_user_file a; auth_basic_user_file b; } }',
     '"auth_basic_user_file" directive is duplicate'),
    ('server { listen 8080; location / { limit_except GET { satisfy any; } } }',
     '"satisfy" directive is not allowed here'),
    ('server { listen 8080; location / { auth_delay 1x; } }', '"auth_delay" directive invalid value'),
    ('server { listen 8080; location / { satisfy any; satisfy all; } }',
     '"satisfy" directive is duplicate'),
    ('server { listen 8080; location / { auth_request /a; auth_request /b; } }',
     '"auth_request" directive is duplicate'),
    ('server { listen 8080; location / { auth_request_set $remote_addr x; } }',
     'the duplicate "remote_addr" variable'),
    ('server { listen 8080; location / { limit_except GET { auth_request /a; } } }',
     '"auth_request" directive is not allowed here'),
]


@pytest.mark.parametrize("http,message", ERRORS)
def test_config_errors_as_nginx(tmp_path, http, message):
    conf = write_conf(tmp_path, http)
    expected = f"{message} in {conf}:3"
    assert ngate_error(conf, str(tmp_path)) == expected
    assert nginx_error(conf, str(tmp_path)) == expected


def test_auth_request_plan(tmp_path):
    config = load_http(tmp_path, """
        server { listen 8080;
            auth_request /auth;
            auth_request_set $user $upstream_http_x_user;
            location /a { }
            location /off { auth_request off; }
            location /show { return 200 $user; }
        }""")
    locs = {loc.pattern: loc.conf for loc in config.servers[0].locations}
    plan = locs["/a"].access
    assert plan.auth_request == "/auth" and plan.auth_request_set[0][0] == "user"
    assert locs["/off"].access is None


def test_limit_except_methods_are_case_insensitive_in_the_config(tmp_path):
    config = load_http(tmp_path, "server { listen 8080; location / { limit_except get post { } } }")
    assert config.servers[0].locations[0].conf.limit_except.methods == {"GET", "HEAD", "POST"}


def test_explain_names_the_checks(tmp_path, capsys):
    from ngate import cli
    (tmp_path / "nginx.conf").write_text("""events {}
http { server { listen 8080; server_name a.test;
    location / { auth_basic "staff"; auth_basic_user_file users; auth_request /sso;
                 proxy_pass http://127.0.0.1:9; }
    location = /sso { internal; return 204; } } }""")
    rc = cli.main(["explain", "-p", str(tmp_path), "-c", "nginx.conf", "http://a.test:8080/x"])
    out = capsys.readouterr().out
    assert rc == 0
    assert f'access    auth_basic "staff", user file {tmp_path}/users: 401 without valid' in out
    assert "access    auth_request /sso: a subrequest decides" in out
