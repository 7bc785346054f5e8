"""An `if` without a handler after an `if` with proxy_pass: nginx keeps the proxy handler and
runs it with the second `if`'s configuration, which has no upstream: [alert] and 500 (the crash
of old nginx versions that proxy_if.t checks). With the location's own proxy_pass both `if`s
inherit it and the request is proxied."""
import pytest

from tests.harness.client import build_request, exchange

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        location /crash {
            set $true 1;
            if ($true) {
                proxy_pass http://127.0.0.1:{backend_port};
            }
            if ($arg_second) {
                # no handler here
            }
        }
        location /inherited {
            proxy_pass http://127.0.0.1:{backend_port};
            if ($arg_a) {
                proxy_pass http://127.0.0.1:{backend_port};
            }
            if ($arg_b) {
                # inherits the location's proxy_pass
            }
        }
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF)


@pytest.mark.parametrize("target,status,proxied", [
    ("/crash", 200, 1),                 # only the first if: proxied
    ("/crash?second=1", 500, 0),        # the second if keeps the handler, has no upstream
    ("/inherited?a=1&b=1", 200, 1),
])
def test_handler_kept_by_a_later_if(diff, target, status, proxied):
    out = diff.check_request("GET", target)
    assert (out.response.status, len(out.requests())) == (status, proxied)


def test_no_upstream_configuration_is_an_alert(diff):
    for kind in diff.procs:
        out = diff.run(kind, lambda port: exchange(port, build_request("GET", "/crash?second=1")))
        assert "[alert]" in out.error_log and "no upstream configuration" in out.error_log, kind
