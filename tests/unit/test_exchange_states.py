"""The upstream exchange's state machine (proxy/exchange_state.py), without sockets: the table
itself, then whole exchanges driven with bytes through a real HttpConnection and a pooled
UpstreamConnection on fake transports (tests/harness/fake_transport.py), every transition
recorded."""
from __future__ import annotations

import pytest

from ngate.proxy import exchange_base
from ngate.proxy.exchange_state import (BEFORE_HEAD, CONNECTING, DONE, PASSTHROUGH, READING,
                                        SENDING, STREAMING, SWITCHING, TRANSITIONS, TUNNEL,
                                        ExchangeStateError, State, check)
from tests.harness.fake_transport import Worker

# ---------------------------------------------------------------- the table


def test_every_state_has_a_row_and_only_tunnel_and_done_are_terminal():
    assert set(TRANSITIONS) == set(State)
    assert [s for s in State if not TRANSITIONS[s]] == [TUNNEL, DONE]
    assert all(DONE in TRANSITIONS[s] for s in State if s not in (TUNNEL, DONE))
    assert BEFORE_HEAD == {SENDING, READING}


@pytest.mark.parametrize("old, new", [
    (CONNECTING, READING), (READING, SENDING), (STREAMING, READING), (STREAMING, CONNECTING),
    (PASSTHROUGH, STREAMING), (SWITCHING, STREAMING), (TUNNEL, DONE), (DONE, CONNECTING),
])
def test_a_transition_outside_the_table_is_refused(old, new):
    with pytest.raises(ExchangeStateError, match=f"from {old.name} to {new.name}"):
        check(old, new)


def test_a_transition_in_the_table_is_allowed():
    assert check(READING, STREAMING) is STREAMING
    assert check(CONNECTING, CONNECTING) is CONNECTING      # a failed connect: the next peer


# ---------------------------------------------------------------- whole exchanges

CONF = """
events {}
http {
    access_log off;
    upstream backend { server 127.0.0.1:9; keepalive 4; }
    upstream two { server 127.0.0.1:9; server 127.0.0.1:10; keepalive 4; }
    server {
        listen 127.0.0.1:8080;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            add_header X-Tries "$upstream_addr $upstream_status $upstream_bytes_received";
        }
        location /two {
            proxy_pass http://two;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            add_header X-Tries "$upstream_addr $upstream_status $upstream_header_time";
        }
    }
}
"""
GET = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture
def worker(tmp_path, monkeypatch):
    """A Worker whose exchanges record every change of state (through _to or inlined), each
    checked against the table."""
    seen = []
    slot = exchange_base.ExchangeBase.__dict__["state"]

    def get(self):
        return slot.__get__(self)

    def put(self, new):
        try:
            old = slot.__get__(self)
        except AttributeError:      # __init__: the first state
            old = None
        if old is not None:
            assert new in TRANSITIONS[old], (old, new)
            seen.append((old, new))
        slot.__set__(self, new)
    monkeypatch.setattr(exchange_base.ExchangeBase, "state", property(get, put))
    w = Worker(str(tmp_path), CONF)
    w.transitions = seen
    yield w
    w.close()


def _walk(seen) -> list:
    return [seen[0][0]] + [new for _, new in seen] if seen else []


def test_a_response_in_pieces(worker):
    uconn, up = worker.pooled("backend")
    conn, down = worker.client()
    conn.data_received(GET)
    worker.turn()                       # the request head goes out (HeadWrites)
    ex = uconn.exchange
    assert ex.state is READING and up.data().startswith(b"GET /a HTTP/1.1\r\n")
    uconn.data_received(b"HTTP/1.1 200 OK\r\nContent-Le")
    assert ex.state is READING
    uconn.data_received(b"ngth: 5\r\n\r\nab")
    assert ex.state is STREAMING and ex.attempt.header_time is not None
    uconn.data_received(b"cde")
    assert ex.state is DONE and conn.writer is None
    assert _walk(worker.transitions) == [CONNECTING, SENDING, READING, STREAMING, DONE]
    assert worker.sent(down).endswith(b"\r\n\r\nabcde")
    assert b"X-Tries: 127.0.0.1:9 200 40\r\n" in worker.sent(down)
    a, = ex.ctx.upstream_tries
    assert a.connect_time == 0.0 and a.response_time is not None   # pooled: nginx says 0.000
    assert uconn.exchange is None and not up.closed          # back in the pool


