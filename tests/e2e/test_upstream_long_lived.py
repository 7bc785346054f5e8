"""A long-lived upstream keep-alive connection, on nginx and ngate: one connection serves a
client's requests in turn (GETs, a chunked response, a POST with a body) before and after
ngate hands an idle raw-socket upstream connection to uvloop's transport (upstream/pool.py
hand_over_raw, at a tick of its coarse deadlines on a quiet loop), and the peer's close of it
while idle in the pool is noticed: the next request opens a new one."""
import time

from tests.harness.backend import Reply
from tests.harness.client import Connection, build_request

CONF = """
http {
    upstream u {
        server 127.0.0.1:{backend_port};
        keepalive 4;
    }
    server {
        listen 127.0.0.1:{port};
        location / {
            proxy_pass http://u;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
"""


def test_one_upstream_connection_across_the_hand_over(start_proxy, backend):
    backend.route("/chunked", Reply(chunks=[b"ab", b"cd"]))
    backend.route("/last", Reply(headers=[(b"Content-Length", b"3")], action="close_after"))
    proxy = start_proxy(CONF, backend_port=backend.port)
    with Connection(proxy.port) as conn:
        for i in range(20):
            if i == 10:
                time.sleep(0.6)             # ticks of an idle pool (ngate: the hand-over)
            conn.send(build_request("GET", f"/r{i}"))
            r = conn.read_response()
            assert (r.status, r.body) == (200, b"ok backend\n"), i
        conn.send(build_request("POST", "/post", body=b"hello"))
        assert conn.read_response().status == 200
        conn.send(build_request("GET", "/chunked"))
        assert conn.read_response().body == b"abcd"
        assert backend.connections == 1
        conn.send(build_request("GET", "/last"))
        assert conn.read_response().body == b"ok\n"     # then the backend closes it, idle
        time.sleep(0.3)
        conn.send(build_request("GET", "/after"))
        assert conn.read_response().body == b"ok backend\n"
    reqs = backend.requests
    assert len(reqs) == 24 and backend.connections == 2
    assert {r.connection for r in reqs[:-1]} == {0} and reqs[-1].connection == 1
    post = next(r for r in reqs if r.target == b"/post")
    assert post.body == b"hello"
