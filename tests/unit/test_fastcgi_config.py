"""fastcgi_* directives compiled to the model, their errors (checked against `nginx -t`), and the
$fastcgi_script_name / $fastcgi_path_info variables."""
import os

import pytest

from ngate.config.model import FastCGIConf, LocConf
from ngate.http.context import RequestContext
from ngate.routing.variables import compile_template
from tests.unit._config_helpers import (load_http, nginx_available, nginx_error, ngate_error,
                                        write_conf)


def _loc(cfg, server=0, index=0):
    return cfg.servers[server].locations[index].conf


def test_defaults_and_values(tmp_path):
    cfg = load_http(tmp_path, """
    upstream php { server unix:/run/php.sock; keepalive 4; }
    fastcgi_read_timeout 5s;
    fastcgi_hide_header X-Powered-By;
    server { listen 8001;
        location /a { fastcgi_pass 127.0.0.1:9000; }
        location /b { fastcgi_pass php; fastcgi_keep_conn on; fastcgi_index index.php;
                      fastcgi_pass_header Status; fastcgi_intercept_errors on;
                      fastcgi_pass_request_headers off; fastcgi_pass_request_body off;
                      fastcgi_connect_timeout 2s; fastcgi_buffer_size 16k; }
        location /c { fastcgi_pass unix:/tmp/x.sock; }
        location /d { fastcgi_pass $host:9000; }
    }""")
    a, b, c, d = (_loc(cfg, 0, i) for i in range(4))
    assert d.fastcgi.pass_.text == "$host:9000"          # a Template, resolved per request
    assert a.fastcgi.pass_.servers[0].name == "127.0.0.1:9000" and a.fastcgi.pass_.implicit
    assert a.fastcgi.read_timeout == 5.0 and a.fastcgi.connect_timeout == 60.0
    assert a.fastcgi.hide_header == {b"x-powered-by"} and not a.fastcgi.keep_conn
    assert b.fastcgi.pass_.name == "php" and b.fastcgi.pass_.keepalive == 4
    assert (b.fastcgi.keep_conn, b.fastcgi.index, b.fastcgi.intercept_errors) == \
        (True, "index.php", True)
    assert b.fastcgi.pass_header == {b"status"} and b.fastcgi.buffer_size == 16384
    assert not b.fastcgi.pass_request_headers and not b.fastcgi.pass_request_body
    assert c.fastcgi.pass_.servers[0].unix == "/tmp/x.sock"


def test_params_replace_not_merge_and_if_not_empty(tmp_path):
    cfg = load_http(tmp_path, """
    fastcgi_param A http;
    server { listen 8001;
        fastcgi_param B server; fastcgi_param C $host if_not_empty;
        location /own { fastcgi_pass 127.0.0.1:9000; fastcgi_param D loc; fastcgi_param D again; }
        location /inherits { fastcgi_pass 127.0.0.1:9000; }
    }""")
    own, inherits = _loc(cfg, 0, 0), _loc(cfg, 0, 1)
    assert [(p.name, p.value.text) for p in own.fastcgi.param] == [("D", "loc"), ("D", "again")]
    assert [(p.name, p.if_not_empty) for p in inherits.fastcgi.param] == [("B", False), ("C", True)]


def test_bundled_fastcgi_files_without_local_copies(tmp_path):
    cfg = load_http(tmp_path, "server { listen 8001; location / { fastcgi_pass 127.0.0.1:9000;"
                              " include fastcgi.conf; } }")
    names = [p.name for p in _loc(cfg).fastcgi.param]
    assert names[0] == "SCRIPT_FILENAME" and "REDIRECT_STATUS" in names
    assert not os.path.exists(tmp_path / "fastcgi.conf")


CASES = [
    ("location / { fastcgi_pass 127.0.0.1:9000; fastcgi_param A b bogus; }",
     'invalid parameter "bogus"'),
    ("location / { fastcgi_pass php; }", 'no port in upstream "php"'),
    ("location / { fastcgi_pass 127.0.0.1:9000; fastcgi_pass 127.0.0.1:9001; }",
     '"fastcgi_pass" directive is duplicate'),
    ("location / { fastcgi_keep_conn maybe; }",
     'invalid value "maybe" in "fastcgi_keep_conn" directive, it must be "on" or "off"'),
    ('location / { fastcgi_split_path_info "^(a)(b)(c)$"; }',
     'pattern "^(a)(b)(c)$" must have 2 captures'),
    ("location / { fastcgi_index a; fastcgi_index b; }", '"fastcgi_index" directive is duplicate'),
    ("location / { fastcgi_pass unix:; }",
     'no path in the unix domain socket in upstream "unix:"'),
    ("location / { if ($args) { fastcgi_split_path_info ^(.+)(.*)$; } }",
     '"fastcgi_split_path_info" directive is not allowed here'),
]


@pytest.mark.parametrize("body,message", CASES)
def test_errors_as_nginx(tmp_path, body, message):
    conf = write_conf(tmp_path, f"server {{ listen 8999; {body} }}")
    expected = f"{message} in {conf}:3"
    assert ngate_error(conf, str(tmp_path)) == expected
    if not nginx_available():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is required under CI")
        return
    assert nginx_error(conf, str(tmp_path)) == expected


def test_split_path_info_at_server_level_and_repeated(tmp_path):
    cfg = load_http(tmp_path, "server { listen 8001; fastcgi_split_path_info ^(x)(y)$;"
                              " location / { fastcgi_split_path_info ^(a)(b)$;"
                              " fastcgi_split_path_info ^(.+\\.php)(/.*)$; } }")
    assert cfg.servers[0].conf.fastcgi.split_path_info.pattern == "^(x)(y)$"
    assert _loc(cfg).fastcgi.split_path_info.pattern == "^(.+\\.php)(/.*)$"


@pytest.mark.parametrize("uri,split,index,script,info", [
    ("/a/b.php", None, None, "/a/b.php", ""),
    ("/dir/", None, "index.php", "/dir/index.php", ""),
    ("/dir/", None, None, "/dir/", ""),
    ("/a/b.php/x/y", r"^(.+\.php)(/.*)$", None, "/a/b.php", "/x/y"),
    ("/a/b.php", r"^(.+\.php)(/.+)$", None, "/a/b.php", ""),           # no match: $uri
    ("/x/", r"^(.+/)(.*)$", "i.php", "/x/i.php", ""),
])
def test_script_name_and_path_info(uri, split, index, script, info):
    import re
    ctx = RequestContext(None, "GET", uri, "1.1", [], {})
    ctx.uri = uri
    ctx.conf = LocConf(fastcgi=FastCGIConf(
        index=index, split_path_info=re.compile(split) if split else None))
    assert compile_template("$fastcgi_script_name").render(ctx) == script
    assert compile_template("$fastcgi_path_info").render(ctx) == info
