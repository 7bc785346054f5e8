"""error_page for the 400s refused before a location is found (invalid Host, HTTP/1.1 without
Host, an invalid URI): nginx finalizes them as any other error, so the default server's
error_page runs, and a redirect there is made absolute with the local address (no valid Host)
(nginx-tests http_absolute_redirect.t, 'invalid host - using local sockaddr')."""
import pytest

CONF = """
http {
    absolute_redirect off;
    server {
        listen 127.0.0.1:{port};
        server_name on;
        absolute_redirect on;
        error_page 400 /return301;
        location /return301 { return 301 /redirect; }
        location / { return 200 "default"; }
    }
    server {
        listen 127.0.0.1:{port};
        server_name x;
        location / { return 200 "x"; }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF)


@pytest.mark.parametrize("raw", [
    b"GET /return301 HTTP/1.0\nHost: .\n\n",
    b"GET /other HTTP/1.1\r\nHost: a..b\r\n\r\n",
    b"GET /other HTTP/1.1\r\n\r\n",
    b"GET /a/%2e%2e/%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_early_400_runs_error_page_redirect_with_local_address(diff, raw):
    out = diff.check_raw(raw)
    assert out.response.status == 301
    assert out.response.header("location") == b"http://127.0.0.1:%d/redirect" % out.port
    assert out.response.header("connection") == b"close"

