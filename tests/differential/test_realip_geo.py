"""realip, geo, split_clients and $request_id: the same requests through nginx and ngate.

The client is always 127.0.0.1; what it claims in X-Forwarded-For, X-Real-IP or a custom header
decides $remote_addr wherever 127.0.0.1 (or the network) is trusted, and geo/split_clients read
addresses and values from headers and arguments.
"""
import re
import time

import pytest

from tests.harness.client import Connection, build_request

CONF = """
http {
    set_real_ip_from 127.0.0.1/32;
    set_real_ip_from 10.0.1.0/24;
    set_real_ip_from 2001:db8::/32;
    # the client's own port differs between runs: shown as "ephemeral"
    map $remote_port $rport {
        default                   $remote_port;
        "~^(3[2-9]|[4-6][0-9])[0-9]{3}$" ephemeral;
    }
    log_format realip "$remote_addr:$remote_port $realip_remote_addr $request_uri";
    access_log {prefix}/logs/realip.log realip;

    geo $geo {
        default        world;
        127.0.0.0/8    loopback;
        192.0.2.0/24   test;
        192.0.2.128/25 test-high;
        2001:db8::/32  doc6;
        10.0.0.1/8     low-bits;
        delete         192.0.2.128/25;
    }
    geo $arg_ip $geo_arg {
        default        default;
        192.0.2.0/24   test;
        198.51.100.7   exact;
        ::ffff:0:0/96  mapped;
        2001:db8::/48  doc6;
        255.255.255.255 none;
    }
    geo $arg_ip $geo_ranges {
        ranges;
        default                    default;
        10.0.0.0-10.255.255.255    ten;
        10.1.0.0-10.1.0.255        ten-one;
        10.1.0.10-10.1.0.10        ten-one-ten;
        192.0.2.0-192.0.3.255      test;
        delete                     192.0.3.0-192.0.3.255;
    }
    geo $geo_proxy {
        default   default;
        proxy     127.0.0.1;
        proxy     10.0.1.0/24;
        127.0.0.0/8   loopback;
        192.0.2.0/24  test;
        10.0.0.0/8    ten;
    }
    geo $geo_proxy_recursive {
        proxy_recursive;
        default   default;
        proxy     127.0.0.1;
        proxy     10.0.1.0/24;
        127.0.0.0/8   loopback;
        192.0.2.0/24  test;
        10.0.0.0/8    ten;
    }
    split_clients "${arg_k}salt" $variant {
        0.5%   a;
        33.33% b;
        50%    c;
        *      d;
    }
    split_clients "$arg_k" $variant2 {
        10%    x;
        20%    y;
    }

    server {
        listen 127.0.0.1:{port};
        location / {
            return 200 "remote=$remote_addr:$rport realip=$realip_remote_addr xff=$proxy_add_x_forwarded_for\n";
        }
        location /xff/ {
            real_ip_header X-Forwarded-For;
            return 200 "remote=$remote_addr:$rport realip=$realip_remote_addr\n";
        }
        location /xffr/ {
            real_ip_header X-Forwarded-For;
            real_ip_recursive on;
            return 200 "remote=$remote_addr:$rport realip=$realip_remote_addr\n";
        }
        location /custom/ {
            real_ip_header X-Client;
            return 200 "remote=$remote_addr\n";
        }
        location /untrusted/ {
            set_real_ip_from 203.0.113.0/24;
            return 200 "remote=$remote_addr\n";
        }
        location /deny/ {
            real_ip_header X-Forwarded-For;
            deny 192.0.2.1;
            return 200 "allowed $remote_addr\n";
        }
        location /geo {
            return 200 "geo=$geo arg=$geo_arg ranges=$geo_ranges proxy=$geo_proxy recursive=$geo_proxy_recursive\n";
        }
        location /split {
            return 200 "variant=$variant variant2=$variant2\n";
        }
        location /rid {
            add_header X-Request-Id $request_id;
            return 200 "$request_id\n";
        }
    }
    server {
        listen 127.0.0.1:{port2};
        # realip at server level (POST_READ): `return` in the server's rewrite phase sees it
        add_header X-IP $remote_addr;
        return 204;
    }
}
"""


@pytest.fixture(scope="module")
def diff(differential):
    return differential(CONF, backends=())


@pytest.mark.parametrize("headers", [
    [],
    [(b"X-Real-IP", b"192.0.2.1")],
    [(b"X-Real-IP", b"192.0.2.1:8080")],
    [(b"X-Real-IP", b"[2001:DB8::1]:443")],
    [(b"X-Real-IP", b"2001:DB8:0:0::7")],
    [(b"X-Real-IP", b"::ffff:192.0.2.9")],
    [(b"X-Real-IP", b"not an address")],
    [(b"X-Real-IP", b"192.0.2.1, 10.0.0.1")],
    [(b"X-Real-IP", b"")],
    [(b"X-Real-IP", b"192.0.2.1"), (b"X-Real-IP", b"192.0.2.2")],
    [(b"X-Forwarded-For", b"192.0.2.1")],
    [(b"X-Forwarded-For", b"192.0.2.1"), (b"X-Forwarded-For", b""), (b"X-Forwarded-For", b"b")],
    [(b"X-Forwarded-For", b"192.0.2.1"), (b"X-Real-IP", b"192.0.2.9")],
])
def test_real_ip_header_default(diff, headers):
    diff.check_request("GET", "/", headers=headers)