def test_an_invalid_head_with_no_other_peer_ends_in_502(worker, capfd):
    uconn, up = worker.pooled("backend")
    conn, down = worker.client()
    conn.data_received(GET)
    ex = uconn.exchange
    uconn.data_received(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n")
    assert ex.state is DONE and up.closed
    assert _walk(worker.transitions) == [CONNECTING, SENDING, READING, DONE]
    assert worker.sent(down).startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert ex.ctx.upstream_tries[0].status == 502
    log = capfd.readouterr().err     # the error log (no error_log: stderr)
    assert "upstream sent invalid header" in log
    assert 'while reading response header from upstream' in log
    assert 'upstream: "http://127.0.0.1:9/a"' in log


def test_a_response_to_head_ends_with_its_head(worker):
    uconn, up = worker.pooled("backend")
    conn, down = worker.client()
    conn.data_received(b"HEAD /a HTTP/1.1\r\nHost: t\r\n\r\n")
    ex = uconn.exchange
    uconn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert ex.state is DONE
    assert _walk(worker.transitions)[-2:] == [STREAMING, DONE]


def test_http09_passes_through_until_the_upstream_closes(worker):
    uconn, up = worker.pooled("backend")
    conn, down = worker.client()
    conn.data_received(GET)
    ex = uconn.exchange
    uconn.data_received(b"no status line\n")
    assert ex.state is PASSTHROUGH
    uconn.data_received(b"more")
    uconn.connection_lost(None)
    assert ex.state is DONE
    assert _walk(worker.transitions)[-3:] == [READING, PASSTHROUGH, DONE]
    assert worker.sent(down) == b"no status line\nmore"
    assert ex.ctx.upstream_tries[0].status == 200


def test_an_interim_head_then_raw_bytes(worker):
    uconn, up = worker.pooled("backend")
    conn, down = worker.client()
    conn.data_received(GET)
    ex = uconn.exchange
    uconn.data_received(b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert ex.state is PASSTHROUGH
    assert _walk(worker.transitions)[-3:] == [READING, STREAMING, PASSTHROUGH]
    assert worker.sent(down).endswith(b"\r\n\r\nHTTP/1.1 200 OK\r\n")


def test_the_client_gone_before_the_head_is_a_499(worker):
    uconn, up = worker.pooled("backend")
    conn, down = worker.client()
    conn.data_received(GET)
    ex = uconn.exchange
    conn.connection_lost(None)
    assert ex.state is DONE and ex.ctx.status == 499 and up.closed
    assert ex.ctx.upstream_tries[0].response_time is not None     # nginx: the try ended
    ex.client_gone()                        # ended once: nothing happens a second time
    assert _walk(worker.transitions)[-2:] == [READING, DONE]


def test_an_upstream_closing_mid_body_is_logged_and_closes_the_client(worker, capfd):
    uconn, up = worker.pooled("backend")
    conn, down = worker.client()
    conn.data_received(GET)
    ex = uconn.exchange
    uconn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    uconn.connection_lost(None)
    assert ex.state is DONE and down.closed
    assert "upstream prematurely closed connection while reading upstream" in \
        capfd.readouterr().err


def test_a_body_streamed_to_the_upstream(worker):
    uconn, up = worker.pooled("backend")
    conn, down = worker.client()
    conf = worker.config
    assert conf is not None
    conn.data_received(b"PUT /a HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabc")
    ex = uconn.exchange
    # proxy_request_buffering on (the default): nothing goes out before the whole body
    assert ex is None and not up.written
    conn.data_received(b"def")
    ex = uconn.exchange
    assert ex.state is READING and up.data().endswith(b"\r\n\r\nabcdef")


def test_a_failed_try_goes_back_to_connecting_and_the_next_peer_answers(worker, capfd):
    first, up1 = worker.pooled("two", 0)
    second, up2 = worker.pooled("two", 1)
    conn, down = worker.client()
    conn.data_received(b"GET /two HTTP/1.1\r\nHost: t\r\n\r\n")
    ex = first.exchange or second.exchange
    u, other = (first, second) if first.exchange else (second, first)
    u.data_received(b"HTTP/1.1 20")          # some bytes: not a stale pooled connection
    u.connection_lost(None)
    assert other.exchange is ex and ex.state is READING
    other.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert ex.state is DONE
    assert _walk(worker.transitions) == [CONNECTING, SENDING, READING, CONNECTING, SENDING,
                                         READING, STREAMING, DONE]
    tried = [a.addr for a in ex.ctx.upstream_tries]
    assert sorted(tried) == ["127.0.0.1:10", "127.0.0.1:9"]
    assert f"X-Tries: {tried[0]}, {tried[1]} 502, 200 -, 0.".encode() in worker.sent(down)
    assert "upstream prematurely closed connection while reading response header" in \
        capfd.readouterr().err


def test_a_chunked_body_is_read_by_nginx_s_decoder_then_llhttp_again(worker):
    """After a chunked head the body goes through proxy/upstream_chunked.py (bare-LF chunk
    lines, which llhttp refuses); the pooled connection's next response is llhttp's again."""
    from ngate.proxy.upstream_chunked import ChunkedResponseBody
    uconn, up = worker.pooled("backend")
    conn, down = worker.client()
    conn.data_received(GET)
    ex = uconn.exchange
    uconn.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n")
    assert ex.state is STREAMING and uconn.parser.__class__ is ChunkedResponseBody
    uconn.data_received(b"2\r\nde\r\n0\n\n")
    assert ex.state is DONE and uconn.parser is None and not up.closed     # pooled
    assert worker.sent(down).endswith(b"\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    conn.data_received(GET)
    ex2 = uconn.exchange
    assert ex2 is not ex
    uconn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert ex2.state is DONE and worker.sent(down).endswith(b"\r\n\r\nok")
    assert type(uconn.parser).__name__ == "HttpResponseParser"      # made by that response


def test_an_invalid_chunk_fails_the_response_and_closes_both(worker, capfd):
    uconn, up = worker.pooled("backend")
    conn, down = worker.client()
    conn.data_received(GET)
    ex = uconn.exchange
    uconn.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert ex.state is DONE and up.closed and down.closed
    assert "upstream sent invalid chunked response while reading upstream" in \
        capfd.readouterr().err


def test_backpressure_both_ways_through_server_flow(worker):
    """The client's reading stops while the upstream cannot take the body and restarts when
    it drains; the upstream's stops while the client cannot take the response (and its read
    timeout with it), both through server/flow.py."""
    uconn, up = worker.pooled("backend")
    conn, down = worker.client()
    put = b"PUT /a HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabcdef"
    conn.data_received(put)
    ex = uconn.exchange
    assert ex.state is READING
    uconn.pause_writing()                   # the upstream's write buffer is full
    assert down.paused
    uconn.resume_writing()
    assert not down.paused
    uconn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    assert ex.state is STREAMING and ex.timer is not None
    conn.pause_writing()                    # the client's write buffer is full
    assert up.paused and ex.timer is None
    conn.resume_writing()
    assert not up.paused and ex.timer is not None
    uconn.data_received(b"cd")
    assert ex.state is DONE


def test_a_closing_connection_is_not_read_again():
    from ngate.server import flow
    from tests.harness.fake_transport import FakeTransport

    class Side:
        def __init__(self):
            self.transport = FakeTransport()
            self.closing = False

    s = Side()
    assert flow.pause(s) and s.transport.paused
    s.closing = True
    assert not flow.resume(s) and s.transport.paused
    s.closing = False
    assert flow.resume(s) and not s.transport.paused
    s.transport = None
    assert not flow.pause(s) and not flow.resume(s) and not flow.pause(None)
    t = FakeTransport()
    flow.pause_transport(t)
    flow.resume_transport(t, closed=True)
    assert t.paused
    flow.resume_transport(t)
    assert not t.paused
