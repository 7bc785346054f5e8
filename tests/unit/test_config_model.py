"""Compiled model: inheritance, arrays replace-not-merge, proxy_pass forms, upstreams, map,
server names, listen forms, rewrite ops, paths, includes and the bundled defaults."""
from __future__ import annotations

import operator
import os

import pytest

from ngate.config.loader import DEFAULT_CONF, dump_config, load_config
from ngate.config.model import IfOp, ReturnOp, RewriteOp, SetOp
from tests.unit._config_helpers import load_http, write_conf


def server(tmp_path, body: str, http: str = ""):
    cfg = load_http(tmp_path, http + "\nserver { listen 8080;\n" + body + "\n}")
    return cfg, cfg.servers[0]


def loc(srv, pattern: str):
    return next(l for l in srv.locations if l.pattern == pattern)


def headers(conf) -> list[tuple[str, str]]:
    return [(h.name, h.value.text) for h in conf.proxy.set_header]


# ---------------------------------------------------------------- inheritance

def test_scalar_innermost_wins(tmp_path):
    _, srv = server(tmp_path, "proxy_read_timeout 30s;"
                    " location /a { proxy_read_timeout 5s; location /a/b { } }"
                    " location /c { }", http="proxy_read_timeout 1m;")
    assert srv.conf.proxy.read_timeout == 30.0
    assert loc(srv, "/a").conf.proxy.read_timeout == 5.0
    assert loc(srv, "/a").locations[0].conf.proxy.read_timeout == 5.0
    assert loc(srv, "/c").conf.proxy.read_timeout == 30.0


def test_array_replaced_not_merged(tmp_path):
    _, srv = server(tmp_path, "proxy_set_header X-B b;"
                    " location /a { proxy_set_header X-C c; proxy_set_header X-D d; }"
                    " location /e { }", http="proxy_set_header X-A a;")
    assert headers(srv.conf) == [("X-B", "b")]
    assert headers(loc(srv, "/a").conf) == [("X-C", "c"), ("X-D", "d")]
    assert headers(loc(srv, "/e").conf) == [("X-B", "b")]
    assert loc(srv, "/e").conf.proxy.set_header_given


@pytest.mark.parametrize("outer,inner,field", [
    ("add_header A 1;", "add_header B 2 always;", "headers.add_header"),
    ("error_page 404 /a.html;", "error_page 500 /b.html;", "error_page"),
    ("proxy_hide_header X-A;", "proxy_hide_header X-B;", "proxy.hide_header"),
    ("access_log /tmp/a.log;", "access_log off;", "log.access_log"),
])
def test_other_arrays_replace(tmp_path, outer, inner, field):
    _, srv = server(tmp_path, outer + " location /a { " + inner + " } location /b { }")
    get = operator.attrgetter(field)
    a, b = get(loc(srv, "/a").conf), get(loc(srv, "/b").conf)
    assert len(a) == 1 and len(b) == 1 and a != b
    assert b == get(srv.conf)


def test_proxy_pass_not_inherited_by_nested_location_but_by_if(tmp_path):
    _, srv = server(tmp_path, "location /a { proxy_pass http://127.0.0.1:9000;"
                    " if ($uri) { add_header X 1; } location /a/b { } }")
    a = loc(srv, "/a")
    assert a.locations[0].conf.proxy.pass_ is None
    (op,) = a.conf.rewrite.ops
    assert isinstance(op, IfOp) and op.conf.proxy.pass_ is a.conf.proxy.pass_
    assert [h.name for h in op.conf.headers.add_header] == ["X"] and a.conf.headers.add_header == ()


def test_rewrite_ops_stay_on_their_level(tmp_path):
    _, srv = server(tmp_path, "set $x 1; rewrite ^/old /new last;"
                    " location /a { return 301 https://$host$request_uri; }"
                    " location /b { if ($x = 1) { set $y 2; break; } }")
    assert [type(o) for o in srv.conf.rewrite.ops] == [SetOp, RewriteOp]
    assert srv.conf.rewrite.ops[1].flag == "last"
    (ret,) = loc(srv, "/a").conf.rewrite.ops
    assert (ret.code, ret.text.text) == (301, "https://$host$request_uri")
    (iff,) = loc(srv, "/b").conf.rewrite.ops
    assert iff.condition.kind == "=" and iff.condition.right.text == "1"
    assert [type(o).__name__ for o in iff.ops] == ["SetOp", "BreakOp"]
    assert iff.conf.rewrite.ops == ()


