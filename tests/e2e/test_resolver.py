"""`resolver` at run time: proxy_pass / fastcgi_pass with variables naming a host, resolved per
request through the configured DNS servers (a scripted DNS server on 127.0.0.1), on nginx and
ngate alike: answers, errors and their 502s, the cache, CNAMEs, several addresses, resend to the
next server, TCP after a truncated answer, one query for concurrent requests."""
import os
import shutil
import socket
import tempfile
import threading
import time

import pytest

from tests.harness.client import Connection, build_request, exchange, request
from tests.harness.dns_server import A, AAAA, Answer, DnsServer
from tests.harness.fastcgi_server import FakeFastCGI
from tests.harness.processes import wait_for

CONF = """
http {
    proxy_cache_path {cache_dir} keys_zone=rc:1m;
    server {
        listen 127.0.0.1:{port};
        resolver_timeout 1s;
        add_header X-Up $upstream_addr always;

        location / {
            resolver 127.0.0.1:{dns_port};
            proxy_pass http://$arg_h:{backend_port}/b;
        }
        location /v4 {
            resolver 127.0.0.1:{dns_port} ipv6=off;
            proxy_pass http://$arg_h:{backend_port}/b;
        }
        location /v4b {
            resolver 127.0.0.1:{dns_port} ipv6=off;
            proxy_pass http://$arg_h:{backend_port}/b;
        }
        location /valid {
            resolver 127.0.0.1:{dns_port} valid=60s ipv6=off;
            proxy_pass http://$arg_h:{backend_port}/b;
        }
        location /two {
            resolver 127.0.0.1:{dns2_port} 127.0.0.1:{dns_port} ipv6=off;
            resolver_timeout 8s;
            proxy_pass http://$arg_h:{backend_port}/b;
        }
        location /none {
            proxy_pass http://$arg_h:{backend_port}/b;
        }
        location /cached {
            resolver 127.0.0.1:{dns_port} ipv6=off;
            proxy_cache rc;
            proxy_cache_valid 200 1m;
            proxy_pass http://$arg_h:{backend_port}/b;
            add_header X-Cache $upstream_cache_status;
        }
        location /static {
            proxy_pass http://localhost:{backend_port};
        }
        location /fcgi {
            resolver 127.0.0.1:{dns_port} ipv6=off;
            fastcgi_pass $arg_h:{fcgi_port};
        }
    }
}
"""


@pytest.fixture
def dns():
    with DnsServer() as d, DnsServer() as d2:
        yield d, d2


@pytest.fixture
def fcgi():
    f = FakeFastCGI()
    yield f
    f.close()


@pytest.fixture
def proxy(start_proxy, backend, dns, fcgi):
    cache_dir = tempfile.mkdtemp(prefix="ngate-resolver-cache-")
    os.chmod(cache_dir, 0o777)          # nginx's workers (nobody) write there too
    yield start_proxy(CONF, backend_port=backend.port, dns_port=dns[0].port,
                      dns2_port=dns[1].port, fcgi_port=fcgi.port, cache_dir=cache_dir)
    shutil.rmtree(cache_dir, ignore_errors=True)


def test_a_record_is_used_then_cached(proxy, dns, backend):
    zone = dns[0].zone
    zone["app.test"] = Answer(a=["127.0.0.1"])
    for _ in range(2):
        resp = request(proxy.port, "GET", "/?h=app.test")
        assert resp.status == 200 and resp.header(b"x-up") == f"127.0.0.1:{backend.port}".encode()
    assert backend.requests[-1].target == b"/b"
    assert dns[0].asked("app.test", A) == 1 and dns[0].asked("app.test", AAAA) == 1


def test_name_is_looked_up_lower_case_without_final_dot(proxy, dns):
    dns[0].zone["mixed.test"] = Answer(a=["127.0.0.1"])
    assert request(proxy.port, "GET", "/v4?h=MiXed.Test.").status == 200
    assert request(proxy.port, "GET", "/v4?h=mixed.test").status == 200
    assert dns[0].asked("mixed.test") == 1


def test_nxdomain_is_502_with_nginx_log_line(proxy, dns):
    resp = request(proxy.port, "GET", "/?h=nx.test")
    assert resp.status == 502
    assert "nx.test could not be resolved (3: Host not found)" in proxy.error_log()


