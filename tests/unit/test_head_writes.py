"""The request heads of body-less proxied requests are written together at the end of a busy
event loop turn (upstream/pool.py HeadWrites): in the order they were made, each once, none
to a connection closed meanwhile; the first head of a turn after a quiet one goes at once. Driven through real HttpConnections and pooled
UpstreamConnections on fake transports (tests/harness/fake_transport.py)."""
from __future__ import annotations

from tests.harness.fake_transport import Worker

CONF = """
events {}
http {
    access_log off;
    upstream backend { server 127.0.0.1:9; keepalive 4; }
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


def _request(path: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n"


def _busy(w) -> None:
    """As after a turn that wrote two heads or more (under load)."""
    w.runtime.pool.head_writes.busy = True


def test_the_heads_of_one_turn_go_out_together_after_it(tmp_path):
    w = Worker(str(tmp_path), CONF)
    try:
        ups = [w.pooled("backend") for _ in range(3)]
        clients = [w.client() for _ in range(3)]
        _busy(w)
        for i, (conn, _down) in enumerate(clients):
            conn.data_received(_request(b"/%d" % i))
        assert not any(up.written for _u, up in ups)        # the turn is not over
        pending = w.runtime.pool.head_writes.pending
        assert [data.split(b" ")[1] for _t, data in pending] == [b"/0", b"/1", b"/2"]
        w.turn()
        assert w.runtime.pool.head_writes.pending == []
        # LIFO pool: the last connection pooled serves the first request
        sent = sorted(up.data() for _u, up in ups)
        assert sent == [_request(b"/%d" % i).replace(b"Host: t", b"Host: backend")
                        for i in range(3)]
        for (uconn, up), (conn, down) in zip(ups, reversed(clients)):
            uconn.data_received(RESPONSE)
            assert w.sent(down).endswith(b"\r\n\r\nok\n") and not up.closed
        w.turn()
        assert all(len(up.written) == 1 for _u, up in ups)  # each head once
    finally:
        w.close()


def test_after_a_quiet_turn_the_first_head_goes_at_once(tmp_path):
    w = Worker(str(tmp_path), CONF)
    try:
        ups = [w.pooled("backend") for _ in range(3)]
        clients = [w.client() for _ in range(3)]
        head_writes = w.runtime.pool.head_writes
        clients[0][0].data_received(_request(b"/0"))
        assert [len(up.written) for _u, up in ups] == [0, 0, 1]     # at once (LIFO pool)
        assert head_writes.pending == []
        clients[1][0].data_received(_request(b"/1"))                # same turn: waits
        clients[2][0].data_received(_request(b"/2"))
        assert [data.split(b" ")[1] for _t, data in head_writes.pending] == [b"/1", b"/2"]
        w.turn()
        assert [len(up.written) for _u, up in ups] == [1, 1, 1]
        assert head_writes.busy                                     # three heads: busy
        for (uconn, _up), (conn, down) in zip(ups, reversed(clients)):
            uconn.data_received(RESPONSE)
        clients[0][0].data_received(_request(b"/3"))                # after a busy turn: waits
        assert len(head_writes.pending) == 1
        w.turn()
        assert not head_writes.busy                                 # that turn had one
        uconn = next(u for u, up in ups if up.written[-1].startswith(b"GET /3 "))
        uconn.data_received(RESPONSE)
        clients[0][0].data_received(_request(b"/4"))                # at once again
        assert head_writes.pending == [] and sum(len(up.written) for _u, up in ups) == 5
    finally:
        w.close()


def test_a_connection_closed_before_the_end_of_the_turn_gets_nothing(tmp_path):
    w = Worker(str(tmp_path), CONF)
    try:
        uconn, up = w.pooled("backend")
        conn, down = w.client()
        _busy(w)
        conn.data_received(_request(b"/gone"))
        assert uconn.exchange is not None
        conn.connection_lost(None)          # the client goes: the upstream connection closes
        assert up.closed and uconn.exchange is None
        w.turn()
        assert up.written == []
    finally:
        w.close()
