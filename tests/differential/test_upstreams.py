"""Upstream groups: which backend each request reaches and what `$upstream_addr`/`$upstream_status`
say (the X-Up header), for the balancers, down/backup/max_fails, proxy_next_upstream, keepalive
connection reuse and proxy_pass with variables.

Every scenario has its own upstream block: balancer and health state are per group and persist
across requests within one program, and nginx and ngate run the same sequence from the same state.
"""
import socket
import time

import pytest

from tests.harness.backend import Reply
from tests.harness.client import Connection, build_request, request
from tests.harness.processes import free_port

A, B, C = "127.0.0.1:{a_port}", "127.0.0.1:{b_port}", "127.0.0.1:{c_port}"
DEAD, DEAD2, DEAD3 = "127.0.0.1:{dead_port}", "127.0.0.1:{dead2_port}", "127.0.0.1:{dead3_port}"

CONF = f"""
http {{
    upstream rr {{ server {A} weight=1; server {B} weight=2; server {C} weight=3; }}
    upstream rr_down {{ server {A}; server {B} down; server {C}; }}
    upstream rr_backup {{ server {DEAD}; server {DEAD2}; server {C} backup; }}
    upstream mf {{ server {DEAD3} max_fails=1 fail_timeout=2s; server {A}; }}
    upstream nu_default {{ server {A} max_fails=0; server {B} max_fails=0; }}
    upstream nu_502 {{ server {A} max_fails=0; server {B} max_fails=0; }}
    upstream nu_503 {{ server {A} max_fails=0; server {B} max_fails=0; }}
    upstream nu_500 {{ server {A} max_fails=0; server {B} max_fails=0; }}
    upstream nu_404 {{ server {A} max_fails=0; server {B} max_fails=0; }}
    upstream nu_403 {{ server {A}; server {B}; }}
    upstream nu_429 {{ server {A} max_fails=0; server {B} max_fails=0; }}
    upstream nu_504 {{ server {A} max_fails=0; server {B} max_fails=0; }}
    upstream nu_unlisted {{ server {A} max_fails=0; server {B} max_fails=0; }}
    upstream nu_all {{ server {A} max_fails=0; server {B} max_fails=0; }}
    upstream nu_off {{ server {DEAD} max_fails=0; server {A} max_fails=0; }}
    upstream nu_post {{ server {A} max_fails=0; server {B} max_fails=0; }}
    upstream nu_post_ni {{ server {A} max_fails=0; server {B} max_fails=0; }}
    upstream nu_tries {{ server {DEAD} max_fails=0; server {DEAD2} max_fails=0; server {A}; }}
    upstream mf2 {{ server {A} max_fails=2; server {B}; }}
    upstream nolive {{ server {DEAD}; server {DEAD2}; }}
    upstream nolive_mid {{ server {DEAD}; server {DEAD2}; server {A}; }}
    upstream nu_timeout {{ server {A} max_fails=0; server {B} max_fails=0; }}
    upstream iph {{ ip_hash; server {A}; server {B}; server {C}; }}
    upstream hk {{ hash $arg_k; server {A}; server {B}; server {C}; }}
    upstream hk_consistent {{ hash $arg_k consistent; server {A}; server {B} weight=2; server {C};
                              server {DEAD3} max_fails=0; }}
    upstream iph_mixed {{ ip_hash; server {A} weight=2; server {DEAD}; server {B}; server {C} down; }}
    upstream hk_mixed {{ hash $arg_k; server {A} weight=2; server {DEAD2}; server {B}; server {C}; }}
    upstream lc {{ least_conn; server {A}; server {B}; }}
    upstream ka {{ server {A}; server {B}; keepalive 2; }}
    upstream ka_one {{ server {A}; keepalive 2; }}
    upstream by_map_one {{ server {A}; }}
    upstream by_map_two {{ server {B}; }}

    map $arg_u $upstream_name {{ default by_map_one; two by_map_two; }}

    server {{
        listen 127.0.0.1:{{port}};
        add_header X-Up "$upstream_addr $upstream_status" always;
        proxy_connect_timeout 2s;

        location /rr/ {{ proxy_pass http://rr; }}
        location /down/ {{ proxy_pass http://rr_down; }}
        location /backup/ {{ proxy_pass http://rr_backup; }}
        location /mf/ {{ proxy_pass http://mf; }}
        location /mf2/ {{ proxy_pass http://mf2; }}
        location /nolive/ {{ proxy_pass http://nolive; }}
        location /nolive-mid/ {{ proxy_pass http://nolive_mid; }}
        location /nu/timeout/ {{ proxy_pass http://nu_timeout; proxy_read_timeout 1s; }}
        location /nu/default/ {{ proxy_pass http://nu_default; }}
        location /nu/502/ {{ proxy_pass http://nu_502; proxy_next_upstream error timeout http_502; }}
        location /nu/503/ {{ proxy_pass http://nu_503; proxy_next_upstream error timeout http_503; }}
        location /nu/500/ {{ proxy_pass http://nu_500; proxy_next_upstream error http_500; }}
        location /nu/404/ {{ proxy_pass http://nu_404; proxy_next_upstream http_404; }}
        location /nu/403/ {{ proxy_pass http://nu_403; proxy_next_upstream http_403; }}
        location /nu/429/ {{ proxy_pass http://nu_429; proxy_next_upstream http_429; }}
        location /nu/504/ {{ proxy_pass http://nu_504; proxy_next_upstream http_504; }}
        location /nu/unlisted/ {{ proxy_pass http://nu_unlisted; proxy_next_upstream http_503; }}
        location /nu/all/ {{ proxy_pass http://nu_all; proxy_next_upstream http_502; }}
        location /nu/off/ {{ proxy_pass http://nu_off; proxy_next_upstream off; }}
        location /nu/post/ {{ proxy_pass http://nu_post; }}
        location /nu/post-ni/ {{ proxy_pass http://nu_post_ni;
                                proxy_next_upstream error timeout non_idempotent; }}
        location /nu/tries/ {{ proxy_pass http://nu_tries; proxy_next_upstream_tries 2; }}
        location /iph/ {{ proxy_pass http://iph; }}
        location /hk/ {{ proxy_pass http://hk; }}
        location /hk-consistent/ {{ proxy_pass http://hk_consistent; }}
        location /iph-mixed/ {{ proxy_pass http://iph_mixed; }}
        location /hk-mixed/ {{ proxy_pass http://hk_mixed; }}
        location /lc/ {{ proxy_pass http://lc; }}
        location /ka/ {{ proxy_pass http://ka; proxy_http_version 1.1; proxy_set_header Connection ""; }}
        location /ka1/ {{ proxy_pass http://ka_one; proxy_http_version 1.1;
                         proxy_set_header Connection ""; proxy_read_timeout 1s; }}
        location /var/set/ {{ set $b {A}; proxy_pass http://$b; }}
        location /var/map/ {{ proxy_pass http://$upstream_name$request_uri; }}
        location /var/unknown/ {{ proxy_pass http://no-such-host.invalid$request_uri; }}
    }}
}}
"""


