"""A response head llhttp accepted before is not parsed again (proxy/wire_http1.py
known_response, Plan.heads): the client gets the same bytes as through llhttp (but Date), and
anything but a whole plain response in one read still goes through llhttp. Driven with bytes
through a real HttpConnection and pooled UpstreamConnections (tests/harness/fake_transport.py)."""
from __future__ import annotations

import re

import pytest

from ngate.proxy import known_head
from ngate.proxy.wire_http1 import Http1Wire
from tests.harness.fake_transport import Worker

CONF = """
events {}
http {
    access_log off;
    log_format known '$status $bytes_sent $body_bytes_sent $sent_http_content_length '
                     '$upstream_addr $upstream_status $upstream_response_length '
                     '$upstream_bytes_sent $upstream_bytes_received $upstream_connect_time '
                     '$upstream_http_server $upstream_http_content_type $connection_requests';
    upstream backend { server 127.0.0.1:9; keepalive 4; }
    upstream known_two { server 127.0.0.1:9 max_fails=0; server 127.0.0.1:10 max_fails=0; keepalive 4; }
    server {
        listen 127.0.0.1:8080;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /added {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            add_header X-Tries "$upstream_addr $upstream_status";
        }
        location /passed {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_header Server;
            proxy_pass_header Date;
            proxy_hide_header X-Secret;
        }
        location /logged {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            access_log LOGDIR/known.log known;
        }
        location /small {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffer_size 200;
        }
        location = /missing { return 404; }
        error_page 404 /passed;
        location /two {
            proxy_pass http://known_two;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error http_500;
        }
    }
}
"""
DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")


@pytest.fixture
def worker(tmp_path, monkeypatch):
    """A Worker counting the responses that went the known way."""
    w = Worker(str(tmp_path), CONF.replace("LOGDIR", str(tmp_path)))
    w.known = 0
    real = Http1Wire.known_response

    plain = known_head.plain_2xx

    def counted(self, *args):
        w.known += 1
        return real(self, *args)

    def counted_plain(self, *args):         # Http1Wire.data's own way to it
        w.known += 1
        return plain(self, *args)
    monkeypatch.setattr(Http1Wire, "known_response", counted)
    monkeypatch.setattr(known_head, "plain_2xx", counted_plain)
    yield w
    w.close()


def _exchange(worker, uconn, up, request: bytes, response: bytes) -> bytes:
    """One request on a new client connection answered with `response` (one read)."""
    conn, down = worker.client()
    conn.data_received(request)
    worker.turn()                       # the request head goes out (HeadWrites)
    assert uconn.exchange is not None
    worker.plan = uconn.exchange.plan
    uconn.data_received(response)
    return worker.sent(down)


HEADS = [
    b"HTTP/1.1 200 OK\r\nServer: up\r\nDate: Tue, 01 Jan 2030 00:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n",
    b"HTTP/1.1 200\r\nContent-Length: 0\r\nX-Secret: s\r\nSet-Cookie: a=b\r\n"
    b"Last-Modified: Tue, 01 Jan 2030 00:00:00 GMT\r\nETag: \"x\"\r\n\r\n",
    b"HTTP/1.1 404 Nope\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\nno",
]


@pytest.mark.parametrize("path", [b"/", b"/added", b"/passed"])
@pytest.mark.parametrize("response", HEADS)
def test_a_known_head_gives_the_client_the_same_bytes(worker, path, response):
    """The same response twice: llhttp's parse the first time, the known one the second; the
    client's bytes are the same (but Date), and so is the fate of the upstream connection."""
    request = b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nUser-Agent: u\r\n\r\n"
    uconn, up = worker.pooled("backend")
    first = _exchange(worker, uconn, up, request, response)
    reused = not up.closed
    assert worker.known == 0
    if not reused:
        uconn, up = worker.pooled("backend")
    second = _exchange(worker, uconn, up, request, response)
    assert worker.known == 1
    assert DATE.sub(b"\r\nDate: -\r\n", first) == DATE.sub(b"\r\nDate: -\r\n", second)
    assert up.closed is not reused
    assert up.written[0] == up.written[-1] if reused else len(up.written) == 1


