"""server_tokens on | off | build, in the Server header and the error pages' signature, for
nginx and ngate alike: the name differs by design (README), the version is shown or hidden the same
way (nginx-tests server_tokens.t checks the same with nginx's name)."""
import re

import pytest

from tests.harness.client import request

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        location /200 { return 200; }
        location /404 { return 404; }
        location /off { server_tokens off;
            location /off/200 { return 200; }
            location /off/404 { return 404; } }
        location /on { server_tokens on;
            location /on/200 { return 200; }
            location /on/404 { return 404; } }
        location /b { server_tokens BUILD;
            location /b/200 { return 200; }
            location /b/404 { return 404; } }
    }
}
"""
VERSIONED = re.compile(rb"^(nginx|ngate)/\d+\.\d+\.\d+$")


@pytest.mark.parametrize("prefix,versioned", [("", True), ("/on", True), ("/b", True),
                                              ("/off", False)])
def test_server_tokens(start_proxy, prefix, versioned):
    proc = start_proxy(CONF)
    for status in (200, 404):
        resp = request(proc.port, "GET", f"{prefix}/{status}")
        assert resp.status == status
        server = resp.header("server")
        if versioned:
            assert VERSIONED.match(server), server
        else:
            assert server in (b"nginx", b"ngate")
        if status == 404:
            sig = re.search(rb"<hr><center>([^<]*)</center>", resp.body).group(1)
            assert sig == server
