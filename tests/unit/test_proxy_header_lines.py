"""proxy_set_header NAME $http_x: the client's header bytes go upstream as they came (the
request head's HEADER lines, proxy/proxy_request.py), as the variable would render them."""
import pytest

from ngate.proxy.proxy_request import HEADER, TEMPLATE, Plan, build_request_head
from tests.unit._config_helpers import load_http

CONF = """server { listen 127.0.0.1:8080;
    location /ws { proxy_pass http://127.0.0.1:9; proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";
        proxy_set_header X-Foo $http_x_foo; proxy_set_header X-Both "$http_x_foo!"; }
}"""


class Ctx:
    def __init__(self, conf, headers) -> None:
        self.conf = conf
        self.method = "GET"
        self.cache = None
        self.headers = headers
        self.hdr = {}
        for n, v in headers:
            self.hdr.setdefault(n.lower(), v)


def _lines(head: bytes) -> list:
    return head.split(b"\r\n")[1:-2]


@pytest.mark.parametrize("headers, upgrade, foo", [
    ([(b"Upgrade", b"websocket")], b"websocket", None),
    ([(b"Upgrade", b"WebSocket \xe9"), (b"X-Foo", b"1")], b"WebSocket \xe9", b"1"),
    ([(b"Upgrade", b""), (b"x_foo", b"under")], None, b"under"),   # empty: never sent
    ([], None, None),
])
def test_http_variable_lines(tmp_path, headers, upgrade, foo):
    conf = load_http(tmp_path, CONF).servers[0].locations[0].conf
    plan = Plan(conf)
    kinds = {name: kind for kind, name, _ in plan.items}
    assert kinds[b"Upgrade"] is HEADER and kinds[b"X-Foo"] is HEADER
    assert kinds[b"X-Both"] is TEMPLATE
    ctx = Ctx(conf, headers)
    lines = _lines(build_request_head(ctx, plan, "/ws", None, False))
    assert (b"Upgrade: " + upgrade in lines) if upgrade is not None else \
        not any(x.startswith(b"Upgrade:") for x in lines)
    assert (b"X-Foo: " + foo in lines) if foo is not None else \
        not any(x.startswith(b"X-Foo:") for x in lines)
    # the same values as the variables render them
    for name in (b"Upgrade", b"X-Foo", b"X-Both"):
        item = next(v for k, n, v in plan.items if n == name)
        text = item.render(ctx)
        want = [name + b": " + text.encode("latin-1")] if text else []
        assert [x for x in lines if x.startswith(name + b":")] == want