def test_a_client_closing_or_on_http10_gets_the_same_bytes(worker):
    uconn, up = worker.pooled("backend")
    for request in (b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                    b"GET / HTTP/1.0\r\nHost: t\r\n\r\n",
                    b"GET / HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n"):
        if worker.known:
            worker.plan.heads.clear()           # llhttp's way again (and no last read kept)
            worker.plan.last_read = None
        known = worker.known
        first = _exchange(worker, uconn, up, request, HEADS[0])
        second = _exchange(worker, uconn, up, request, HEADS[0])
        assert worker.known == known + 1 and not up.closed
        assert DATE.sub(b"", first) == DATE.sub(b"", second)
        assert (b"Connection: close\r\n" in second) is (b"keep-alive" not in request)


@pytest.mark.parametrize("response", [
    HEADS[0] + b"extra",                        # more than Content-Length: logged, closed
    HEADS[0][:-1],                              # the body comes in another read
])
def test_anything_but_the_exact_length_goes_through_llhttp(worker, capfd, response):
    uconn, up = worker.pooled("backend")
    request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    _exchange(worker, uconn, up, request, HEADS[0])
    conn, down = worker.client()
    conn.data_received(request)
    ex = uconn.exchange
    uconn.data_received(response)
    assert worker.known == 0
    if response.endswith(b"extra"):
        assert up.closed and worker.sent(down).endswith(b"ok\n")
        assert 'upstream sent more data than specified in "Content-Length" header' in \
            capfd.readouterr().err
    else:
        assert not ex.ctx.head_sent or ex.state.name == "STREAMING"
        uconn.data_received(b"\n")
        assert ex.state.name == "DONE" and worker.sent(down).endswith(b"ok\n") and not up.closed


