"""Two configurations loaded in one process keep their own compiled state (issue 13): map
variables, handlers and plans live on each config, not in module globals or id() caches."""
from __future__ import annotations

from ngate.http.context import RequestContext
from ngate.proxy import http_proxy
from ngate.static import handler as static
from tests.unit._config_helpers import load_http

HTTP = """
map $http_x_in $who {{ default {who}; }}
server {{
    listen 127.0.0.1:8080;
    add_header X-Who $who;
    location /p/ {{ proxy_pass http://127.0.0.1:9/; proxy_set_header X-Who $who; }}
}}
"""


def load(tmp_path, name: str):
    path = tmp_path / name
    path.mkdir()
    return load_http(path, HTTP.format(who=name))


def ctx() -> RequestContext:
    return RequestContext(None, "GET", "/", "1.1", [], {})


def test_each_config_renders_its_own_map(tmp_path):
    first = load(tmp_path, "first")
    second = load(tmp_path, "second")       # loading it used to replace the first one's maps
    for cfg, name in ((first, "first"), (second, "second")):
        assert cfg.servers[0].conf.headers.add_header[0].value.render(ctx()) == name


def test_handlers_and_plans_are_chosen_when_the_config_compiles(tmp_path):
    cfg = load(tmp_path, "only")
    server = cfg.servers[0]
    proxied = server.locations[0].conf
    assert server.conf.content is static.static_handler
    assert proxied.content is http_proxy.proxy_handler
    assert proxied.upstream_plan is not None and server.conf.upstream_plan is None
    assert proxied.access_steps == () and proxied.precontent_steps == ()


def test_a_header_variable_set_elsewhere_still_reads_the_header(tmp_path):
    """nginx (ngx_http_add_prefix_variable; nginx-tests rewrite_set.t): `set $http_bar` in one
    location does not hide the Bar header from $http_bar where it is not set."""
    cfg = load_http(tmp_path, """
server {
    listen 127.0.0.1:8080;
    location /other { set $http_bar "set"; }
    location / { add_header X-Bar "[$http_bar]"; }
}
""")
    header = cfg.servers[0].locations[1].conf.headers.add_header[0].value
    hdr = {b"bar": b"from-client"}
    assert header.render(RequestContext(None, "GET", "/", "1.1", list(hdr.items()), hdr)) \
        == "[from-client]"
    set_ctx = RequestContext(None, "GET", "/", "1.1", list(hdr.items()), hdr)
    set_ctx.vars = {"http_bar": "set"}
    assert header.render(set_ctx) == "[set]"
