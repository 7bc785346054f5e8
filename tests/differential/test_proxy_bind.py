"""proxy_bind: the upstream connection's source address, as nginx and ngate set it. The upstream
is a server of the same program that answers with the address and port it sees."""
import socket

import pytest

from tests.harness.client import build_request, exchange

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        proxy_bind 127.0.0.3;

        location / {
            proxy_bind 127.0.0.2;
            proxy_pass http://127.0.0.1:{port2}/;
        }
        location /inherit {
            proxy_pass http://127.0.0.1:{port2}/;
        }
        location /off {
            proxy_bind off;
            proxy_pass http://127.0.0.1:{port2}/;
        }
        location /var {
            proxy_bind $arg_b;
            proxy_pass http://127.0.0.1:{port2}/;
        }
        location /port {
            proxy_bind 127.0.0.5:$arg_p;
            proxy_pass http://127.0.0.1:{port2}/;
        }
        location /unbindable {
            proxy_bind 192.0.2.1;
            proxy_pass http://127.0.0.1:{port2}/;
        }
    }
    server {
        listen 127.0.0.1:{port2};
        location / {
            return 200 "$remote_addr:$remote_port\\n";
        }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF, backends=())


def source(port: int, target: str) -> tuple[int, bytes]:
    """Status and the address the upstream saw (without its port, which is any)."""
    r = exchange(port, build_request("GET", target))[0]
    return r.status, r.body.rsplit(b":", 1)[0] if r.status == 200 else b""


@pytest.mark.parametrize("target,addr", [
    ("/", b"127.0.0.2"),                    # the location's own
    ("/inherit", b"127.0.0.3"),             # the server's, inherited
    ("/off", b"127.0.0.1"),                 # off: the kernel chooses
    ("/var?b=127.0.0.4", b"127.0.0.4"),     # a variable
    ("/var", b"127.0.0.1"),                 # an empty value binds nothing
])
def test_upstream_sees_the_bound_address(diff, target, addr):
    assert diff.check(lambda port: source(port, target)).result == (200, addr)


def test_invalid_variable_value_is_logged_and_binds_nothing(diff):
    for kind in diff.procs:
        out = diff.run(kind, lambda port: source(port, "/var?b=junk"))
        assert out.result == (200, b"127.0.0.1"), kind
        assert 'invalid local address "junk"' in out.error_log, kind


def test_bound_port(diff):
    def script(port):
        with socket.socket() as s:          # a port free on 127.0.0.5
            s.bind(("127.0.0.5", 0))
            p = s.getsockname()[1]
        r = exchange(port, build_request("GET", f"/port?p={p}"))[0]
        return r.status, r.body == b"127.0.0.5:%d\n" % p
    assert diff.check(script).result == (200, True)


def test_failed_bind_is_500_and_logged(diff):
    for kind in diff.procs:
        out = diff.run(kind, lambda port: source(port, "/unbindable"))
        assert out.result == (500, b""), kind
        assert "bind(192.0.2.1) failed (99: Cannot assign requested address)" in out.error_log, kind