@pytest.fixture(scope="module")
def diff(differential):
    d = differential(CONF, backends=("a", "b", "c"), dead2_port=free_port(), dead3_port=free_port())
    a, b = d.backends["a"], d.backends["b"]
    for status in (502, 503, 500, 404, 403, 429, 504):
        a.route(f"/nu/{status}/x", Reply(status=status, body=b"a says %d\n" % status))
    a.route("/nu/default/x", Reply(status=502, body=b"a says 502\n"))
    a.route("/nu/unlisted/x", Reply(status=502, body=b"a says 502\n"))
    a.route("/nu/all/x", Reply(status=502, body=b"a says 502\n"))
    b.route("/nu/all/x", Reply(status=502, body=b"b says 502\n"))
    a.route("/nu/post/x", Reply(action="close"))
    a.route("/nu/post-ni/x", Reply(action="close"))
    a.route("/mf2/fail", Reply(action="close"))
    a.route("/nolive-mid/fail", Reply(action="close"))
    a.route("/nu/timeout/x", Reply(delay=1.5, body=b"a late\n"))
    a.route("/lc/x", Reply(delay=1.0, body=b"a slow\n"))
    a.route("/ka1/slow", Reply(delay=1.5, body=b"a late\n"))
    return d


def series(target: str, n: int, method: str = "GET", body: bytes | None = None):
    """`n` sequential requests, each on its own connection."""
    return lambda port: [request(port, method, target, body=body) for _ in range(n)]


def test_weighted_round_robin(diff):
    diff.check(series("/rr/x", 12))


def test_down_server_never_used(diff):
    diff.check(series("/down/x", 6))


def test_backup_only_when_every_primary_fails(diff):
    diff.check(series("/backup/x", 3))


def test_max_fails_skips_then_retries_after_fail_timeout(diff):
    def script(port):
        first = [request(port, "GET", "/mf/x") for _ in range(3)]
        time.sleep(3.1)        # nginx counts fail_timeout in whole seconds
        return first + [request(port, "GET", "/mf/x") for _ in range(2)]
    diff.check(script)


