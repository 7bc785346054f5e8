"""Client responses written at the end of the loop's turn (server/turn_writes.py): one write per
connection per turn, and the order of everything the client receives kept: deferred bytes go out
before a close, a lingering close's write_eof, the next response written at once, and a tunnel's
first bytes. Driven through a real HttpConnection on a recording transport (and a pooled upstream
connection for the proxied cases: tests/harness/fake_transport.py)."""
from __future__ import annotations

import os

import pytest

from ngate.server.connection import HttpConnection
from ngate.server.turn_writes import DEFER_MAX, DeferredTransport, TurnWrites
from tests.harness.fake_transport import FakeTransport, Worker

BIG = DEFER_MAX + 4096          # a static file too large to be deferred: written at once

CONF = """
events {}
http {
    access_log off;
    upstream backend { server 127.0.0.1:9; keepalive 4; }
    server {
        listen 127.0.0.1:8080;
        location /r { return 200 "ok\\n"; }
        location /big { root %s; }
        location /ws {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }
    }
}
"""
GET_R = b"GET /r HTTP/1.1\r\nHost: t\r\n\r\n"
CLOSE_R = b"GET /r HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
GET_BIG = b"GET /big/f HTTP/1.1\r\nHost: t\r\n\r\n"
UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
SWITCHED = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


