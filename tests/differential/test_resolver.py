"""`resolver` through nginx and ngate: the same names, answered by one scripted DNS server,
give the same responses, the same backend requests and the same error-log lines (502 without a
resolver, on NXDOMAIN, on a resolver timeout; 200 and the group's $upstream_addr on success)."""
import re

import pytest

from tests.harness.client import request
from tests.harness.dns_server import Answer, DnsServer

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
        add_header X-Up $upstream_addr always;
        location / {
            resolver 127.0.0.1:{dns_port} ipv6=off;
            resolver_timeout 1s;
            proxy_pass http://$arg_h:{backend_port}/seen$is_args$args;
        }
        location /none/ {
            proxy_pass http://$arg_h:{backend_port};
        }
    }
}
"""
LINE = re.compile(r"\[(\w+)\] \d+#\d+: \*\d+ (.*)")


@pytest.fixture(scope="module")
def dns():
    with DnsServer() as d:
        d.zone["app.test"] = Answer(a=["127.0.0.1"])
        d.zone["many.test"] = Answer(a=["127.0.0.2", "127.0.0.1"])
        d.zone["alias.test"] = Answer(cname="app.test")
        d.zone["silent.test"] = Answer(drop=True)
        yield d


@pytest.fixture(scope="module")
def diff(differential, dns):
    return differential(CONF, dns_port=dns.port)


def resolver_lines(log: str) -> list[str]:
    return [f"[{m[1]}] {m[2]}" for m in LINE.finditer(log)
            if "resolve" in m[2] and "DNS" not in m[2]]


def same_log(diff, target):
    outs = [diff.run(kind, lambda port: request(port, "GET", target)) for kind in diff.procs]
    lines = [resolver_lines(o.error_log) for o in outs]
    assert lines[0] and all(x == lines[0] for x in lines), lines
    return outs[0], lines[0]


@pytest.mark.parametrize("target", ["/?h=app.test", "/?h=APP.test", "/?h=alias.test",
                                    "/?h=many.test"])
def test_resolved(diff, target):
    out = diff.check(lambda port: request(port, "GET", target))
    assert out.response.status == 200 and out.requests()[0].target.startswith(b"/seen?h=")


def test_nxdomain(diff):
    out, lines = same_log(diff, "/?h=nx.test")
    assert out.response.status == 502
    assert lines[0].startswith("[error] nx.test could not be resolved (3: Host not found), client:")
    diff.check(lambda port: request(port, "GET", "/?h=nx.test"))


def test_timeout(diff):
    out, lines = same_log(diff, "/?h=silent.test")
    assert out.response.status == 502
    assert lines[0].startswith("[error] silent.test could not be resolved (110: Operation timed out)")


def test_no_resolver(diff):
    out, lines = same_log(diff, "/none/?h=App.test")
    assert out.response.status == 502
    assert lines[0].startswith("[error] no resolver defined to resolve App.test, client:")
    diff.check(lambda port: request(port, "GET", "/none/?h=App.test"))
