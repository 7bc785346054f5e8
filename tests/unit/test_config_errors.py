"""Bad configurations: ngate's error text and file:line, checked against nginx -t."""
from __future__ import annotations

import os

import pytest

from ngate.config.loader import load_config
from ngate.errors import ConfigError
from tests.unit._config_helpers import nginx_available, nginx_error, ngate_error, write_conf

PC = ('"proxy_pass" cannot have URI part in location given by regular expression, or inside '
      'named location, or inside "if" statement, or inside "limit_except" block')

# (http block body, expected message, line); the body starts on line 3
CASES = [
    ('server { listen 80; location / { return 200 } }', 'unexpected "}"', 3),
    ('server { listen 80; location / { foo; } }', 'unknown directive "foo"', 3),
    ('server { listen 80; proxy_pass http://x; }', '"proxy_pass" directive is not allowed here', 3),
    ('server { listen 80 80; }', 'invalid parameter "80"', 3),
    ('server { listen 8080; location ~ x { proxy_pass http://127.0.0.1/a; } }', PC, 3),
    ('server { listen 8080; location @n {\n proxy_pass http://127.0.0.1/a; } }', PC, 4),
    ('server { listen 8080; location /a { if ($uri) { proxy_pass http://127.0.0.1/x; } } }', PC, 3),
    ('server { listen 8080; location /a { limit_except GET { proxy_pass http://127.0.0.1/x; } } }',
     PC, 3),
    ('server { listen 8080; location / {\nproxy_http_version 1.1;\nproxy_http_version 1.0; } }',
     '"proxy_http_version" directive is duplicate', 5),
    ('server { listen 8080; location / { proxy_read_timeout 1x; } }',
     '"proxy_read_timeout" directive invalid value', 3),
    ('server { listen 8080; location / { proxy_buffering maybe; } }',
     'invalid value "maybe" in "proxy_buffering" directive, it must be "on" or "off"', 3),
    ('server { listen 8080; location / { client_max_body_size 1x; } }',
     '"client_max_body_size" directive invalid value', 3),
    ('server { listen 8080; location / { proxy_http_version 2.0; } }', 'invalid value "2.0"', 3),
    ('server { listen 8080; location / { } location / {} }', 'duplicate location "/"', 3),
    ('server { listen 8080; location ^~ /a { } location /a { } }', 'duplicate location "/a"', 3),
    ('server { listen 8080 default_server; }\nserver { listen 8080 default_server; }',
     'a duplicate default server for 0.0.0.0:8080', 4),
    ('server { listen 8080 backlog=5; } server { listen 8080 backlog=6; }',
     'duplicate listen options for 0.0.0.0:8080', 3),
    ('server { listen 8080; listen 8080; }', 'a duplicate listen 0.0.0.0:8080', 3),
    ('server { listen 8080; location / { include nope.conf; } }',
     'open() "{dir}/nope.conf" failed (2: No such file or directory)', 3),
    ('server { listen 8080; location / { return 200 "x; } }',
     'unexpected end of file, expecting ";" or "}"', 5),
    ('server { listen 8080;', 'unexpected end of file, expecting "}"', 5),
    ('server { listen 8080; } }', 'unexpected "}"', 4),
    ('server { listen 8080; location / { return 200 x; } {} }', 'unexpected "{"', 3),
    ('server;', 'directive "server" has no opening "{"', 3),
    ('server { listen 8080; return { } }', 'directive "return" is not terminated by ";"', 3),
    ('server { listen 8080 foo; }', 'invalid parameter "foo"', 3),
    ('server { listen 8080 backlog=x; }', 'invalid backlog "backlog=x"', 3),
    ('server { listen 99999; }', 'invalid port in "99999" of the "listen" directive', 3),
    ('server { listen unix:; }',
     'no path in the unix domain socket in "unix:" of the "listen" directive', 3),
    ('server { listen [::1:80; }', 'invalid host in "[::1:80" of the "listen" directive', 3),
    ('server { listen 8080; location { } }', 'invalid number of arguments in "location" directive', 3),
    ('server { listen 8080; location = / { location /a {} } }',
     'location "/a" cannot be inside the exact location "/"', 3),
    ('server { listen 8080; location @a { location /b {} } }',
     'location "/b" cannot be inside the named location "@a"', 3),
    ('server { listen 8080; location /a { location @b {} } }',
     'named location "@b" can be on the server level only', 3),
    ('server { listen 8080; location /a { location /b {} } }',
     'location "/b" is outside location "/a"', 3),
    ('server { listen 8080; location foo /a { } }', 'invalid location modifier "foo"', 3),
    ('server { listen 8080; location / { proxy_pass http://; } }', 'no host in upstream ""', 3),
    ('server { listen 8080; location / { proxy_pass ftp://x; } }', 'invalid URL prefix', 3),
    ('server { listen 8080; location / { proxy_pass http://127.0.0.1:99999; } }',
     'invalid port in upstream "127.0.0.1:99999"', 3),
    ('server { listen 8080; location / { proxy_pass http://nonexist.invalid; } }',
     'host not found in upstream "nonexist.invalid"', 3),
    ('server { listen 8080; location / { proxy_pass http://u; proxy_pass http://u; } }\n'
     'upstream u { server 127.0.0.1:1; }', '"proxy_pass" directive is duplicate', 3),
    ('upstream u { server 127.0.0.1:1 weight=0; }', 'invalid parameter "weight=0"', 3),
    ('upstream u { server 127.0.0.1:1 foo; }', 'invalid parameter "foo"', 3),
    ('upstream u { server 127.0.0.1:1; }\nupstream u { server 127.0.0.1:2; }',
     'duplicate upstream "u"', 4),
    ('upstream u { }', 'no servers are inside upstream', 3),
    ('upstream u { server 127.0.0.1:1 fail_timeout=500ms; }',
     'invalid parameter "fail_timeout=500ms"', 3),
    ('map $a { }', 'invalid number of arguments in "map" directive', 3),
    ('map $a $b {\nx;\n}', 'invalid number of the map parameters', 4),
    ('map $a $b { x 1; x 2; }', 'conflicting parameter "x"', 3),
    ('map $a b { x 1; }', 'invalid variable name "b"', 3),
    ('server { listen 8080; if (a b c) { } }', 'invalid condition "a"', 3),
    ('server { listen 8080; if ($uri = ) { } }', 'invalid condition "$uri"', 3),
    ('server { listen 8080; if (-f) {} }', 'invalid condition "-f"', 3),
    ('server { listen 8080; if ($uri x b) {} }', 'unexpected "x" in condition', 3),
    ('server { listen 8080; return abc; }', 'invalid return code "abc"', 3),
    ('server { listen 8080; return 200 a b; }', 'invalid number of arguments in "return" directive', 3),
    ('server { listen 8080; rewrite ^ /x foo; }', 'invalid parameter "foo"', 3),
    ('server { listen 8080; error_page 404; }', 'invalid number of arguments in "error_page" directive', 3),
    ('server { listen 8080; error_page 99 /x; }', 'value "99" must be between 300 and 599', 3),
    ('server { listen 8080; error_page 404 =abc /x; }', 'invalid value "=abc"', 3),
    ('server { listen 8080; set a 1; }', 'invalid variable name "a"', 3),
    ('server { listen 8080; set $uri 1; }', 'the duplicate "uri" variable', 3),
    ('log_format combined "$uri";', 'duplicate "log_format" name "combined"', 3),
    ('log_format x escape=foo "$uri";', 'unknown log format escaping "foo"', 3),
    ('server { listen 8080; access_log /tmp/x nofmt; }', 'unknown log format "nofmt"', 3),
    ('server { listen 8080; access_log /tmp/x combined foo=1; }', 'invalid parameter "foo=1"', 3),
    ('server { listen 8080; access_log x.log combined flush=1s; }',
     'no buffer is defined for access_log "x.log"', 3),
    ('server { listen 8080; access_log /tmp/$uri.log combined buffer=4k; }',
     'buffered logs cannot have variables in name', 3),
    ('server { listen 8080; log_subrequest yes; }',
     'invalid value "yes" in "log_subrequest" directive, it must be "on" or "off"', 3),
    ('server { listen 8080; add_header X y foo; }', 'invalid parameter "foo"', 3),
    ('server { listen 8080; keepalive_timeout 1 2 3; }',
     'invalid number of arguments in "keepalive_timeout" directive', 3),
    ('server { listen 8080; root /a; alias /b; }', '"alias" directive is not allowed here', 3),
    ('server { listen 8080; location /a { root /a; alias /b; } }',
     '"alias" directive is duplicate, "root" directive was specified earlier', 3),
    ('server { listen 8080; proxy_redirect a; }', 'invalid parameter "a"', 3),
    ('server { listen 8080; proxy_next_upstream foo; }', 'invalid value "foo"', 3),
    ('server { listen 8080; error_log /tmp/x foo; }', 'invalid log level "foo"', 3),
    ('server { listen 8080; large_client_header_buffers 4 x; }',
     '"large_client_header_buffers" directive invalid value', 3),
    ('server { listen 8080; keepalive_requests x; }', '"keepalive_requests" directive invalid number', 3),
    ('server { listen 8080; location / { if ($uri) { proxy_set_header A b; } } }',
     '"proxy_set_header" directive is not allowed here', 3),
    ('server { listen 8080; events {} }', '"events" directive is not allowed here', 3),
    ('server { listen 8080; worker_processes 1; }', '"worker_processes" directive is not allowed here', 3),
    # structure errors come before unknown variables, as in nginx
    ('server { listen 8080; if ($a) { proxy_pass http://x; } }',
     '"proxy_pass" directive is not allowed here', 3),
    # PCRE's own verdict (libpcre2, as nginx asks it), in location, server_name, map, rewrite, if
    ('server { listen 8080; location ~ "(" { } }',
     'pcre2_compile() failed: missing closing parenthesis in "("', 3),
    ('server { listen 8080; server_name "~^(www\\.)?x[a-"; }',
     'pcre2_compile() failed: missing terminating ] for character class in "^(www\\.)?x[a-"', 3),
    ('map $uri $m { "~a{2,1}" 1; } server { listen 8080; }',
     'pcre2_compile() failed: numbers out of order in {} quantifier in "a{2,1}" at "}"', 3),
    ('server { listen 8080; rewrite "^/(?<n>a)(?<n>b)" /x; }',
     'pcre2_compile() failed: two named subpatterns have the same name (PCRE2_DUPNAMES not set)'
     ' in "^/(?<n>a)(?<n>b)" at "b)"', 3),
    ('server { listen 8080; if ($uri ~ "\\x{100}") { return 404; } }',
     'pcre2_compile() failed: character code point value in \\x{} or \\o{} is too large'
     ' in "\\x{100}" at "}"', 3),
]

