"""The rewrite module through nginx and ngate: rewrite flags and args, captures (numbered and
named), if conditions, set, break, cycles, error_page internal redirects, and CORS the nginx way.
Each location answers with `return 200 "<what it saw>"` so the client sees the outcome."""
import os

import pytest

from tests.harness.client import build_request

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        root {docroot};
        rewrite_log on;

        location /show/ { return 200 "show uri=$uri args=$args is_args=$is_args\\n"; }

        location /last/ { rewrite ^/last/(.*)$ /show/$1 last; return 500; }
        location /brk/ { rewrite ^/brk/(.*)$ /show/$1 break; return 200 "break uri=$uri\\n"; }
        location /brk-file/ { rewrite ^/brk-file/(.*)$ /$1 break; }
        location /noflag/ { rewrite ^/noflag/(.*)$ /show/$1; set $x after; }
        location /noflag-break/ { rewrite ^/noflag-break/(.*)$ /show/$1; break; }
        location /chain/ { rewrite ^/chain/a$ /chain/b; rewrite ^/chain/b$ /show/c; }
        location /args-new/ { rewrite ^ /show/n?a=1 last; }
        location /args-drop/ { rewrite ^ /show/d? last; }
        location /args-new-drop/ { rewrite ^ /show/nd?a=1? last; }
        location /redir/ { rewrite ^/redir/(.*)$ /show/$1 redirect; }
        location /perm/ { rewrite ^/perm/(.*)$ /show/$1 permanent; }
        location /redir-abs/ { rewrite ^/redir-abs/(.*)$ http://other.test/$1; }
        location /redir-args/ { rewrite ^ /show/r?x=1 redirect; }
        location /redir-drop/ { rewrite ^ /show/r? redirect; }
        location /named/ {
            rewrite "^/named/(?<first>[a-z]+)/(?<second>[0-9]+)$" /show/$second-$first last;
        }
        location /cycle/ { rewrite ^ /cycle/again last; }
        location /nomatch/ { rewrite ^/elsewhere /x last; return 200 "kept $uri\\n"; }

        location /if/ {
            set $r "";
            if ($arg_a = yes) { set $r "${r}eq "; }
            if ($arg_a != yes) { set $r "${r}ne "; }
            if ($http_x_test ~ ^ab(c+)$) { set $r "${r}re:$1 "; }
            if ($http_x_test ~* ^AB) { set $r "${r}rei "; }
            if ($http_x_test !~ ^ab) { set $r "${r}nre "; }
            if ($arg_flag) { set $r "${r}flag "; }
            if (-f $request_filename) { set $r "${r}file "; }
            if (!-f $request_filename) { set $r "${r}nofile "; }
            if (-d $request_filename) { set $r "${r}dir "; }
            if (-e $request_filename) { set $r "${r}exists "; }
            if (!-e $request_filename) { set $r "${r}missing "; }
            if (-x $request_filename) { set $r "${r}exec "; }
            return 200 "if: $r\\n";
        }
        location /if-return/ {
            if ($request_method = POST) { return 405 "no posts\\n"; }
            return 200 "ok\\n";
        }
        location /if-break/ {
            set $a 1;
            if ($arg_stop) { break; }
            set $a 2;
            return 200 "a=$a\\n";
        }
        location /setargs/ { set $args "x=1&$args"; rewrite ^ /show/s last; }
        location /setvar/ { set $v "$uri-$arg_q"; return 200 "v=$v\\n"; }

        location /ep/ {
            error_page 404 /show/notfound;
            error_page 403 = @named;
        }
        location /ep-code/ { error_page 404 =200 /a.txt; }
        location @named { return 200 "named from $uri\\n"; }

        location /cors/ {
            add_header Access-Control-Allow-Origin $http_origin always;
            add_header Access-Control-Allow-Methods "GET, POST, OPTIONS" always;
            if ($request_method = OPTIONS) { return 204; }
            return 200 "cors body\\n";
        }
        location /cors-missing/ {
            add_header Access-Control-Allow-Origin * always;
        }
    }
}
"""


@pytest.fixture(scope="module")
def docroot(tmp_path_factory):
    root = tmp_path_factory.mktemp("rwroot")
    (root / "a.txt").write_bytes(b"static a\n")
    (root / "if").mkdir()
    (root / "if" / "file.txt").write_bytes(b"f\n")
    (root / "if" / "run.sh").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "if" / "run.sh", 0o755)
    (root / "if" / "sub").mkdir()
    (root / "brk-file").mkdir()
    for p in (root, root / "if", root / "if" / "sub"):
        os.chmod(p, 0o755)
    for p in (root / "a.txt", root / "if" / "file.txt"):
        os.chmod(p, 0o644)
    for p in root.parents:      # nginx's workers run as nobody: the path must be searchable
        if str(p).startswith("/tmp/"):
            os.chmod(p, os.stat(p).st_mode | 0o055)
    return root


@pytest.fixture(scope="module")
def diff(differential, docroot):
    return differential(CONF, backends=(), docroot=docroot)


TARGETS = [
    "/last/x?q=1", "/brk/x?q=1", "/brk-file/a.txt", "/noflag/y?q=2", "/noflag-break/y",
    "/chain/a", "/args-new/?b=2", "/args-new/", "/args-drop/?b=2", "/args-new-drop/?b=2",
    "/redir/z?q=3", "/perm/z", "/redir-abs/p?q=4", "/redir-args/?b=2", "/redir-drop/?b=2",
    "/named/abc/123", "/named/abc/x", "/cycle/", "/nomatch/x",
    "/if/?a=yes", "/if/?a=no&flag=1", "/if/?flag=0", "/if/file.txt", "/if/run.sh", "/if/sub",
    "/if/missing", "/if-break/", "/if-break/?stop=1", "/setargs/?b=2", "/setargs/",
    "/setvar/p?q=v", "/ep/missing", "/ep-code/missing", "/cors/x", "/cors-missing/nothing",
    "/show/%41%20b?x=%41",
]


@pytest.mark.parametrize("target", TARGETS)
def test_rewrite(diff, target):
    diff.check_request("GET", target)


@pytest.mark.parametrize("value", ["abccc", "ABx", "zz"])
def test_if_regex_header(diff, value):
    diff.check_request("GET", "/if/", headers=[(b"X-Test", value.encode())])


def test_if_return_on_method(diff):
    diff.check_request("POST", "/if-return/", body=b"x")
    diff.check_request("GET", "/if-return/")


def test_cors_preflight_the_nginx_way(diff):
    headers = [(b"Origin", b"http://app.test"), (b"Access-Control-Request-Method", b"PUT")]
    out = diff.check_request("OPTIONS", "/cors/x", headers=headers)
    assert out.response.status == 204
    assert out.response.header("access-control-allow-origin") == b"http://app.test"
    out = diff.check_request("GET", "/cors/x", headers=headers[:1])
    assert out.response.header("access-control-allow-origin") == b"http://app.test"


def test_error_page_on_static_404_keeps_going(diff):
    raw = b"".join(build_request("GET", t) for t in ("/ep/missing", "/ep-code/missing", "/last/k"))
    diff.check_raw(raw, count=3)
