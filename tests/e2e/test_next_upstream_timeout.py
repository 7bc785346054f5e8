"""proxy_next_upstream_timeout, on nginx and on ngate: once that much time has passed since the
first try, a failed try is not followed by another. The backend answers 404 after 0.3 s, far past
the 10 ms limit, so the order of events does not depend on the machine's speed."""
from tests.harness.backend import Backend, Reply
from tests.harness.client import request

CONF = """
http {
    upstream u {
        server 127.0.0.1:{port_a};
        server 127.0.0.1:{port_b};
        server 127.0.0.1:{port_c};
    }
    server {
        listen 127.0.0.1:{port};
        proxy_next_upstream http_404;
        proxy_intercept_errors on;
        error_page 404 /404;
        location /limited { proxy_pass http://u; proxy_next_upstream_timeout 10ms; }
        location /zero { proxy_pass http://u; proxy_next_upstream_timeout 0; }
        location /404 { return 200 "x${upstream_status}x"; }
    }
}
"""


def test_next_upstream_timeout_stops_the_retries(start_proxy):
    with Backend() as a, Backend() as b, Backend() as c:
        for backend in (a, b, c):
            backend.default = Reply(status=404, delay=0.3)
        proxy = start_proxy(CONF, port_a=a.port, port_b=b.port, port_c=c.port)
        assert request(proxy.port, "GET", "/limited").body == b"x404x"
        assert request(proxy.port, "GET", "/zero").body == b"x404, 404, 404x"
