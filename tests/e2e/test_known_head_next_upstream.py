"""A response head ngate has learned (proxy/known_head.py skips llhttp for it) that
proxy_next_upstream then refuses: the exchange goes on to the next server as it does for a
head llhttp parsed, on nginx and on ngate (the upstream keeps its connections, so the second
server is reached on a fresh or pooled connection while the first one's read ends)."""
from tests.harness.backend import Backend, Reply
from tests.harness.client import request

CONF = """
http {
    upstream u {
        server 127.0.0.1:{port_a} max_fails=0;
        server 127.0.0.1:{port_b} max_fails=0;
        keepalive 4;
    }
    server {
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_next_upstream http_502;
        location / { proxy_pass http://u; add_header X-Up $upstream_status always; }
        location /plain { proxy_pass http://u; }
    }
}
"""


def test_a_learned_head_refused_by_next_upstream_tries_the_next_server(start_proxy):
    with Backend() as a, Backend() as b:
        for backend in (a, b):
            backend.default = Reply(status=502, body=b"bad\n")
        proxy = start_proxy(CONF, port_a=a.port, port_b=b.port)
        for _ in range(6):      # learned on the first answers, then known
            r = request(proxy.port, "GET", "/")
            assert r.status == 502 and r.body == b"bad\n"
            assert r.header("X-Up") in (b"502, 502", "502, 502")
        for _ in range(6):
            r = request(proxy.port, "GET", "/plain")
            assert r.status == 502 and r.body == b"bad\n"
        b.default = Reply(status=200, body=b"good\n")
        for target in ("/", "/plain") * 3:
            r = request(proxy.port, "GET", target)
            assert r.status == 200 and r.body == b"good\n", r