@pytest.mark.parametrize("text,code,body", [
    ("return 404;", 404, None),
    ("return http://x/;", 302, "http://x/"),
    ('return 200 "hi";', 200, "hi"),
    ("return 444;", 444, None),
])
def test_return_forms(tmp_path, text, code, body):
    _, srv = server(tmp_path, text)
    (op,) = srv.conf.rewrite.ops
    assert isinstance(op, ReturnOp) and op.code == code
    assert (op.text.text if op.text else None) == body


def test_rewrite_to_url_is_a_redirect(tmp_path):
    _, srv = server(tmp_path, "rewrite ^/(.*)$ https://example.com/$1;")
    assert srv.conf.rewrite.ops[0].flag == "redirect"


@pytest.mark.parametrize("cond,kind", [
    ("$http_upgrade", "var"), ("$uri != /x", "!="), ("$uri ~ ^/a", "~"), ("$uri ~* ^/a", "~*"),
    ("$uri !~ ^/a", "!~"), ("$uri !~* ^/a", "!~*"), ("-f $request_filename", "-f"),
    ("!-d $request_filename", "!-d"), ("-e /tmp", "-e"), ("!-x /bin/sh", "!-x"),
])
def test_if_conditions(tmp_path, cond, kind):
    _, srv = server(tmp_path, f"if ({cond}) {{ return 403; }}")
    (op,) = srv.conf.rewrite.ops
    assert op.condition.kind == kind
    if kind.endswith("~*"):
        assert op.condition.right.match("/A")


# ---------------------------------------------------------------- proxy_pass

def test_proxy_pass_forms(tmp_path):
    cfg, srv = server(tmp_path, """
        location /plain { proxy_pass http://127.0.0.1:9001; }
        location /app/ { proxy_pass http://127.0.0.1:9001/v1/; }
        location /named { proxy_pass http://backend; }
        location /host { proxy_pass http://localhost; }
        location /sock { proxy_pass http://unix:/tmp/app.sock:/x/; }
        location /var { proxy_pass http://$host:9001$request_uri; }
        location /tls { proxy_pass https://127.0.0.1; }
    """, http="upstream backend { server 127.0.0.1:9002; server 127.0.0.1:9003 backup; }")
    plain = loc(srv, "/plain").conf.proxy.pass_
    assert (plain.scheme, plain.host_header, plain.uri) == ("http", "127.0.0.1:9001", None)
    assert [(s.host, s.port, s.name) for s in plain.upstream.servers] == \
        [("127.0.0.1", 9001, "127.0.0.1:9001")]
    assert plain.upstream.implicit
    app = loc(srv, "/app/").conf.proxy.pass_
    assert (app.uri, app.location_prefix) == ("/v1/", "/app/")
    assert app.upstream is plain.upstream      # one implicit group per host:port
    named = loc(srv, "/named").conf.proxy.pass_
    assert named.upstream is cfg.upstreams["backend"] and named.host_header == "backend"
    host = loc(srv, "/host").conf.proxy.pass_
    assert host.host_header == "localhost" and all(s.port == 80 for s in host.upstream.servers)
    assert {s.host for s in host.upstream.servers} <= {"127.0.0.1", "::1"}
    sock = loc(srv, "/sock").conf.proxy.pass_
    assert (sock.upstream.servers[0].unix, sock.uri) == ("/tmp/app.sock", "/x/")
    var = loc(srv, "/var").conf.proxy.pass_
    assert var.template.text == "http://$host:9001$request_uri" and var.upstream is None
    tls = loc(srv, "/tls").conf.proxy.pass_
    assert tls.scheme == "https" and tls.upstream.servers[0].port == 443
    assert tls.host_header == "127.0.0.1"


def test_upstream_defined_after_use(tmp_path):
    cfg = load_http(tmp_path, "server { listen 8080; location / { proxy_pass http://late; } }\n"
                    "upstream late { server 127.0.0.1:9005; }")
    assert cfg.servers[0].locations[0].conf.proxy.pass_.upstream is cfg.upstreams["late"]