class Recording(FakeTransport):
    """A client transport that records writes, write_eof and close in the order they came."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list = []
        self.eof = False

    def write(self, data) -> None:
        super().write(data)
        self.events.append(("write", bytes(data)))

    def close(self) -> None:
        super().close()
        self.events.append(("close",))

    def abort(self) -> None:
        super().close()
        self.events.append(("abort",))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True
        self.events.append(("eof",))

    def is_reading(self) -> bool:
        return not self.paused

    def kinds(self) -> list:
        return [e[0] for e in self.events]


@pytest.fixture
def worker(tmp_path):
    www = tmp_path / "www" / "big"
    www.mkdir(parents=True)
    (www / "f").write_bytes(b"b" * BIG)
    w = Worker(str(tmp_path), CONF % (tmp_path / "www"))
    yield w
    w.close()


def _busy(worker) -> None:
    """As after a busy turn: every response of the next turn waits for its end (TurnWrites)."""
    worker.runtime.client_writes.busy = True


def _client(worker):
    _busy(worker)
    conn = HttpConnection(worker.runtime, worker.listen)
    t = Recording()
    conn.connection_made(t)
    t.protocol = conn
    return conn, t


def test_the_responses_of_a_turn_go_out_at_its_end_in_one_write(worker):
    conn, t = _client(worker)
    conn.data_received(GET_R + GET_R)           # two pipelined requests, answered at once
    assert t.events == [] and conn.transport.get_write_buffer_size() > 0
    worker.turn()
    assert t.kinds() == ["write"]
    assert t.events[0][1].count(b"HTTP/1.1 200 OK\r\n") == 2 and t.events[0][1].endswith(b"ok\n")
    worker.turn()
    assert t.kinds() == ["write"]               # each byte once
    conn.connection_lost(None)


def test_a_close_sends_the_deferred_response_first(worker):
    conn, t = _client(worker)
    conn.data_received(CLOSE_R)
    assert t.kinds() == ["write", "close"]      # at once: the close does not wait for the turn
    assert t.events[0][1].startswith(b"HTTP/1.1 200 OK\r\n") and t.events[0][1].endswith(b"ok\n")
    worker.turn()
    assert t.kinds() == ["write", "close"]
    conn.connection_lost(None)


def test_a_lingering_close_sends_the_deferred_responses_before_its_eof(worker):
    conn, t = _client(worker)
    conn.data_received(GET_R + CLOSE_R + GET_R)     # unread bytes after the last: lingering
    assert t.kinds() == ["write", "eof"]
    assert t.events[0][1].count(b"HTTP/1.1 200 OK\r\n") == 2
    conn.connection_lost(None)


def test_a_response_written_at_once_goes_after_the_deferred_one(worker):
    conn, t = _client(worker)
    conn.data_received(GET_R + GET_BIG)
    assert t.kinds() == ["write", "write"]
    first, second = t.events[0][1], t.events[1][1]
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b"ok\n")
    assert second.startswith(b"HTTP/1.1 200 OK\r\n") and second.endswith(b"b" * BIG)
    conn.connection_lost(None)


def test_the_101_goes_out_before_the_tunnel_s_first_bytes(worker):
    uconn, up = worker.pooled("backend")
    conn, t = _client(worker)
    conn.data_received(UPGRADE)
    worker.turn()                               # the request head goes out (HeadWrites)
    assert up.data().startswith(b"GET /ws HTTP/1.1\r\n")
    _busy(worker)
    uconn.data_received(SWITCHED + b"\x81\x02hi")  # the 101 and a frame in one read
    assert type(t.protocol).__name__ == "Side"     # the tunnel took the transport
    assert t.kinds() == ["write", "write"] and t.events[1][1] == b"\x81\x02hi"
    assert t.events[0][1].startswith(b"HTTP/1.1 101 ") and t.events[0][1].endswith(b"\r\n\r\n")
    worker.turn()
    assert len(t.events) == 2


def test_on_a_quiet_loop_the_first_response_of_a_turn_goes_at_once(worker):
    conn, t = _client(worker)
    worker.runtime.client_writes.busy = False   # the last turn wrote one response (or none)
    conn.data_received(GET_R)
    assert t.kinds() == ["write"]               # at once: nothing to batch it with
    conn.data_received(GET_R + GET_R)           # the same turn: these wait for its end
    assert t.kinds() == ["write"]
    worker.turn()
    assert t.kinds() == ["write", "write"] and t.events[1][1].count(b"HTTP/1.1 200 OK") == 2
    assert worker.runtime.client_writes.busy    # three responses in that turn: busy
    conn.data_received(GET_R)                   # after a busy turn: waits
    assert t.kinds() == ["write", "write"]
    worker.turn()
    assert t.kinds() == ["write", "write", "write"]
    assert not worker.runtime.client_writes.busy    # that turn had one
    conn.connection_lost(None)


# ---------------------------------------------------------------- DeferredTransport alone

@pytest.fixture
def deferred():
    import uvloop
    loop = uvloop.new_event_loop()
    t = Recording()
    turn = TurnWrites(loop)
    turn.busy = True
    yield loop, t, DeferredTransport(t, turn)
    loop.close()


def _turn(loop) -> None:
    import asyncio
    loop.run_until_complete(asyncio.sleep(0))


def test_a_connection_closed_meanwhile_is_skipped(deferred):
    loop, t, d = deferred
    d.write(b"abc")
    t.closed = True                 # the client reset it (connection_lost comes next)
    _turn(loop)
    assert t.events == []


def test_deferred_bytes_count_in_the_buffer_size_until_written(deferred):
    loop, t, d = deferred
    d.write(b"abc")
    d.write(b"de")
    assert d.get_write_buffer_size() == 5 and t.events == []
    _turn(loop)
    assert t.events == [("write", b"abcde")] and d.get_write_buffer_size() == 0


def test_mutable_or_large_data_goes_at_once_after_the_deferred(deferred):
    loop, t, d = deferred
    buf = bytearray(b"xyz")
    d.write(b"head")
    d.write(memoryview(buf))        # static/sender.py reuses its buffer: never kept
    buf[:] = b"XXX"
    d.write(b"h2")
    d.write(os.urandom(DEFER_MAX))  # with the deferred "h2": over the limit
    assert [e[1][:4] for e in t.events[:3]] == [b"head", b"xyz", b"h2"]
    assert len(t.events) == 4 and len(t.events[3][1]) == DEFER_MAX
    _turn(loop)
    assert len(t.events) == 4


def test_abort_drops_the_deferred_and_detach_sends_them(deferred):
    loop, t, d = deferred
    d.write(b"gone")
    d.abort()
    _turn(loop)
    assert t.events == [("abort",)]
    t2 = Recording()
    d2 = DeferredTransport(t2, d.turn)
    d2.write(b"101")
    assert d2.detach() is t2 and t2.events == [("write", b"101")]
