"""The read timer of an exchange that proxy/http_proxy.py start_pooled began on a pooled
connection is carried by that connection (ExchangeBase's `timer` is the UpstreamConnection: it is
watched by the deadlines since its first time in the pool). It must fire, stop and move as the
exchange's own timer does on the general way: the same response to the client when the deadline
passes before the head or in the body, and the timer back on the exchange when the connection
is no longer watched."""
from __future__ import annotations

import pytest

from ngate.proxy import http_proxy
from ngate.upstream.pool import NEVER
from tests.unit.test_proxy_start_pooled import CONF, DATE, _general
from tests.harness.fake_transport import Worker

REQUEST = b"GET /api/items?id=7 HTTP/1.1\r\nHost: example.test\r\n\r\n"


def _expire(w, holder) -> None:
    """The deadlines' ticks once `holder`'s deadline has passed (server/clock.py: judged at a
    tick after the next one)."""
    d = w.runtime.deadlines
    holder.deadline = 0.0
    d.prev = 1.0
    d._tick()


def _started(tmp_path, monkeypatch, general: bool):
    """A warmed worker (the first request made the group's balancer) and its second request,
    started (the fast way or the general way) and its head written upstream."""
    if general:
        monkeypatch.setattr(http_proxy, "start_pooled", _general)
    tmp_path.mkdir(exist_ok=True)
    w = Worker(str(tmp_path), CONF)
    for i in range(2):
        uconn, up = w.pooled("backend")
        conn, down = w.client()
        conn.data_received(REQUEST)
        w.turn()
        if i == 0:
            uconn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            w.sent(down)
    return w, uconn, conn, down


@pytest.mark.parametrize("general", [False, True])
def test_the_timer_is_the_connection_s_on_the_fast_way(tmp_path, monkeypatch, general):
    w, uconn, conn, down = _started(tmp_path, monkeypatch, general)
    try:
        ex = uconn.exchange
        watched = w.runtime.deadlines.watched
        assert uconn in watched                         # (since its first time in the pool)
        if general:
            assert ex.timer is True and ex in watched and uconn.deadline == NEVER
        else:
            assert ex.timer is uconn and ex not in watched
            assert uconn.deadline == pytest.approx(w.runtime.deadlines.now + 60.0)
        uconn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        # finished: no timer, the connection back in the pool with its idle deadline
        assert ex.timer is None and ex not in watched
        assert uconn.pool is not None and uconn in watched and uconn.deadline != NEVER
    finally:
        w.close()


def _timed_out(tmp_path, monkeypatch, general: bool, head: bytes):
    w, uconn, conn, down = _started(tmp_path, monkeypatch, general)
    try:
        ex = uconn.exchange
        if head:
            uconn.data_received(head)
        holder = ex if ex.timer is True else ex.timer
        assert holder is (ex if general else uconn)
        _expire(w, holder)
        return DATE.sub(b"", w.sent(down)), down.closed, uconn.closed, ex.timer, \
            ex.ctx.upstream_tries[0].status
    finally:
        w.close()


@pytest.mark.parametrize("head", [
    b"",                                                            # before the head: 504
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",            # in the body: closed
])
def test_the_read_timeout_on_the_connection_is_the_exchange_s(tmp_path, monkeypatch, head):
    fast = _timed_out(tmp_path / "fast", monkeypatch, False, head)
    general = _timed_out(tmp_path / "general", monkeypatch, True, head)
    assert fast == general
    sent, client_closed, upstream_closed, timer, status = fast
    assert upstream_closed and timer is None
    if not head:
        assert sent.startswith(b"HTTP/1.1 504 Gateway Time-out\r\n") and status == 504
    else:
        assert client_closed and sent.endswith(b"abc")


def test_a_connection_no_longer_watched_hands_the_timer_back(tmp_path, monkeypatch):
    """The connection stops being watched while its exchange runs (closed, or handed to a
    tunnel): the exchange's timer goes back to the exchange, with its deadline."""
    w, uconn, conn, down = _started(tmp_path, monkeypatch, False)
    try:
        ex = uconn.exchange
        deadline = uconn.deadline
        uconn._cancel_idle()
        watched = w.runtime.deadlines.watched
        assert uconn not in watched
        assert ex.timer is True and ex in watched and ex.deadline == deadline
    finally:
        w.close()


def test_downstream_backpressure_stops_and_restarts_the_connection_s_timer(tmp_path,
                                                                          monkeypatch):
    w, uconn, conn, down = _started(tmp_path, monkeypatch, False)
    try:
        ex = uconn.exchange
        uconn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        assert ex.timer is uconn
        ex.downstream_paused()
        assert ex.timer is None and uconn.deadline == NEVER
        ex.downstream_resumed()         # re-armed as the general way does: on the exchange
        assert ex.timer is True and ex in w.runtime.deadlines.watched
        uconn.data_received(b"defghij")
        assert ex.timer is None and ex not in w.runtime.deadlines.watched
    finally:
        w.close()