def test_upstream_parameters(tmp_path):
    cfg = load_http(tmp_path, """upstream u {
        least_conn;
        server 127.0.0.1:1 weight=5 max_fails=3 fail_timeout=30s;
        server 127.0.0.1:2 backup;
        server 127.0.0.1:3 down;
        server unix:/tmp/u.sock;
        keepalive 16; keepalive_timeout 30s; keepalive_requests 50;
    }
    upstream h { hash $request_uri consistent; server 127.0.0.1:4; }""")
    u = cfg.upstreams["u"]
    assert u.balancer == "least_conn" and (u.keepalive, u.keepalive_timeout,
                                           u.keepalive_requests) == (16, 30.0, 50)
    s1, s2, s3, s4 = u.servers
    assert (s1.weight, s1.max_fails, s1.fail_timeout) == (5, 3, 30.0)
    assert s2.backup and s3.down and s4.unix == "/tmp/u.sock"
    assert cfg.upstreams["h"].balancer == "hash_consistent"
    assert cfg.upstreams["h"].hash_key.text == "$request_uri"


def test_proxy_settings(tmp_path):
    _, srv = server(tmp_path, """location / {
        proxy_pass http://127.0.0.1:1; proxy_http_version 1.1;
        proxy_connect_timeout 500ms; proxy_send_timeout 2m; proxy_buffering off;
        proxy_next_upstream error timeout http_502; proxy_next_upstream_tries 3;
        proxy_pass_request_body off; proxy_intercept_errors on; proxy_method POST;
        proxy_redirect default; proxy_redirect ~^http://a(.*)$ /b$1;
        proxy_pass_header X-Accel-Buffering; proxy_buffers 8 16k; }""")
    c = srv.locations[0].conf
    assert c.proxy.http_version == "1.1" and c.proxy.connect_timeout == 0.5
    assert c.proxy.send_timeout == 120.0 and not c.proxy.buffering
    assert c.proxy.next_upstream == {"error", "timeout", "http_502"}
    assert c.proxy.next_upstream_tries == 3 and not c.proxy.pass_request_body
    assert c.proxy.intercept_errors and c.proxy.method.text == "POST"
    assert c.proxy.redirect.default and c.proxy.redirect.rules[0][0].pattern == "^http://a(.*)$"
    assert c.proxy.pass_header == {b"x-accel-buffering"}
    assert not hasattr(c, "extra")           # class 2 (proxy_buffers): checked, no effect


def test_proxy_redirect_off(tmp_path):
    _, srv = server(tmp_path, "proxy_redirect off;")
    assert srv.conf.proxy.redirect.off and not srv.conf.proxy.redirect.default


# ---------------------------------------------------------------- listen and server_name

@pytest.mark.parametrize("text,key,attrs", [
    ("8080", ("0.0.0.0", 8080), {}),
    ("127.0.0.1:8081", ("127.0.0.1", 8081), {}),
    ("[::1]:8082 ipv6only=off", ("::1", 8082), {"ipv6only": False}),
    ("*:8083 default_server", ("0.0.0.0", 8083), {"default_server": True}),
    ("8084 default reuseport backlog=100", ("0.0.0.0", 8084),
     {"default_server": True, "reuseport": True, "backlog": 100}),
    ("8085 ssl http2; ssl_reject_handshake on", ("0.0.0.0", 8085), {"ssl": True, "http2": True}),
    ("unix:/tmp/ngate.sock", ("unix", "/tmp/ngate.sock"), {}),
    ("localhost:8086", ("127.0.0.1", 8086), {}),
])
def test_listen_forms(tmp_path, text, key, attrs):
    cfg = load_http(tmp_path, f"server {{ listen {text}; }}")
    (lst,) = cfg.servers[0].listens
    assert lst.key == key
    for name, value in attrs.items():
        assert getattr(lst, name) == value


def test_server_without_listen(tmp_path):
    cfg = load_http(tmp_path, "server { }")
    assert cfg.servers[0].listens[0].key == ("0.0.0.0", 80 if os.geteuid() == 0 else 8000)


def test_by_listen_default_server(tmp_path):
    cfg = load_http(tmp_path, "server { listen 8080; server_name a; }"
                    " server { listen 8080 default_server; server_name b; }"
                    " server { listen 8081; server_name c; } server { listen 8081; server_name d; }")
    a, b, c, d = cfg.servers
    assert cfg.by_listen[("0.0.0.0", 8080)][0] is b
    assert cfg.by_listen[("0.0.0.0", 8080)][1] == (a, b)
    assert cfg.by_listen[("0.0.0.0", 8081)][0] is c