# nginx reports these without file:line (it checks variables after reading everything); ngate
# keeps file:line.
DIFFERENT = [
    ('server { listen 8080; location / { return 200 "$foo"; } }', 'unknown "foo" variable', 3,
     'unknown "foo" variable'),
]


def _expected(tmp_path, message: str, line: int) -> str:
    conf = str(tmp_path / "nginx.conf")
    return f"{message.replace('{dir}', str(tmp_path))} in {conf}:{line}"


@pytest.mark.parametrize("http,message,line", CASES)
def test_error_text(tmp_path, http, message, line):
    conf = write_conf(tmp_path, http)
    assert ngate_error(conf, str(tmp_path)) == _expected(tmp_path, message, line)


@pytest.mark.parametrize("http,message,line,nginx_says", DIFFERENT)
def test_error_text_where_ngate_differs(tmp_path, http, message, line, nginx_says):
    conf = write_conf(tmp_path, http)
    assert ngate_error(conf, str(tmp_path)) == _expected(tmp_path, message, line)


def _need_nginx():
    if not nginx_available():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is required under CI")
        pytest.skip("nginx is not installed")


@pytest.mark.parametrize("http,message,line", CASES)
def test_nginx_says_the_same(tmp_path, http, message, line):
    _need_nginx()
    conf = write_conf(tmp_path, http)
    assert nginx_error(conf, str(tmp_path)) == _expected(tmp_path, message, line)