def test_server_failure_is_502_and_not_cached(proxy, dns):
    dns[0].zone["flaky.test"] = lambda qtype, n: Answer(rcode=2) if n == 1 else Answer(a=["127.0.0.1"])
    assert request(proxy.port, "GET", "/v4?h=flaky.test").status == 502
    assert "flaky.test could not be resolved (2: Server failure)" in proxy.error_log()
    assert request(proxy.port, "GET", "/v4?h=flaky.test").status == 200


def test_no_answer_times_out_after_resolver_timeout(proxy, dns):
    dns[0].zone["silent.test"] = Answer(drop=True)
    resp = request(proxy.port, "GET", "/?h=silent.test")
    assert resp.status == 502
    assert "silent.test could not be resolved (110: Operation timed out)" in proxy.error_log()


def test_without_resolver_502(proxy, dns):
    dns[0].zone["app.test"] = Answer(a=["127.0.0.1"])
    assert request(proxy.port, "GET", "/none?h=app.test").status == 502
    assert "no resolver defined to resolve app.test" in proxy.error_log()
    assert dns[0].asked("app.test") == 0


def test_cname_is_followed(proxy, dns):
    dns[0].zone["www.test"] = Answer(cname="real.test")
    dns[0].zone["real.test"] = Answer(a=["127.0.0.1"])
    assert request(proxy.port, "GET", "/v4?h=www.test").status == 200
    assert dns[0].asked("real.test") == 1


def test_cname_with_its_address_in_one_answer(proxy, dns):
    dns[0].zone["both.test"] = Answer(cname="target.test", a=["127.0.0.1"])
    assert request(proxy.port, "GET", "/v4?h=both.test").status == 200
    assert dns[0].asked("target.test") == 0


def test_addresses_are_an_upstream_group_with_next_upstream(proxy, dns, backend):
    # 127.0.0.2 refuses the backend port: the request goes on to the next address
    dns[0].zone["many.test"] = Answer(a=["127.0.0.2", "127.0.0.1"])
    resp = request(proxy.port, "GET", "/v4?h=many.test")
    assert resp.status == 200
    assert resp.header(b"x-up") == f"127.0.0.2:{backend.port}, 127.0.0.1:{backend.port}".encode()


def test_a_resolved_group_lives_with_its_request(proxy, dns, backend):
    # nginx makes a name's peers per request (ngx_http_upstream_create_round_robin_peer in the
    # request's pool): /v4 and /v4b have a resolver each, so both resolve afresh, the answer in
    # its order, and both requests go to the first address; no round robin state is kept between
    # them, and a failed address is disabled for its request only, with a [warn]
    dns[0].zone["fresh.test"] = Answer(a=["127.0.0.1", "127.0.0.2"])
    for path in ("/v4", "/v4b"):
        resp = request(proxy.port, "GET", path + "?h=fresh.test")
        assert resp.status == 200
        assert resp.header(b"x-up") == f"127.0.0.1:{backend.port}".encode(), path
    dns[0].zone["down.test"] = Answer(a=["127.0.0.2", "127.0.0.1"])
    for path in ("/v4", "/v4b"):
        resp = request(proxy.port, "GET", path + "?h=down.test")
        assert resp.header(b"x-up") == f"127.0.0.2:{backend.port}, 127.0.0.1:{backend.port}".encode()
    assert proxy.error_log().count("upstream server temporarily disabled while connecting") == 2


def test_ipv4_and_ipv6_answers_together(proxy, dns, backend):
    dns[0].zone["dual.test"] = Answer(a=["127.0.0.2"], aaaa=["::1"])
    resp = request(proxy.port, "GET", "/?h=dual.test")
    assert resp.header(b"x-up").startswith(f"127.0.0.2:{backend.port}, [::1]:{backend.port}".encode())


def test_ttl_then_valid_override(proxy, dns):
    dns[0].zone["short.test"] = Answer(a=["127.0.0.1"], ttl=1)
    assert request(proxy.port, "GET", "/v4?h=short.test").status == 200
    assert request(proxy.port, "GET", "/valid?h=short.test").status == 200
    time.sleep(2.1)
    assert request(proxy.port, "GET", "/v4?h=short.test").status == 200
    assert request(proxy.port, "GET", "/valid?h=short.test").status == 200
    # each `resolver` has its own cache: /v4 asked twice (its TTL passed), /valid once (valid=60s)
    assert dns[0].asked("short.test") == 3