def test_a_head_request_goes_through_llhttp(worker):
    uconn, up = worker.pooled("backend")
    _exchange(worker, uconn, up, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", HEADS[0])
    conn, down = worker.client()
    conn.data_received(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    uconn.data_received(HEADS[0][:-3])
    assert worker.known == 0 and worker.sent(down).endswith(b"\r\n\r\n")
    assert b"Content-Length: 3\r\n" in worker.sent(down)


def test_heads_with_framing_or_rewrites_are_not_kept(worker):
    uconn, up = worker.pooled("backend")
    request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    for response in (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                     b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
                     b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
                     b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
                     b"HTTP/1.1 200 OK\r\nX-Accel-Buffering: no\r\nContent-Length: 0\r\n\r\n"):
        for _ in range(2):
            _exchange(worker, uconn, up, request, response)
            assert not up.closed
    assert worker.known == 0 and not worker.plan.heads


def test_a_known_500_goes_to_the_next_peer_as_through_llhttp(worker):
    """proxy_next_upstream http_500: a known head is a failed try the same way; the body of a
    known 500 is dropped with its connection. (The group's name is this file's own: peers'
    health is kept per worker process, by group name and address.)"""
    bad = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\nno"
    request = b"GET /two HTTP/1.1\r\nHost: t\r\n\r\n"
    for known in (0, 1):
        first, up1 = worker.pooled("known_two", 0)
        second, up2 = worker.pooled("known_two", 1)
        conn, down = worker.client()
        conn.data_received(request)
        u, other = (first, second) if first.exchange else (second, first)
        ex = u.exchange
        u.data_received(bad)
        assert other.exchange is ex
        other.data_received(bad)
        assert ex.state.name == "DONE" and worker.sent(down).startswith(b"HTTP/1.1 500 ")
        assert worker.sent(down).endswith(b"\r\n\r\nno")
        assert [a.status for a in ex.ctx.upstream_tries] == [500, 500]
        assert worker.known == (0 if not known else 2)
        for x in (first, second):
            if not x.closed:
                x.close()


def test_an_error_page_target_keeps_the_error_s_status_either_way(worker):
    """error_page 404 /passed: the upstream's 200 head goes out as a 404 (nginx's err_status),
    never kept with that status, and the known head gives the 404 too."""
    uconn, up = worker.pooled("backend")
    direct = b"GET /passed HTTP/1.1\r\nHost: t\r\n\r\n"
    missing = b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"
    through = _exchange(worker, uconn, up, missing, HEADS[0])
    assert through.startswith(b"HTTP/1.1 404 Not Found\r\n") and worker.known == 0
    assert not worker.plan.heads
    first = _exchange(worker, uconn, up, direct, HEADS[0])
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and worker.known == 0
    known = _exchange(worker, uconn, up, missing, HEADS[0])
    assert worker.known == 1
    assert DATE.sub(b"", known) == DATE.sub(b"", through)
    second = _exchange(worker, uconn, up, direct, HEADS[0])
    assert worker.known == 2 and DATE.sub(b"", second) == DATE.sub(b"", first)


@pytest.mark.parametrize("response", [HEADS[0], HEADS[1], HEADS[3]])
def test_a_known_head_logs_the_same_variables(worker, tmp_path, response):
    """$status, $bytes_sent, $upstream_* ... are the same whichever way the head went (the
    known 2xx way is written out in one function: known_head.plain_2xx)."""
    request = b"GET /logged HTTP/1.1\r\nHost: t\r\n\r\n"
    conn, down = worker.client()
    for _ in range(2):
        uconn, up = worker.pooled("backend")
        conn.data_received(request)
        worker.plan = uconn.exchange.plan
        uconn.data_received(response)
    assert worker.known == 1
    with open(tmp_path / "known.log") as f:
        first, second = f.read().splitlines()
    assert first.rsplit(" ", 1)[0] == second.rsplit(" ", 1)[0]
    assert (first[-2:], second[-2:]) == (" 1", " 2")
    assert first.split()[0] == "200"


def test_a_head_over_proxy_buffer_size_by_its_count_is_never_kept(worker):
    """headers_complete counts a head's size with ": " and CRLF per line: a head sent without
    the space fits proxy_buffer_size by its bytes (llhttp takes it) but not by that count, and
    goes through llhttp every time (known_head.learn does not keep it); a kept head goes the
    known way whatever the read's length, with the bytes llhttp's way gives."""
    uconn, up = worker.pooled("backend")
    request = b"GET /small HTTP/1.1\r\nHost: t\r\n\r\n"
    headers = [(b"Content-Length", b"2")] + [(b"X-%d" % i, b"v" * 20) for i in range(6)]
    headers[1] = (b"X-0", b"v" * 23)
    tight = b"HTTP/1.1 200 OK\r\n" + b"".join(n + b":" + v + b"\r\n" for n, v in headers) \
        + b"\r\nok"
    size = 17 + len(b"OK") + sum(len(n) + len(v) + 4 for n, v in headers)
    assert len(tight) <= 200 < size         # the read fits, the count does not
    first = _exchange(worker, uconn, up, request, tight)
    assert worker.known == 0 and first.endswith(b"\r\n\r\nok")
    again = _exchange(worker, uconn, up, request, tight)
    assert worker.known == 0 and DATE.sub(b"", again) == DATE.sub(b"", first)
    assert not worker.plan.heads
    long_body = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 300\r\n\r\n"
                 + b"x" * 300)
    first = _exchange(worker, uconn, up, request, long_body)      # the read: over 200
    assert worker.known == 0 and first.endswith(b"x" * 300)
    again = _exchange(worker, uconn, up, request, long_body)
    assert worker.known == 1 and DATE.sub(b"", again) == DATE.sub(b"", first)


_OTHER = HEADS[0].replace(b"Server: up", b"Server: uq")
_READS = [HEADS[0], HEADS[0], HEADS[0].replace(b"ok\n", b"ko\n"), HEADS[0], _OTHER, _OTHER,
          HEADS[1], HEADS[0], HEADS[3], HEADS[3], HEADS[0]]


def _reads(tmp_path, fast: bool, monkeypatch) -> list:
    """The client's bytes (but Date) for _READS, one after another on one worker's location."""
    if not fast:
        monkeypatch.setattr(Http1Wire, "fast_heads", False)       # llhttp every time
    tmp_path.mkdir(exist_ok=True)
    w = Worker(str(tmp_path), CONF.replace("LOGDIR", str(tmp_path)))
    out = []
    try:
        uconn, up = w.pooled("backend")
        for response in _READS:
            if up.closed:
                uconn, up = w.pooled("backend")
            out.append((DATE.sub(b"", _exchange(w, uconn, up, b"GET /passed HTTP/1.1\r\n"
                                                b"Host: t\r\n\r\n", response)), up.closed))
        return out
    finally:
        monkeypatch.undo()
        w.close()


def test_the_last_read_kept_answers_only_the_same_bytes(tmp_path, monkeypatch):
    """Plan.last_read (Http1Wire.data's last read of a known head, whole) answers a read of
    the same bytes only: a read differing in its head or body goes through Plan.heads or
    llhttp, and the client gets what llhttp's way gives, read by read."""
    fast = _reads(tmp_path / "fast", True, monkeypatch)
    assert fast == _reads(tmp_path / "llhttp", False, monkeypatch)
    assert fast[2][0].endswith(b"ko\n") and fast[3][0].endswith(b"ok\n")
    assert b"Server: uq" in fast[5][0] and b"Server: up" in fast[7][0]  # (Server passed)
