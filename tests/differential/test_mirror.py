"""mirror / mirror_request_body through nginx and ngate: the client's response is the main
location's, and the mirror backend receives one copy per `mirror` URI with the main request's
method, arguments, headers and (unless `mirror_request_body off`) its body, Content-Length or
chunked alike; `mirror off` and nested locations; a mirror that fails does not touch the client."""
import time

import pytest

from tests.harness.client import build_request, exchange
from tests.harness.differential import render_requests, render_result

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        location / {
            mirror /m1;
            mirror /m2;
            proxy_pass http://127.0.0.1:{main_port};
            location /off/ { mirror off; proxy_pass http://127.0.0.1:{main_port}; }
        }
        location /nobody/ {
            mirror /m1;
            mirror_request_body off;
            proxy_pass http://127.0.0.1:{main_port};
        }
        location /dead/ { mirror /_dead; proxy_pass http://127.0.0.1:{main_port}; }
        location /static/ { mirror /m1; return 200 "static $args\\n"; }
        location /m { internal; proxy_pass http://127.0.0.1:{mirror_port}; }
        location /_dead { internal; proxy_pass http://127.0.0.1:{dead_port}; }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF, backends=("main", "mirror"))


def _script(raw: bytes, method: str, mirrors: int, backend):
    """Send `raw`, read the response, then wait (bounded) for the mirror copies to arrive."""
    def run(port):
        mark = backend.mark()
        result = exchange(port, raw, method=method)
        end = time.monotonic() + 5
        while len(backend.since(mark)) < mirrors and time.monotonic() < end:
            time.sleep(0.02)
        time.sleep(0.1)             # a copy too many would show here
        return result
    return run


def check(diff, raw: bytes, method: str = "GET", mirrors: int = 0):
    backend = diff.backends["mirror"]
    outcomes = [diff.run(kind, _script(raw, method, mirrors, backend)) for kind in diff.procs]
    views = []
    for o in outcomes:
        ports = {str(p).encode() for k, p in diff.procs[o.kind].params.items() if k == "port"}
        lines = render_result(o.result, ports)
        lines += render_requests("main", o.seen["main"])
        # the two mirrors run concurrently: compare their copies in URI order
        lines += render_requests("mirror", sorted(o.seen["mirror"], key=lambda r: r.target))
        views.append("\n".join(lines))
    assert views[0] == views[1], f"{outcomes[0].kind}:\n{views[0]}\n\n{outcomes[1].kind}:\n{views[1]}"
    assert len(outcomes[0].seen["mirror"]) == mirrors
    return outcomes[0]


def test_get_is_mirrored_with_its_arguments(diff):
    o = check(diff, build_request("GET", "/a/b?x=1&y=2", headers=[(b"X-Test", b"1")]), mirrors=2)
    assert sorted(r.target for r in o.seen["mirror"]) == [b"/m1?x=1&y=2", b"/m2?x=1&y=2"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_method_and_body_are_mirrored(diff, method):
    o = check(diff, build_request(method, "/p?q", body=b"hello world"), method, mirrors=2)
    assert all(r.body == b"hello world" and r.method == method.encode()
               for r in o.seen["mirror"])


def test_chunked_body_is_mirrored(diff):
    raw = build_request("POST", "/c", headers=[(b"Transfer-Encoding", b"chunked")],
                        body=b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    o = check(diff, raw, "POST", mirrors=2)
    assert all(r.body == b"hello world" for r in o.seen["mirror"])


def test_mirror_request_body_off(diff):
    # nginx passes the client's Content-Length on with no body (its documented caveat)
    raw = build_request("GET", "/nobody/x", headers=[(b"X-A", b"b")])
    check(diff, raw, mirrors=1)


def test_mirror_off_in_a_nested_location(diff):
    check(diff, build_request("GET", "/off/x"), mirrors=0)


def test_return_answers_before_the_mirrors_run(diff):
    # `return` is the rewrite phase: precontent, where mirror runs, is never reached
    check(diff, build_request("GET", "/static/x?k=v"), mirrors=0)


def test_a_failing_mirror_does_not_touch_the_response(diff):
    o = check(diff, build_request("GET", "/dead/x"), mirrors=0)
    assert o.result[0].status == 200
