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
        assert cfg.servers[0].conf.add_header[0].value.render(ctx()) == name


def test_handlers_and_plans_are_chosen_when_the_config_compiles(tmp_path):
    cfg = load(tmp_path, "only")
    server = cfg.servers[0]
    proxied = server.locations[0].conf
    assert server.conf.content is static.static_handler
    assert proxied.content is http_proxy.proxy_handler
    assert proxied.upstream_plan is not None and server.conf.upstream_plan is None
    assert proxied.access_steps == () and proxied.precontent_steps == ()
