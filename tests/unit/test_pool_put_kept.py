"""The keepalive pool's state after a response, the known way against the general way.

proxy/known_head.py plain_2xx puts a connection pooled before back in the pool itself, through
the idle stack and group order KeepalivePool.put kept on the connection (upstream/pool.py), and
proxy/http_proxy.py proxy_handler and start_pooled take one through them and Plan.pool_stack:
no key lookup. The same requests and responses, answered by llhttp (Http1Wire.fast_heads off:
release -> _pool -> KeepalivePool.put, KeepalivePool.get's order), leave the pool field by field
as the known way leaves it, response by response and after each turn's trim."""
from __future__ import annotations

from ngate.proxy import known_head
from ngate.proxy.wire_http1 import Http1Wire
from tests.harness.fake_transport import Worker

CONF = """
events {}
http {
    access_log off;
    upstream backend { server 127.0.0.1:9; keepalive 2; keepalive_timeout 33s; }
    server {
        listen 127.0.0.1:8080;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
"""
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
# (clients in one turn, the order their responses come in)
ROUNDS = [(1, [0]), (3, [2, 0, 1]), (2, [1, 0]), (1, [0]), (3, [0, 1, 2]), (2, [0, 1])]


def _state(w, ups) -> tuple:
    """The pool as it holds the connections `ups` (by index), field by field."""
    pool = w.runtime.pool
    index = {id(u): i for i, (u, _t) in enumerate(ups)}
    group = id(w.config.upstreams["backend"])
    deadlines = w.runtime.deadlines
    return (
        {(key[0] == group, *key[1:]): [index[id(u)] for u in stack]
         for key, stack in pool.idle.items()},
        [(index[id(u)], key[0] == group, *key[1:]) for u, key in pool.order.get(group, {}).items()],
        [(u.pool is pool, u.group_id == group, u.exchange is None,
          u.deadline,
          u in deadlines.watched, u.idle_timer is deadlines, u.closed, u.requests,
          u.idle_stack is pool.idle.get(next(iter(pool.idle), None)),
          u.idle_order is pool.order.get(group))
         for u, _t in ups])


def _run(tmp_path, fast: bool, monkeypatch) -> list:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(Http1Wire, "fast_heads", False)       # llhttp every time
        return _rounds(tmp_path)


class _Clock:
    """The deadlines' loop with a time of its own, one second later at each read (the
    deadlines' tick time half a second earlier): the idle deadlines' values compare across
    runs."""

    def __init__(self, loop) -> None:
        self.loop = loop
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def __getattr__(self, name):
        return getattr(self.loop, name)


def _rounds(tmp_path) -> list:
    tmp_path.mkdir(exist_ok=True)
    w = Worker(str(tmp_path), CONF)
    clock = w.runtime.deadlines.loop = _Clock(w.loop)
    states = []
    try:
        ups = [w.pooled("backend") for _ in range(3)]
        for clients, order in ROUNDS:
            conns = []
            taken = []                                  # client by client, its connection
            for _ in range(clients):
                conn, down = w.client()
                conn.data_received(REQUEST)
                conns.append(down)
                taken.append(next(u for u, _t in ups
                                  if u.exchange is not None and u.exchange.ctx.conn is conn))
            states.append(_state(w, ups))
            w.turn()
            for i in order:
                clock.now += 1.0
                w.runtime.deadlines.now = clock.now - 0.5   # (a tick's time: a deadline's stamp)
                taken[i].data_received(RESPONSE)
                states.append(_state(w, ups))
            w.turn()                                    # the trim at the turn's end
            for down in conns:
                assert w.sent(down).endswith(b"\r\n\r\nok\n")
            states.append(_state(w, ups))
            for i, (u, _t) in enumerate(ups):           # one closed by the trim: a new one
                if u.closed:
                    ups[i] = w.pooled("backend")
        return states
    finally:
        w.close()


def test_the_known_ways_put_and_get_leave_the_pool_as_the_general_way(tmp_path, monkeypatch):
    calls = []
    plain = known_head.plain_2xx

    def counted(*args):
        calls.append(1)
        return plain(*args)
    monkeypatch.setattr(known_head, "plain_2xx", counted)
    fast = _run(tmp_path / "fast", True, monkeypatch)
    assert len(calls) >= 10                     # every response but the first went that way
    general = _run(tmp_path / "general", False, monkeypatch)
    assert len(fast) == len(general)
    for i, (a, b) in enumerate(zip(fast, general)):
        assert a == b, i
