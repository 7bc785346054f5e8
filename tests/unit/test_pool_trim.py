"""An upstream group's keepalive limit (upstream/pool.py): when responses put more than
`keepalive` idle connections in the pool, its least recently used ones are closed at the end
of the event loop's turn, down to the limit; a request read in that turn first takes the most
recently freed one (no new connection, none closed for it). Driven through real HttpConnections
and pooled UpstreamConnections on fake transports (tests/harness/fake_transport.py), so both
ways a connection goes back to the pool are covered (llhttp's, then a known head's,
proxy/known_head.py plain_2xx)."""
from __future__ import annotations

import pytest

from tests.harness.fake_transport import Worker

CONF = """
events {}
http {
    access_log off;
    upstream backend { server 127.0.0.1:9; keepalive 2; }
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


def _three_in_use(w, learned: bool):
    """Three upstream connections serving three clients' requests (the pool is empty after);
    `learned`: the response head is known first (plain_2xx pools the connections)."""
    group = id(w.config.upstreams["backend"])
    order = w.runtime.pool.order.setdefault(group, {})
    ups = []
    clients = []
    if learned:
        ups.append(w.pooled("backend"))
        conn, down = w.client()
        conn.data_received(REQUEST)
        w.turn()
        ups[0][0].data_received(RESPONSE)       # llhttp's way: the head is kept
        assert w.sent(down).endswith(b"\r\n\r\nok\n")
        assert list(order) == [ups[0][0]]
    for i in range(3):
        if not (learned and i == 0):
            ups.append(w.pooled("backend"))
        conn, down = w.client()
        conn.data_received(REQUEST)             # takes the one just pooled
        clients.append((conn, down))
    w.turn()
    assert not order
    return ups, clients, order


@pytest.mark.parametrize("learned", [False, True])
def test_over_the_limit_the_least_recently_used_closes_at_the_turns_end(tmp_path, learned):
    w = Worker(str(tmp_path), CONF)
    try:
        ups, clients, order = _three_in_use(w, learned)
        for (uconn, _up), (_conn, down) in zip(ups, clients):
            uconn.data_received(RESPONSE)
        assert len(order) == 3                                  # until the turn's end
        assert not any(up.closed for _u, up in ups)
        for _conn, down in clients:
            assert w.sent(down).endswith(b"\r\n\r\nok\n")      # (w.sent ends the turn)
        assert list(order) == [ups[1][0], ups[2][0]]
        assert [up.closed for _u, up in ups] == [True, False, False]    # the first freed
    finally:
        w.close()


@pytest.mark.parametrize("learned", [False, True])
def test_a_request_of_the_same_turn_takes_a_freed_connection_none_closes(tmp_path, learned):
    w = Worker(str(tmp_path), CONF)
    try:
        ups, clients, order = _three_in_use(w, learned)
        for (uconn, _up), _client in zip(ups, clients):
            uconn.data_received(RESPONSE)
        assert len(order) == 3
        conn, down = clients[0]
        conn.data_received(REQUEST)             # the same turn: the last one freed
        assert list(order) == [ups[0][0], ups[1][0]]
        w.turn()
        assert not any(up.closed for _u, up in ups)
        assert list(order) == [ups[0][0], ups[1][0]]
        assert ups[2][1].written[-1].startswith(b"GET / HTTP/1.1\r\n")   # its second head
        ups[2][0].data_received(RESPONSE)
        w.turn()
        assert list(order) == [ups[1][0], ups[2][0]]
        assert [up.closed for _u, up in ups] == [True, False, False]
    finally:
        w.close()


def test_a_request_that_found_no_idle_connection_takes_one_freed_in_its_turn(tmp_path):
    """connect() found the pool empty: the new connection's first step runs after the rest of
    the turn (proxy/exchange_peer.py _open), and takes a connection a response of that turn
    freed meanwhile instead of opening one; with none freed, it opens one."""
    w = Worker(str(tmp_path), CONF)
    try:
        opened = []

        async def create_connection(factory, *args, **kwargs):
            opened.append(args)
            raise ConnectionRefusedError(111, "Connection refused")
        w.loop.create_connection = create_connection
        (u1, t1), = [w.pooled("backend")]
        c1, d1 = w.client()
        c1.data_received(REQUEST)               # takes u1
        w.turn()
        c2, d2 = w.client()
        c2.data_received(REQUEST)               # the pool is empty: a connect
        u1.data_received(RESPONSE)              # the same turn: u1 back in the pool
        assert w.sent(d1).endswith(b"\r\n\r\nok\n")    # (w.sent ends the turn)
        w.turn()
        assert not opened
        assert len(t1.written) == 2 and t1.written[1].startswith(b"GET / HTTP/1.1\r\n")
        assert u1.exchange is not None and u1.exchange.reused
        u1.data_received(RESPONSE)
        assert w.sent(d2).endswith(b"\r\n\r\nok\n")
        c3, d3 = w.client()
        c3.data_received(REQUEST)               # takes u1 again
        c4, d4 = w.client()
        c4.data_received(REQUEST)               # none idle, none freed in the turn: opens
        w.turn()
        w.turn()
        assert len(opened) >= 1 and opened[0] == ("127.0.0.1", 9)
    finally:
        w.close()