@pytest.mark.parametrize("path", ["/xff/", "/xffr/"])
@pytest.mark.parametrize("xff", [
    [b"192.0.2.1"],
    [b"10.0.0.1, 192.0.2.1"],
    [b"192.0.2.1, 10.0.1.1, 127.0.0.1"],
    [b"10.0.1.1, 192.0.2.1, 127.0.0.1"],
    [b"192.0.2.1,,  10.0.1.7 ,"],
    [b"junk, 10.0.1.1"],
    [b"192.0.2.1, junk"],
    [b"192.0.2.1", b"127.0.0.1, 10.0.1.1"],
    [b"10.0.1.1", b"192.0.2.1", b"127.0.0.1"],
    [b"2001:db8::5, 2001:db8::1"],
    [b"198.51.100.1:1234"],
])
def test_x_forwarded_for(diff, path, xff):
    diff.check_request("GET", path, headers=[(b"X-Forwarded-For", v) for v in xff])


@pytest.mark.parametrize("target,headers", [
    ("/custom/", [(b"X-Client", b"192.0.2.77")]),
    ("/custom/", [(b"x-client", b"192.0.2.78")]),
    ("/custom/", [(b"X-Real-IP", b"192.0.2.79")]),
    ("/untrusted/", [(b"X-Real-IP", b"192.0.2.80")]),
    ("/deny/", [(b"X-Forwarded-For", b"192.0.2.1")]),
    ("/deny/", [(b"X-Forwarded-For", b"192.0.2.2")]),
])
def test_realip_per_location(diff, target, headers):
    diff.check_request("GET", target, headers=headers)


def test_realip_in_post_read_phase(diff):
    """The server-level settings apply before the server's own rewrite phase (nginx's
    POST_READ), so a server-level `return` already sees the client's address."""
    def script(port):
        port2 = port_of(diff, port, "port2")
        with Connection(port2) as c:
            c.send(build_request("GET", "/", headers=[(b"X-Real-IP", b"192.0.2.1")]))
            return c.read_response()
    out = diff.check(script)
    assert out.response.header("x-ip") == b"192.0.2.1"


def log_lines(proc, endings, count):
    """The access log lines ending so (ngate writes its buffer within a second)."""
    deadline = time.monotonic() + 5
    while True:
        lines = [ln for ln in proc._read("realip.log").splitlines() if ln.endswith(endings)]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def port_of(diff, port, key):
    for proc in diff.procs.values():
        if proc.port == port:
            return proc.params[key]
    raise KeyError(port)


def test_realip_address_in_access_log_then_restored(diff):
    """The log line has the client's address; the next request on the same connection without
    the header has the connection's own address again."""
    def script(port):
        with Connection(port) as c:
            c.send(build_request("GET", "/a", headers=[(b"X-Real-IP", b"192.0.2.5")]))
            first = c.read_response()
            c.send(build_request("GET", "/b"))
            second = c.read_response()
        return [first, second]
    out = diff.check(script)
    assert out.result[0].body.startswith(b"remote=192.0.2.5:")
    assert out.result[1].body.startswith(b"remote=127.0.0.1:")
    for kind, proc in diff.procs.items():
        lines = log_lines(proc, (" /a", " /b"), 2)
        assert re.fullmatch(r"192\.0\.2\.5: 127\.0\.0\.1 /a", lines[-2]), (kind, lines)
        assert re.fullmatch(r"127\.0\.0\.1:\d+ 127\.0\.0\.1 /b", lines[-1]), (kind, lines)


@pytest.mark.parametrize("query,headers", [
    ("", []),
    ("?ip=192.0.2.1", []),
    ("?ip=198.51.100.7", []),
    ("?ip=198.51.100.8", []),
    ("?ip=::ffff:192.0.2.3", []),
    ("?ip=2001:db8::1", []),
    ("?ip=2001:db8:1::1", []),
    ("?ip=garbage", []),
    ("?ip=10.5.0.1", []),
    ("?ip=10.1.0.1", []),
    ("?ip=10.1.0.10", []),
    ("?ip=10.1.0.11", []),
    ("?ip=192.0.2.200", []),
    ("?ip=192.0.3.1", []),
    ("", [(b"X-Real-IP", b"192.0.2.130")]),
    ("", [(b"X-Real-IP", b"10.200.0.1")]),
    ("", [(b"X-Real-IP", b"2001:db8::9")]),
    ("", [(b"X-Forwarded-For", b"192.0.2.1")]),
    ("", [(b"X-Forwarded-For", b"192.0.2.1, 127.0.0.1")]),
    ("", [(b"X-Forwarded-For", b"192.0.2.1, 10.0.1.3")]),
    ("", [(b"X-Forwarded-For", b"192.0.2.1, 10.0.1.3, 10.0.1.4")]),
    ("", [(b"X-Forwarded-For", b"10.0.1.3, junk")]),
    ("", [(b"X-Forwarded-For", b"192.0.2.1"), (b"X-Forwarded-For", b"10.0.1.3")]),
])
def test_geo(diff, query, headers):
    diff.check_request("GET", "/geo" + query, headers=headers)


def test_split_clients(diff):
    def script(port):
        with Connection(port) as c:
            out = []
            for k in list(range(60)) + ["", "x" * 37, "%C3%A9"]:
                c.send(build_request("GET", f"/split?k={k}"))
                out.append(c.read_response().body)
            return out
    out = diff.check(script)
    assert {b.split()[0] for b in out.result} >= {b"variant=b", b"variant=c", b"variant=d"}


def test_request_id(diff):
    def script(port):
        with Connection(port) as c:
            out = []
            for _ in range(3):
                c.send(build_request("GET", "/rid"))
                r = c.read_response()
                out.append((r.header("x-request-id"), r.body))
            return out
    for kind in diff.procs:
        result = diff.run(kind, script).result
        ids = [h for h, _ in result]
        for header, body in result:
            assert re.fullmatch(rb"[0-9a-f]{32}", header), kind
            assert body == header + b"\n", kind         # one id per request
        assert len(set(ids)) == 3, kind
