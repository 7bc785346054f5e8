"""proxy/http_proxy.py start_pooled (the usual proxied request's start, connect and attach written
out in one function) leaves the exchange, its try and the connection as the general way does
(fill, UpstreamExchange.start, connect, KeepalivePool.get, attach, send_request), sends the same
bytes upstream and gives the client the same response."""
from __future__ import annotations

import re

import pytest

from ngate.proxy import http_proxy
from ngate.proxy.exchange_base import ExchangeBase, fill, new
from ngate.proxy.exchange import UpstreamExchange
from ngate.proxy.wire_http1 import HTTP1
from ngate.upstream.attempts import Attempt
from tests.harness.fake_transport import Worker

CONF = """
events {}
http {
    access_log off;
    upstream backend { server 127.0.0.1:9; keepalive 8; }
    server {
        listen 127.0.0.1:8080;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /limited/ {
            proxy_pass http://backend/x/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_limit_rate 100000;
        }
        location /rw/ {
            if ($http_x_rw) { rewrite ^/rw/(.*)$ /api/$1?rw=1 break; }
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
"""
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: up\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 3\r\n\r\nok\n")
DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")
# per-request objects and clock readings: compared by their own fields or not at all
_OBJECTS = {"ctx", "conn", "attempt", "uconn", "throttle", "started", "deadline", "loop",
            "deadlines", "plan", "upstream", "conf", "body", "peer", "wire", "pool_key", "timer"}


def _timer(ex, deadlines):
    """The exchange's read timer as the deadlines see it, wherever it is kept (ExchangeBase's
    `timer`: the exchange watched, or its pooled connection carrying it): armed, its holder
    watched, its deadline's distance from the tick's time in seconds (the timeout)."""
    t = ex.timer
    if t is None:
        return None
    holder = ex if t is True else t
    assert t is True or t is ex.uconn
    d = holder.deadline - deadlines.now
    return holder in deadlines.watched, round(d) if d < 3600 else "far", ex.timeout


def _general(ctx, conf, pp, up, plan, *_args) -> None:
    ex = new(UpstreamExchange)
    fill(ex, ctx, up, HTTP1, plan)
    ex.start()


def _run(tmp_path, request: bytes, general: bool, monkeypatch, batch: str = "quiet"):
    """(exchange fields, Attempt fields, upstream bytes, client bytes, fast path taken) of
    `request` on a warmed worker (the balancer made by a first request). `batch`: the request
    head's HeadWrites at the request (quiet: written at once; busy: the last turn wrote more
    than one; held: a head was written earlier in the turn)."""
    taken = []
    real = _general if general else http_proxy.start_pooled

    def counted(*args):
        taken.append(True)
        return real(*args)
    monkeypatch.setattr(http_proxy, "start_pooled", counted)
    tmp_path.mkdir(exist_ok=True)
    w = Worker(str(tmp_path), CONF)
    try:
        for i in range(2):                  # the first makes the group's balancer
            uconn, up = w.pooled("backend")
            conn, down = w.client()
            hw = w.runtime.pool.head_writes
            if i == 1 and batch == "busy":
                hw.busy = True
            elif i == 1 and batch == "held":
                hw.scheduled = True
                hw.count = 1
            conn.data_received(request)
            batched = (hw.count, hw.scheduled, hw.busy,
                       [(t is up, data) for t, data in hw.pending], list(up.written))
            if i == 1 and batch == "held":
                hw.turn_end()       # (no call_soon was made for it)
            ex = uconn.exchange
            fields = {name: getattr(ex, name) for name in ExchangeBase.__slots__
                      if name not in _OBJECTS}
            fields["throttle"] = type(ex.throttle).__name__
            fields["timer"] = _timer(ex, w.runtime.deadlines)
            fields["body"] = ex.body.mode, ex.body.done
            a = ex.attempt
            tried = {name: getattr(a, name) for name in Attempt.__slots__ if name != "start"}
            conn_fields = (uconn.requests, uconn.pool, uconn.head_bytes, uconn.head_buf,
                           uconn.tail, conn.writer is ex, ex.ctx.expect_tested,
                           ex.ctx.upstream_tries == [a], ex.peer.name, ex.pool_key[1:],
                           ex.pool_key[0] == id(ex.upstream), batched)
            w.turn()
            sent_up = up.data()
            uconn.data_received(RESPONSE)
            got = DATE.sub(b"", w.sent(down))
            if i == 0:
                taken.clear()
        return fields, tried, conn_fields, sent_up, got, bool(taken)
    finally:
        w.close()


@pytest.mark.parametrize("request_", [
    b"GET /api/items?id=7 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n",
    b"GET /limited/a%20b?q HTTP/1.1\r\nHost: example.test\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
])
def test_start_pooled_is_the_general_way(tmp_path, monkeypatch, request_):
    fast = _run(tmp_path / "fast", request_, False, monkeypatch)
    general = _run(tmp_path / "general", request_, True, monkeypatch)
    assert fast[-1], "the fast way was not taken"
    assert fast[:-1] == general[:-1]


@pytest.mark.parametrize("batch", ["quiet", "busy", "held"])
def test_start_pooled_writes_the_head_as_head_writes(tmp_path, monkeypatch, batch):
    """The request head's write (HeadWrites.write, written out in start_pooled): at once on a
    quiet loop, held to the turn's end after a busy turn or behind an earlier head."""
    request_ = b"GET /api/items?id=7 HTTP/1.1\r\nHost: example.test\r\n\r\n"
    fast = _run(tmp_path / "fast", request_, False, monkeypatch, batch)
    general = _run(tmp_path / "general", request_, True, monkeypatch, batch)
    assert fast[-1], "the fast way was not taken"
    assert fast[:-1] == general[:-1]
    count, scheduled, busy, pending, written = fast[2][-1]
    assert (count, scheduled, len(pending), len(written)) == \
        {"quiet": (1, True, 0, 1), "busy": (1, True, 1, 0), "held": (2, True, 1, 0)}[batch]