def test_concurrent_requests_share_one_query(proxy, dns):
    dns[0].zone["slow.test"] = Answer(a=["127.0.0.1"], delay=0.5)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        request(proxy.port, "GET", "/v4?h=slow.test").status)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 4
    assert dns[0].asked("slow.test") == 1


def test_resend_goes_to_the_next_server(proxy, dns):
    # /two asks 127.0.0.1:dns2 first (silent); nginx resends after 5 s to the next server
    dns[0].zone["rr.test"] = Answer(a=["127.0.0.1"])
    dns[1].zone["rr.test"] = Answer(drop=True)
    resp = exchange(proxy.port, build_request("GET", "/two?h=rr.test"), timeout=10)[0]
    assert resp.status == 200
    assert dns[1].asked("rr.test") == 1 and dns[0].asked("rr.test") == 1


def test_truncated_answer_is_asked_again_over_tcp(proxy, dns):
    dns[0].zone["big.test"] = Answer(a=["127.0.0.1"], tc=True)
    assert request(proxy.port, "GET", "/v4?h=big.test").status == 200
    assert [q[2] for q in dns[0].queries if q[0] == "big.test"] == ["udp", "tcp"]


def test_wrong_ident_is_ignored(proxy, dns):
    dns[0].zone["spoof.test"] = Answer(a=["127.0.0.1"], wrong_id=True)
    assert request(proxy.port, "GET", "/v4?h=spoof.test").status == 502
    log = proxy.error_log()
    assert "wrong ident" in log and "in DNS response for spoof.test, expect" in log
    assert "spoof.test could not be resolved (110: Operation timed out)" in log


def test_fastcgi_pass_with_a_resolved_name(proxy, dns, fcgi):
    dns[0].zone["php.test"] = Answer(a=["127.0.0.1"])
    resp = request(proxy.port, "GET", "/fcgi?h=php.test")
    assert resp.status == 200 and resp.body == b"ok\n"
    assert request(proxy.port, "GET", "/fcgi?h=nx.test").status == 502
    assert "nx.test could not be resolved (3: Host not found)" in proxy.error_log()


def test_client_leaving_while_resolving_is_499_and_the_query_goes_on(proxy, dns):
    dns[0].zone["slow.test"] = Answer(a=["127.0.0.1"], delay=0.5)
    gone = socket.create_connection(("127.0.0.1", proxy.port))
    gone.sendall(build_request("GET", "/v4?h=slow.test&gone"))
    with Connection(proxy.port) as conn:
        conn.send(build_request("GET", "/v4?h=slow.test"))
        time.sleep(0.1)
        gone.close()
        assert conn.read_response().status == 200
    assert dns[0].asked("slow.test") == 1
    wait_for(lambda: '"GET /v4?h=slow.test&gone HTTP/1.1" 499' in proxy.access_log(), "499 logged")
    assert ("client prematurely closed connection, client: 127.0.0.1, server: , "
            'request: "GET /v4?h=slow.test&gone HTTP/1.1"') in proxy.error_log()


def test_implicit_upstream_first_then_the_resolver_even_for_localhost(proxy, dns, fcgi):
    # `proxy_pass http://localhost:PORT` made a group that LocalHost:PORT in a variable finds;
    # localhost with another port is a name for the resolver, as in nginx
    dns[0].zone["localhost"] = Answer(a=["127.0.0.1"])
    assert request(proxy.port, "GET", "/v4?h=LocalHost").status == 200
    assert dns[0].asked("localhost") == 0
    assert request(proxy.port, "GET", "/fcgi?h=localhost").status == 200
    assert dns[0].asked("localhost") == 1


def test_under_proxy_cache(proxy, dns, backend):
    dns[0].zone["cached.test"] = Answer(a=["127.0.0.1"])
    first = request(proxy.port, "GET", "/cached?h=cached.test")
    second = request(proxy.port, "GET", "/cached?h=cached.test")
    assert (first.status, first.header(b"x-cache")) == (200, b"MISS")
    assert (second.status, second.header(b"x-cache")) == (200, b"HIT")
    assert len(backend.requests) == 1