@pytest.mark.parametrize("http,message,line,nginx_says", DIFFERENT)
def test_nginx_wording_of_known_differences(tmp_path, http, message, line, nginx_says):
    _need_nginx()
    conf = write_conf(tmp_path, http)
    assert nginx_error(conf, str(tmp_path)) == nginx_says.replace("{conf}", conf)


@pytest.mark.parametrize("main,message,where", [
    ("http {}\n", 'no "events" section in configuration', None),
    ("events {}\nworker_processes x;\n", '"worker_processes" directive invalid value', 2),
    ("events { worker_connections x; }\n", 'invalid number "x"', 1),
    ("events {}\nevents {}\n", '"events" directive is duplicate', 2),
    ("events {}\nworker_connections 5;\n", '"worker_connections" directive is not allowed here', 2),
])
def test_main_context_errors(tmp_path, main, message, where):
    conf = tmp_path / "nginx.conf"
    conf.write_text(main)
    with pytest.raises(ConfigError) as e:
        load_config(str(conf), str(tmp_path))
    assert str(e.value) == (message if where is None else f"{message} in {conf}:{where}")


@pytest.mark.parametrize("globals_,message", [
    ("daemon off; foo;", 'unknown directive "foo" in command line'),
    ("daemon off", 'unexpected end of parameter, expecting ";" in command line'),
])
def test_global_directive_errors(tmp_path, globals_, message):
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(conf), str(tmp_path), global_directives=globals_)
    assert str(e.value) == message


def test_global_directive_duplicated_in_file(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\ndaemon off;\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(conf), str(tmp_path), global_directives="daemon off;")
    assert str(e.value) == f'"daemon" directive is duplicate in {conf}:2'


def test_error_in_included_file_names_that_file(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text("server {\n  listen 80;\n  bogus on;\n}\n")
    conf = write_conf(tmp_path, "include conf.d/*.conf;")
    assert ngate_error(conf, str(tmp_path)) == \
        f'unknown directive "bogus" in {tmp_path}/conf.d/a.conf:3'