@pytest.mark.parametrize("request_", [
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab",
    b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
])
def test_requests_start_pooled_leaves_to_the_general_way(tmp_path, monkeypatch, request_):
    assert not _run(tmp_path, request_, False, monkeypatch)[-1]


PLAN_CONF = """
events {}
http {
    upstream one { server 127.0.0.1:9; keepalive 8; }
    upstream two { server 127.0.0.1:9; server 127.0.0.1:10; keepalive 8; }
    upstream counted { least_conn; server 127.0.0.1:9; keepalive 8; }
    upstream nokeep { server 127.0.0.1:9; }
    upstream backup { server 127.0.0.1:9 backup; keepalive 8; }
    server {
        listen 127.0.0.1:8080;
        location /one { proxy_pass http://one; }
        location /two { proxy_pass http://two; }
        location /counted { proxy_pass http://counted; }
        location /nokeep { proxy_pass http://nokeep; }
        location /tls { proxy_pass https://one; }
        location /body { proxy_pass http://one; proxy_set_body "x"; }
        location /var { proxy_pass http://$host; }
        location /addr { proxy_pass http://127.0.0.1:9; }
        location /backup { proxy_pass http://backup; }
    }
}
"""


def test_the_plan_s_pool_key_is_the_connect_s_for_a_plain_group_of_one(tmp_path):
    """Plan.pool_key (what proxy_handler tests before start_pooled): the key PeerSide.connect
    makes for a keepalive group of one server over http:// without counting nor
    proxy_set_body; None for anything else (the general way then)."""
    w = Worker(str(tmp_path), PLAN_CONF)
    try:
        plans = {loc.conf.proxy.pass_.template is None and loc.pattern or "var":
                 loc.conf.upstream_plan for loc in w.config.servers[0].locations}
        one = w.config.upstreams["one"]
        assert plans["/one"].pool_key == (id(one), "127.0.0.1", 9)
        for name in ("/two", "/counted", "/nokeep", "/tls", "/body", "var", "/addr"):
            assert plans[name].pool_key is None, name
        # a group of one backup server: a key, but its balancer has no single server
        # (proxy_handler's runtime test), so the general way
        assert plans["/backup"].pool_key is not None
    finally:
        w.close()


def test_a_group_without_a_single_server_takes_the_general_way(tmp_path, monkeypatch):
    taken = []
    monkeypatch.setattr(http_proxy, "start_pooled", lambda *a: taken.append(a))
    w = Worker(str(tmp_path), PLAN_CONF)
    try:
        for _ in range(2):                  # the first makes the group's balancer
            w.pooled("backup")
            conn, _down = w.client()
            conn.data_received(b"GET /backup HTTP/1.1\r\nHost: h\r\n\r\n")
        assert not taken
        for _ in range(2):
            w.pooled("one")
            conn, _down = w.client()
            conn.data_received(b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n")
        assert len(taken) == 1
    finally:
        w.close()


_HEADS = [
    b"GET /api/items?id=7 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n",
    b"GET /api/items?id=7 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n",
    b"GET /api/items?id=8 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n",
    b"HEAD /api/items?id=8 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n",
    b"GET /api/items?id=8 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: u\r\n\r\n",
    b"GET /api/items?id=8 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: u\r\n\r\n",
    b"GET /limited/a HTTP/1.1\r\nHost: example.test\r\nUser-Agent: u\r\n\r\n",
    b"GET /api/items?id=7 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n",
    b"GET /api/items?id=7 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n",
    b"GET /rw/a?q=2 HTTP/1.1\r\nHost: example.test\r\n\r\n",
    b"GET /rw/a?q=2 HTTP/1.1\r\nHost: example.test\r\nX-Rw: 1\r\n\r\n",
    b"GET /rw/a?q=2 HTTP/1.1\r\nHost: example.test\r\n\r\n",
    b"GET /rw/a?q=2 HTTP/1.1\r\nHost: example.test\r\nX-Rw: 1\r\n\r\n",
    b"GET /rw/a?q=2 HTTP/1.1\r\nHost: example.test\r\nX-Rw: 1\r\n\r\n",
]


def _sent_upstream(tmp_path, general: bool, monkeypatch) -> list:
    """The request heads _HEADS send upstream, one after another on one worker."""
    if general:
        monkeypatch.setattr(http_proxy, "start_pooled", _general)
    tmp_path.mkdir(exist_ok=True)
    w = Worker(str(tmp_path), CONF)
    out = []
    try:
        for request in [_HEADS[0]] + _HEADS:       # the first makes the group's balancer
            uconn, up = w.pooled("backend")
            conn, down = w.client()
            conn.data_received(request)
            w.turn()
            out.append(up.data())
            uconn.data_received(RESPONSE)
        return out[1:]
    finally:
        w.close()


def test_the_last_request_head_kept_is_sent_only_for_the_same_request(tmp_path, monkeypatch):
    """start_pooled keeps the location's last request head (Plan.last_head) for a request
    with the same header tuple, URI, arguments and method: a request differing in any of them
    (or whose arguments a rewrite changed) is built again (build_request_head's bytes, request
    by request)."""
    fast = _sent_upstream(tmp_path / "fast", False, monkeypatch)
    general = _sent_upstream(tmp_path / "general", True, monkeypatch)
    assert fast == general
    assert len(set(fast)) == 7
    assert fast[-1].startswith(b"GET /api/a?rw=1&q=2 HTTP/1.1\r\n")
    assert fast[-3].startswith(b"GET /rw/a?q=2 HTTP/1.1\r\n")
