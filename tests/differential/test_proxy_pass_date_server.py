"""proxy_pass_header Date / Server: the upstream's header replaces nginx's own, and when the
upstream sent none the response has none (nginx fills the slot with an empty placeholder)."""
import pytest

from tests.harness.backend import Reply
from tests.harness.client import build_request, exchange

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        location / {
            proxy_pass http://127.0.0.1:{backend_port};
        }
        location /pass/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_pass_header Date;
            proxy_pass_header Server;
            location /pass/nested/ {
                proxy_pass http://127.0.0.1:{backend_port};
            }
        }
        location /date/ {
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_pass_header Date;
        }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    d = differential(CONF)
    with_both = Reply(headers=[(b"X-A", b"1"), (b"Date", b"passed"), (b"Server", b"up")])
    for path in ("/with", "/pass/with", "/pass/nested/with", "/date/with"):
        d.backend.route(path, with_both)
    for path in ("/none", "/pass/none", "/pass/nested/none", "/date/none"):
        d.backend.route(path, Reply(headers=[(b"X-A", b"1")]))
    return d


@pytest.mark.parametrize("target,names,values", [
    ("/with", [b"server", b"date", b"content-length", b"connection", b"x-a"], {}),
    ("/pass/with", [b"content-length", b"connection", b"x-a", b"date", b"server"],
     {b"date": b"passed", b"server": b"up"}),
    ("/pass/none", [b"content-length", b"connection", b"x-a"], {}),
    ("/pass/nested/none", [b"content-length", b"connection", b"x-a"], {}),   # inherited
    ("/date/with", [b"server", b"content-length", b"connection", b"x-a", b"date"],
     {b"date": b"passed"}),
    ("/date/none", [b"server", b"content-length", b"connection", b"x-a"], {}),
])
def test_passed_date_and_server(diff, target, names, values):
    diff.check_request("GET", target)
    for kind in diff.procs:
        r = diff.run(kind, lambda port: exchange(port, build_request("GET", target)))
        r = r.result[0]
        assert [n.lower() for n, _ in r.headers] == names, kind
        assert {n: r.header(n) for n in values} == values, kind
