"""`ngate explain`: routing explained from the compiled config (no sockets, no processes).

The seed's configuration shape: a port-80 server answering 301 to https, and an ssl server with
the WebSocket recipe at /wss, PHP through fastcgi, a Tomcat proxy on 8080 and static files.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import trustme

from ngate import cli
from tests.harness.processes import REPO_ROOT

SEED = """\
events {}
http {
    server {
        listen 80;
        server_name abc.com www.abc.com;
        return 301 https://$host$request_uri;
    }
    server {
        listen 443 ssl;
        server_name abc.com;
        ssl_certificate cert.pem;
        ssl_certificate_key key.pem;
        root html;
        index index.html;
        location / {
            try_files $uri $uri/ =404;
        }
        location /wss {
            proxy_pass http://127.0.0.1:8888;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
            proxy_set_header X-Real-IP $remote_addr;
        }
        location ~ .php$ {
            root html;
            fastcgi_pass 127.0.0.1:9000;
            fastcgi_index index.php;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            include fastcgi_params;
        }
        location /Tomcat {
            proxy_pass http://127.0.0.1:8080;
            proxy_http_version 1.1;
            proxy_set_header X-Real-IP $remote_addr;
        }
        location /app/ {
            proxy_pass http://127.0.0.1:8080/backend/;
        }
        location /api {
            proxy_pass http://127.0.0.1:8080/v1/;
        }
    }
}
"""

VHOSTS = """\
events {}
http {
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    server {
        listen 8001;
        server_name first.test;
        location / { return 200 first; }
    }
    server {
        listen 8001 default_server;
        server_name *.example.com www.example.* ~^(?<sub>[a-z]+)\\.regex\\.test$;
        if ($request_method = OPTIONS) { return 204; }
        rewrite ^/old/(.*)$ /new/$1 last;
        location /new/ { return 200 "new $uri"; }
        location = /guarded { if ($remote_addr = 10.0.0.1) { return 403; } return 200 ok; }
        location /ws10 {
            proxy_pass http://127.0.0.1:8888;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }
        location /plain11 { proxy_pass http://127.0.0.1:8888; proxy_http_version 1.1; }
        location /pinged {
            proxy_pass http://127.0.0.1:8888;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            websocket_ping 20s;
        }
        location ^~ /static/ { return 200 static; }
        location ~ \\.png$ { return 200 png; }
    }
}
"""


@pytest.fixture
def seed(tmp_path):
    (tmp_path / "logs").mkdir()
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("hi\n")
    (html / "index.php").write_text("<?php echo 1;\n")
    (tmp_path / "fastcgi_params").write_text(
        "fastcgi_param QUERY_STRING $query_string;\n"
        "fastcgi_param SCRIPT_NAME $fastcgi_script_name;\n"
        "fastcgi_param DOCUMENT_ROOT $document_root;\n")
    cert = trustme.CA().issue_cert("abc.com")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    (tmp_path / "nginx.conf").write_text(SEED)
    (tmp_path / "vhosts.conf").write_text(VHOSTS)
    return tmp_path


def explain(capsys, prefix, *argv, conf="nginx.conf"):
    rc = cli.main(["explain", "-p", str(prefix), "-c", conf, *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def line(out: str, label: str) -> str:
    """The first report line with this label."""
    return next(x for x in out.splitlines() if x.startswith(label + " "))


def warnings(out: str) -> str:
    return out.partition("\nwarnings:\n")[2]


# ---------------------------------------------------------------- the seed's scenario

def test_websocket_recipe_routes_to_the_tunnel_location(capsys, seed):
    rc, out, _ = explain(capsys, seed, "wss://abc.com/wss")
    assert rc == 0
    assert "0.0.0.0:443 ssl" in line(out, "listen")
    assert 'exact name "abc.com"' in line(out, "server")
    assert f"prefix /wss at {seed}/nginx.conf:18" in line(out, "location")
    assert f"prefix / at {seed}/nginx.conf:15: matches too, but is shorter" in out
    assert "regex ~ .php$" in out and "does not match" in out
    assert f"proxy_pass http://127.0.0.1:8888 ({seed}/nginx.conf:19)" in line(out, "handler")
    head = out.partition("request sent upstream:\n")[2]
    assert head.splitlines()[0].strip() == "GET /wss HTTP/1.1"
    for sent in ("Upgrade: websocket", "Connection: Upgrade", "Host: 127.0.0.1:8888",
                 "X-Real-IP: $remote_addr   (depends on $remote_addr at request time)"):
        assert sent in head
    w = warnings(out)
    assert "closed after proxy_read_timeout 60s" in w and "websocket_ping 30s;" in w
    assert "HTTP/1.0" not in w and "plain GET" not in w


def test_port_80_answers_the_redirect_before_any_location(capsys, seed):
    rc, out, _ = explain(capsys, seed, "http://abc.com/x?y=1")
    assert rc == 0
    assert "0.0.0.0:80 " in line(out, "listen")
    assert f"return 301 https://$host$request_uri ({seed}/nginx.conf:6)" in line(out, "return")
    assert "before any location is searched" in out
    assert line(out, "response") == \
        "response  301 Moved Permanently, Location: https://abc.com/x?y=1"
    assert not any(x.startswith("location ") for x in out.splitlines())


def test_php_regex_wins_over_the_prefix(capsys, seed):
    rc, out, _ = explain(capsys, seed, "https://abc.com/index.php?a=1")
    assert rc == 0
    assert f"regex ~ .php$ at {seed}/nginx.conf:25" in line(out, "location")
    assert (f"regex ~ .php$ at {seed}/nginx.conf:25: matches: wins over prefix / at "
            f"{seed}/nginx.conf:15") in out
    assert "fastcgi_pass 127.0.0.1:9000" in line(out, "handler")
    assert f"SCRIPT_FILENAME = {seed}/html/index.php" in out
    assert f"-> {seed}/html/index.php: the file exists" in out
    assert "QUERY_STRING = a=1" in out
    assert "the dot is unescaped" in warnings(out) and "/xphp" in warnings(out)


def test_php_script_that_does_not_exist(capsys, seed):
    rc, out, _ = explain(capsys, seed, "https://abc.com/missing.php")
    assert rc == 0
    assert f"-> {seed}/html/missing.php: no such file" in out
    assert f"{seed}/html/missing.php does not exist: php-fpm answers 404" in warnings(out)


def test_tomcat_proxy_passes_the_uri_unchanged(capsys, seed):
    rc, out, _ = explain(capsys, seed, "https://abc.com/Tomcat/a?b=1")
    assert rc == 0
    head = out.partition("request sent upstream:\n")[2]
    lines = [x.strip() for x in head.splitlines()]
    assert lines[:4] == ["GET /Tomcat/a?b=1 HTTP/1.1",
                         "X-Real-IP: $remote_addr   (depends on $remote_addr at request time)",
                         "Host: 127.0.0.1:8080", "Connection: close"]
    assert warnings(out) == ""


def test_proxy_pass_uri_part_rewrites_the_uri(capsys, seed):
    rc, out, _ = explain(capsys, seed, "https://abc.com/app/x?y=1")
    assert rc == 0
    assert "'/app/' at the start of /app/x is replaced by '/backend/'" in out
    assert "GET /backend/x?y=1 HTTP/1.0" in out
    rc, out, _ = explain(capsys, seed, "https://abc.com/api/x")
    assert "GET /v1//x HTTP/1.0" in out
    assert "sends /v1//x: location /api has no trailing slash" in warnings(out)


def test_static_root_try_files_and_index(capsys, seed):
    rc, out, _ = explain(capsys, seed, "https://abc.com/")
    assert rc == 0
    assert f"$uri -> {seed}/html/: found (a directory)" in out
    assert f"index index.html -> {seed}/html/index.html: found" in out
    assert "internal redirect to /index.html (index)" in out
    assert line(out, "response") == "response  200 OK, 3 bytes of text/html (as the file is now)"
    rc, out, _ = explain(capsys, seed, "https://abc.com/nothing")
    assert f"$uri -> {seed}/html/nothing: not found" in out
    assert f"$uri/ -> {seed}/html/nothing/: not found (a directory)" in out
    assert line(out, "response") == "response  404 Not Found"


def test_plain_http_to_the_ssl_port(capsys, seed):
    rc, out, _ = explain(capsys, seed, "http://abc.com:443/")
    assert rc == 0
    assert "400" in line(out, "response") and "HTTPS port" in line(out, "response")
    assert "use https://" in warnings(out)


# ---------------------------------------------------------------- servers, rewrite, WebSocket

@pytest.mark.parametrize("argv, why", [
    (["http://first.test:8001/"], 'exact name "first.test"'),
    (["http://a.b.example.com:8001/"], 'leading wildcard "*.example.com"'),
    (["http://www.example.org:8001/"], 'trailing wildcard "www.example.*"'),
    (["http://abc.regex.test:8001/"], 'regex "~^(?P<sub>[a-z]+)\\.regex\\.test$"'),
    (["http://nobody.test:8001/"], "the default server (listen ... default_server at"),
    (["-H", "Host: first.test", "http://127.0.0.1:8001/"], 'exact name "first.test"'),
    (["/x"], "the default server (listen ... default_server at"),
])
def test_server_selection_says_why(capsys, seed, argv, why):
    rc, out, _ = explain(capsys, seed, *argv, conf="vhosts.conf")
    assert rc == 0
    assert why in line(out, "server")


def test_rewrite_last_searches_again(capsys, seed):
    rc, out, _ = explain(capsys, seed, "http://x.example.com:8001/old/a?q=1", conf="vhosts.conf")
    assert rc == 0
    assert "if ($request_method = OPTIONS)" in out and ": false" in line(out, "if")
    assert "/old/a -> /new/a?q=1; the location search runs again" in line(out, "rewrite")
    assert "prefix /new/" in line(out, "location")
    assert line(out, "response") == "response  200 OK, body 'new /new/a'"


def test_if_on_a_request_time_variable_is_not_guessed(capsys, seed):
    rc, out, _ = explain(capsys, seed, "-X", "OPTIONS", "http://x.example.com:8001/guarded",
                         conf="vhosts.conf")
    assert rc == 0
    assert line(out, "response") == "response  204 No Content, empty body"
    rc, out, _ = explain(capsys, seed, "http://x.example.com:8001/guarded", conf="vhosts.conf")
    guarded = [x for x in out.splitlines() if "$remote_addr = 10.0.0.1" in x][0]
    assert "depends on $remote_addr at request time" in guarded and "return 403" in guarded


def test_caret_tilde_prefix_skips_the_regexes(capsys, seed):
    rc, out, _ = explain(capsys, seed, "http://x.example.com:8001/static/a.png", conf="vhosts.conf")
    assert "prefix ^~ /static/" in line(out, "location")
    assert "regex ~ \\.png$" in out and "not checked (^~)" in out
    rc, out, _ = explain(capsys, seed, "http://x.example.com:8001/a.png", conf="vhosts.conf")
    assert "regex ~ \\.png$" in line(out, "location")


def test_websocket_without_http_1_1(capsys, seed):
    rc, out, _ = explain(capsys, seed, "ws://x.example.com:8001/ws10", conf="vhosts.conf")
    assert rc == 0
    assert "GET /ws10 HTTP/1.0" in out
    assert "Connection: upgrade" in out          # the map, evaluated for this request
    assert "not `proxy_http_version 1.1;`" in warnings(out)


def test_websocket_with_http_1_1_but_no_upgrade_headers(capsys, seed):
    rc, out, _ = explain(capsys, seed, "ws://x.example.com:8001/plain11", conf="vhosts.conf")
    assert rc == 0
    assert "Upgrade:" not in out.partition("request sent upstream:")[2].split("timeouts")[0]
    assert "backend sees a plain GET" in warnings(out)


def test_websocket_ping_configured(capsys, seed):
    rc, out, _ = explain(capsys, seed, "ws://x.example.com:8001/pinged", conf="vhosts.conf")
    assert rc == 0
    assert warnings(out) == ""
    rc, out, _ = explain(capsys, seed, "http://x.example.com:8001/pinged", conf="vhosts.conf")
    assert "Connection: close" in out           # $connection_upgrade without Upgrade


# ---------------------------------------------------------------- exit statuses

def test_broken_config_is_reported_with_file_and_line(capfd, tmp_path):
    """The error log writes to fd 2 itself: capfd, not capsys."""
    (tmp_path / "bad.conf").write_text("events {}\nhttp {\n    server { listen 80; foo; }\n}\n")
    rc, out, err = explain(capfd, tmp_path, "/", conf="bad.conf")
    assert rc == 1
    assert out == ""
    assert f'[emerg] unknown directive "foo" in {tmp_path}/bad.conf:3' in err


@pytest.mark.parametrize("argv", [[], ["ftp://abc.com/"], ["-H", "no colon", "/"],
                                  ["--nope", "/"], ["http://abc.com:99999/"]])
def test_bad_usage(capsys, seed, argv):
    with pytest.raises(SystemExit) as exc:
        rc = cli.main(["explain", "-p", str(seed), "-c", "nginx.conf", *argv])
        raise SystemExit(rc)
    assert exc.value.code == 2
    assert "usage: ngate explain" in capsys.readouterr().err


def test_no_listen_socket(capsys, seed):
    rc, out, _ = explain(capsys, seed, "http://abc.com:9999/")
    assert rc == 3
    assert "no listen socket on port 9999" in out


def test_command_line(seed):
    """The verb through `python -m ngate`, as users run it."""
    r = subprocess.run([sys.executable, "-m", "ngate", "explain", "-p", str(seed), "-c",
                        "nginx.conf", "-H", "Host: abc.com", "http://127.0.0.1/y"],
                       capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert r.returncode == 0, r.stderr
    assert "Location: https://abc.com/y" in r.stdout
    h = subprocess.run([sys.executable, "-m", "ngate", "explain", "-h"], capture_output=True,
                       text=True, timeout=60, cwd=REPO_ROOT)
    assert h.returncode == 0
    assert "[-H 'Name: value']... URL" in h.stdout and "exit status" in h.stdout


# ---------------------------------------------------------------- disable_symlinks

SYMLINKS = """
events {}
http {
    server {
        listen 127.0.0.1:8080;
        root html;
        location /strict/ { disable_symlinks on; }
        location /owner/ { disable_symlinks if_not_owner from=$document_root; }
    }
}
"""


@pytest.fixture
def linked(tmp_path):
    (tmp_path / "logs").mkdir()
    share = tmp_path / "share" / "app"
    share.mkdir(parents=True)
    (share / "logo.png").write_bytes(b"PNG")
    html = tmp_path / "html"
    (html / "strict").mkdir(parents=True)
    (html / "strict" / "real.txt").write_text("x\n")
    os.symlink(share, html / "app")
    os.symlink(share / "logo.png", html / "strict" / "logo.png")
    os.symlink("real.txt", html / "strict" / "index.html")
    (html / "owner").mkdir()
    os.symlink(share / "logo.png", html / "owner" / "logo.png")
    (tmp_path / "nginx.conf").write_text(SYMLINKS)
    return tmp_path


def test_symlink_out_of_the_root_is_followed_by_default(capsys, linked):
    rc, out, _ = explain(capsys, linked, "http://127.0.0.1:8080/app/logo.png")
    assert rc == 0
    assert line(out, "response") == ("response  200 OK, 3 bytes of text/plain "
                                      "(as the file is now)")


def test_disable_symlinks_on_predicts_403(capsys, linked):
    rc, out, _ = explain(capsys, linked, "http://127.0.0.1:8080/strict/logo.png")
    assert "(disable_symlinks on)" in out
    assert line(out, "response") == ("response  403 Forbidden (a symlink refused by "
                                      "disable_symlinks)")
    rc, out, _ = explain(capsys, linked, "http://127.0.0.1:8080/strict/real.txt")
    assert line(out, "response").startswith("response  200 OK")
    rc, out, _ = explain(capsys, linked, "http://127.0.0.1:8080/strict/")
    assert line(out, "response") == ("response  403 Forbidden (a symlink refused by "
                                      "disable_symlinks)")


def test_disable_symlinks_if_not_owner_follows_a_link_of_the_same_owner(capsys, linked):
    rc, out, _ = explain(capsys, linked, "http://127.0.0.1:8080/owner/logo.png")
    assert line(out, "response").startswith("response  200 OK")


def test_variable_proxy_pass_to_a_name_with_and_without_resolver(capsys, tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text("""events {}
http {
    server {
        listen 127.0.0.1:8080;
        location /r/ { resolver 127.0.0.1; proxy_pass http://$arg_h:8080; }
        location /n/ { proxy_pass http://$arg_h:8080; }
    }
}
""")
    rc, out, _ = explain(capsys, tmp_path, "http://localhost:8080/r/?h=app.test")
    assert rc == 0 and "once the resolver found app.test" in out
    rc, out, _ = explain(capsys, tmp_path, "http://localhost:8080/n/?h=app.test")
    assert "no resolver defined to resolve app.test" in out


def test_an_address_served_by_the_wildcard_socket(capsys, tmp_path):
    """`listen 80;` beside `listen 127.0.0.1:80;`: the address keeps its own listen (servers),
    its connections come through the wildcard socket; with `bind` it has a socket of its own."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text("""events {}
http {
    server { listen 8182; listen 8183; return 200 w; }
    server { listen 127.0.0.1:8182; listen 127.0.0.1:8183 bind; return 200 a; }
}
""")
    rc, out, _ = explain(capsys, tmp_path, "http://127.0.0.1:8182/")
    assert rc == 0
    assert line(out, "listen").endswith("127.0.0.1's own listen, its connections accepted on "
                                        "the wildcard socket of port 8182 (no `bind` or socket "
                                        "option of its own)")
    rc, out, _ = explain(capsys, tmp_path, "http://127.0.0.1:8183/")
    assert line(out, "listen").endswith("bound to 127.0.0.1 itself")