def test_server_name_kinds(tmp_path):
    cfg = load_http(tmp_path, 'server { listen 80; server_name Example.com *.wild.com .dot.com'
                    ' www.back.* ~^(?<sub>\\w+)\\.re\\.com$ _ ""; }')
    names = cfg.servers[0].names
    assert names.first == "example.com"      # nginx lower-cases $server_name
    assert names.exact == {"example.com", "dot.com", "_", ""}
    assert names.wildcard_front == (".wild.com", ".dot.com")
    assert names.wildcard_back == ("www.back.",)
    assert names.regexes[0].match("API.re.com").group("sub") == "API"


def test_server_without_server_name(tmp_path):
    cfg = load_http(tmp_path, "server { listen 80; }")
    assert cfg.servers[0].names.first == "" and cfg.servers[0].names.exact == {""}


# ---------------------------------------------------------------- locations

def test_location_kinds_and_nesting(tmp_path):
    _, srv = server(tmp_path, """
        location = /exact { } location ^~ /static/ { } location ~ \\.php$ { }
        location ~* \\.(?<ext>png|jpg)$ { } location /api/ { location /api/v1/ { } }
        location @fallback { return 502; }""")
    mods = [(l.modifier, l.pattern) for l in srv.locations]
    assert mods == [("=", "/exact"), ("^~", "/static/"), ("~", "\\.php$"),
                    ("~*", "\\.(?<ext>png|jpg)$"), ("", "/api/")]
    assert loc(srv, "\\.(?<ext>png|jpg)$").regex.search("/A.PNG").group("ext") == "PNG"
    php = loc(srv, "\\.php$").regex
    assert php.search("/x.php") and not php.search("/xphp")
    assert loc(srv, "/api/").locations[0].pattern == "/api/v1/"
    assert srv.named_locations["@fallback"].conf.rewrite.ops[0].code == 502


def test_matchers_are_built(tmp_path):
    _, srv = server(tmp_path, "location /a { location /a/b { } }")
    from ngate.config.compile import build_matcher
    if build_matcher((srv.locations[0],)) is None:
        pytest.skip("routing/locations.py is not there yet")
    assert srv.matcher is not None and srv.locations[0].matcher is not None
    assert srv.locations[0].locations[0].matcher is None


# ---------------------------------------------------------------- map, logs, core

def test_map_block(tmp_path):
    cfg = load_http(tmp_path, """map $http_upgrade $connection_upgrade {
        default upgrade; '' close; WebSocket ws; ~*^h2(?<rest>.*)$ $rest; }
        map $host $site { hostnames; volatile; *.a.com wild; www.b.* back; c.com exact; }
        server { listen 80; proxy_set_header Connection $connection_upgrade; }""")
    m = cfg.maps["connection_upgrade"]
    assert m.source.text == "$http_upgrade" and m.default.text == "upgrade"
    assert m.exact[""].text == "close" and m.exact["websocket"].text == "ws"
    assert m.regexes[0][0].match("H2c").group("rest") == "c"
    s = cfg.maps["site"]
    assert s.hostnames and s.volatile and s.wild_front[0][0] == ".a.com"
    assert s.wild_back[0][0] == "www.b." and "c.com" in s.exact
    assert cfg.user_vars.maps["site"] is s      # the config's own (no module-global MAPS)


def test_log_formats_and_access_log(tmp_path):
    cfg, srv = server(tmp_path, "access_log logs/a.log main buffer=32k if=$loggable;"
                      " access_log /tmp/b.log;",
                      http="log_format main escape=json '{\"u\":\"$uri\",' '\"s\":$status}';"
                           " map $status $loggable { default 1; }")
    assert "combined" in cfg.log_formats
    main = cfg.log_formats["main"]
    assert main.escape == "json" and main.template.text == '{"u":"$uri","s":$status}'
    a, b = srv.conf.log.access_log
    assert a.path == str(tmp_path / "logs/a.log") and a.format is main
    assert a.condition.text == "$loggable" and b.format.name == "combined"


def test_core_settings_and_paths(tmp_path):
    cfg, srv = server(tmp_path, """client_max_body_size 10m; keepalive_timeout 65;
        large_client_header_buffers 8 16k; underscores_in_headers on; root html/site/;
        error_page 500 502 =200 /50x.html; error_page 404 = @missing; index a.html b.html;
        location /x { alias /srv/x/; default_type application/json; types { text/x-y xy; } }""",
        http="client_header_timeout 10s; server_tokens off; sendfile on;")
    c = srv.conf
    assert c.client_max_body_size == 10 * 1024 * 1024 and c.keepalive_timeout == 65.0
    assert srv.large_client_header_buffers == (8, 16384) and srv.underscores_in_headers
    assert srv.client_header_timeout == 10.0 and not c.server_tokens
    assert c.root.text == str(tmp_path / "html/site") and c.static.index == ("a.html", "b.html")
    pages = {code: (p.uri.text, p.override) for code, p in c.error_page}
    assert pages == {500: ("/50x.html", 200), 502: ("/50x.html", 200), 404: ("@missing", -1)}
    x = loc(srv, "/x").conf
    assert x.alias.text == "/srv/x/" and x.default_type == "application/json"
    assert dict(x.types) == {"xy": "text/x-y"}
    assert cfg.http_conf.root.text == str(tmp_path / "html")