def test_max_fails_counts_failures_across_successes(diff):
    """nginx forgets a peer's failures on success only once fail_timeout passed since the last."""
    diff.check(lambda port: [request(port, "GET", f"/mf2/{p}") for p in
                             ["fail", "ok", "ok", "ok", "fail", "ok", "ok", "ok", "ok"]])


def test_no_live_upstreams(diff):
    diff.check(series("/nolive/x", 2))


def test_no_live_upstreams_after_a_failure(diff):
    diff.check(lambda port: [request(port, "GET", f"/nolive-mid/{p}") for p in
                             ["ok", "ok", "fail", "ok"]])


def test_next_upstream_on_timeout(diff):
    diff.check(series("/nu/timeout/x", 2))


@pytest.mark.parametrize("status", ["default", "502", "503", "500", "404", "403", "429", "504",
                                    "unlisted", "all"])
def test_next_upstream_on_status(diff, status):
    diff.check(series(f"/nu/{status}/x", 4))


def test_next_upstream_off(diff):
    diff.check(series("/nu/off/x", 2))


def test_post_not_retried_after_sending_by_default(diff):
    diff.check(series("/nu/post/x", 2, "POST", b"payload"))


def test_post_retried_with_non_idempotent(diff):
    diff.check(series("/nu/post-ni/x", 2, "POST", b"payload"))


def test_next_upstream_tries(diff):
    diff.check(series("/nu/tries/x", 2))


def test_ip_hash_is_stable(diff):
    diff.check(series("/iph/x", 4))


def test_hash_key_is_stable(diff):
    diff.check(lambda port: [request(port, "GET", f"/hk/x?k={k}") for k in
                             ["1", "2", "3", "alpha", "beta", "gamma", "1", "alpha", "", "zz"]])


def from_address(source: str, target: str):
    """One GET from a given loopback source address (ip_hash sees other clients)."""
    def get(port):
        conn = Connection.__new__(Connection)
        conn.sock = socket.create_connection(("127.0.0.1", port), 3, source_address=(source, 0))
        conn.buf, conn.eof = b"", False
        with conn:
            conn.send(build_request("GET", target))
            return conn.read_response()
    return get


SOURCES = [f"127.{a}.{b}.1" for a in (0, 1, 7) for b in (0, 1, 2, 3, 200)]


def test_ip_hash_mapping_with_weights_down_and_failed_peers(diff):
    diff.check(lambda port: [from_address(src, "/iph-mixed/x")(port) for src in SOURCES * 2])


def test_hash_mapping_with_weights_and_failed_peer(diff):
    keys = [str(k) for k in range(12)] + ["alpha", "beta", "gamma", "delta"]
    diff.check(lambda port: [request(port, "GET", f"/hk-mixed/x?k={k}") for k in keys * 2])


def test_consistent_hash_mapping(diff):
    keys = [str(k) for k in range(16)] + ["alpha", "beta", "gamma", "delta", ""]
    diff.check(lambda port: [request(port, "GET", f"/hk-consistent/x?k={k}") for k in keys])


def test_least_conn_avoids_the_busy_backend(diff):
    def script(port):
        conns = []
        for _ in range(4):
            c = Connection(port)
            c.send(build_request("GET", "/lc/x"))
            conns.append(c)
            time.sleep(0.15)
        try:
            return [c.read_response() for c in conns]
        finally:
            for c in conns:
                c.close()
    diff.check(script)


def test_keepalive_reuses_connections(diff):
    diff.check(series("/ka/x", 20))


def test_read_timeout_on_a_pooled_connection(diff):
    """proxy_read_timeout of a request sent on an idle keepalive connection (a group of one
    server, no body: proxy/http_proxy.py start_pooled, whose timer the pooled connection
    carries): 504, and the next requests are answered on a connection again."""
    def script(port):
        return series("/ka1/x", 2)(port) + [request(port, "GET", "/ka1/slow")] \
            + series("/ka1/x", 2)(port)
    diff.check(script)


def test_proxy_pass_variable_address(diff):
    diff.check(series("/var/set/x?q=1", 2))


def test_proxy_pass_variable_upstream_name(diff):
    diff.check(lambda port: [request(port, "GET", "/var/map/x?u=two"),
                             request(port, "GET", "/var/map/y?u=one")])


def test_proxy_pass_unknown_host_needs_resolver(diff):
    diff.check(series("/var/unknown/x", 1))
    for kind in diff.procs:
        out = diff.run(kind, series("/var/unknown/x", 1))
        assert out.response.status == 502
        assert "no resolver defined to resolve no-such-host.invalid, client:" in out.error_log