def test_main_directives(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text("daemon off; master_process off; worker_processes auto; pid run/x.pid;\n"
                    "worker_shutdown_timeout 10s; worker_rlimit_nofile 4096; user nobody nogroup;\n"
                    "error_log logs/err.log warn;\n"
                    "events { worker_connections 64; multi_accept on; use epoll; }\n")
    m = load_config(str(conf), str(tmp_path), global_directives="").main
    assert (m.daemon, m.master_process, m.worker_processes) == (False, False, os.cpu_count())
    assert m.pid == str(tmp_path / "run/x.pid") and m.worker_shutdown_timeout == 10.0
    user = ("nobody", "nogroup") if os.geteuid() == 0 else (None, None)   # else ignored, warned
    assert (m.worker_rlimit_nofile, (m.user, m.group), m.worker_connections) == (4096, user, 64)
    assert m.error_log[0].path == str(tmp_path / "logs/err.log")
    assert m.error_log[0].level == "warn"


def test_global_directives_apply(tmp_path):
    conf = write_conf(tmp_path, "")
    cfg = load_config(conf, str(tmp_path), global_directives="daemon off; worker_processes 2;")
    assert not cfg.main.daemon and cfg.main.worker_processes == 2


# ---------------------------------------------------------------- files

def test_include_glob_and_bundled_fallback(tmp_path):
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "b.conf").write_text("server { listen 8002; }\n")
    (tmp_path / "sites" / "a.conf").write_text("server { listen 8001; }\n")
    conf = write_conf(tmp_path, "include mime.types; include sites/*.conf; include none/*.conf;"
                      " server { listen 8003; location / { include fastcgi_params; } }")
    cfg = load_config(conf, str(tmp_path))
    assert [s.listens[0].port for s in cfg.servers] == [8001, 8002, 8003]
    assert cfg.http_conf.types["css"] == "text/css"
    params = cfg.servers[2].locations[0].conf.fastcgi.param
    assert ("QUERY_STRING", "$query_string") in [(p.name, p.value.text) for p in params]
    dump = dump_config(cfg)
    assert dump.startswith(f"# configuration file {conf}:\nevents {{}}\n")
    assert f"# configuration file {tmp_path}/sites/a.conf:\nserver {{ listen 8001; }}\n\n" in dump
    assert "/defaults/mime.types:\n" in dump


def test_quoting_and_escapes(tmp_path):
    _, srv = server(tmp_path, "add_header X-A \"a\\\"b\"; add_header X-B 'c d';"
                    " add_header X-C \"line\\n\";")
    assert [h.value.text for h in srv.conf.headers.add_header] == ['a"b', "c d", "line\n"]


def test_bundled_default_config():
    cfg = load_config(DEFAULT_CONF)
    assert not cfg.main.daemon and cfg.main.master_process and cfg.main.worker_processes == 1
    assert cfg.main.error_log[0].path == "stderr" and os.path.isabs(cfg.main.pid)
    (srv,) = cfg.servers
    assert srv.listens[0].key == ("127.0.0.1", 8080) and srv.listens[0].default_server
    op = srv.locations[0].conf.rewrite.ops[0]
    assert op.code == 200 and "Welcome to ngate" in op.text.text
    assert srv.locations[0].conf.default_type == "text/html"


@pytest.mark.skipif(not os.path.exists("/etc/nginx/nginx.conf"), reason="no Debian nginx.conf")
def test_debian_default_nginx_conf_loads():
    cfg = load_config("/etc/nginx/nginx.conf")
    assert cfg.main.user == ("www-data" if os.geteuid() == 0 else None)
    assert cfg.main.worker_connections == 768
    assert cfg.http_conf.default_type == "application/octet-stream"
    assert any(l.key == ("::", 80) for s in cfg.servers for l in s.listens)
