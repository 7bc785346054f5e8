"""HTTP/2 pieces without sockets: the HTTP/1.1 head -> HEADERS translation, the config of
`http2`/`listen ... http2`/`http2_*`, and the registry classes that make -V list the module."""
from __future__ import annotations

import pytest

from ngate.config import directives
from ngate.http2.head import h1_to_h2
from tests.unit._config_helpers import load_http as load


def test_head_translation_drops_hop_by_hop_headers():
    status, headers, chunked = h1_to_h2(
        b"HTTP/1.1 404 Not Found\r\nServer: ngate\r\nConnection: keep-alive\r\n"
        b"Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nSet-Cookie: a\r\n"
        b"Set-Cookie: b")
    assert status == 404 and chunked
    assert headers == [(b":status", b"404"), (b"server", b"ngate"), (b"x-a", b"1"),
                       (b"set-cookie", b"a"), (b"set-cookie", b"b")]


def test_http2_directives_are_implemented():
    for name in ("http2", "http2_max_concurrent_streams", "http2_max_field_size",
                 "http2_max_header_size", "http2_idle_timeout", "http2_recv_timeout",
                 "http2_chunk_size", "http2_body_preread_size"):
        assert directives.REGISTRY[name][0].support == directives.IMPLEMENTED, name


def test_server_settings(tmp_path):
    cfg = load(tmp_path, "server { listen 8080 http2; http2_max_concurrent_streams 4;"
                         " http2_max_field_size 1k; http2_idle_timeout 5s; }"
                         " server { listen 8081; http2 on; }")
    a, b = cfg.servers
    assert a.listens[0].http2 and not a.http2
    assert (a.http2_max_concurrent_streams, a.http2_max_field_size, a.http2_idle_timeout) == \
        (4, 1024, 5.0)
    assert b.http2 and (b.http2_max_header_size, b.http2_body_preread_size) == (16384, 65536)


@pytest.mark.parametrize("body, message", [
    ("server { http2 maybe; }", 'it must be "on" or "off"'),
    ("server { http2_max_concurrent_streams x; }", "invalid number"),
    ("location / { http2 on; }", '"http2" directive is not allowed here'),
])
def test_bad_values(tmp_path, body, message):
    from ngate.errors import ConfigError
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, f"server {{ {body} }}" if body.startswith("location") else body)


def test_response_block_is_the_fields_encoded_and_kept_for_a_second(monkeypatch):
    """head.response_block: the HPACK block of response_fields' list (decoded back by the hpack
    library), its HTTP/1.1 size, the same bytes object within a second and a new Date after."""
    import hpack

    from ngate.http2 import head
    from ngate.http2.hpack_out import StatelessEncoder

    now = [1_800_000_000.2]
    monkeypatch.setattr(head, "_time", lambda: now[0])
    monkeypatch.setattr(head.resp, "DATE", head.resp._DateCache())
    monkeypatch.setattr(head.resp, "time", type("T", (), {"time": staticmethod(lambda: now[0])}))
    block, size = head.response_block(200, True, b"text/plain", 3)
    fields, fsize = head.response_fields(200, content_type=b"text/plain", content_length=3)
    assert (block, size) == (StatelessEncoder().encode(fields), fsize)
    decoded = hpack.Decoder().decode(block, raw=True)
    assert decoded[0] == (b":status", b"200") and (b"content-length", b"3") in decoded
    assert (b"date", b"Fri, 15 Jan 2027 08:00:00 GMT") in decoded
    assert head.response_block(200, True, b"text/plain", 3)[0] is block
    assert head.response_block(404, False, None, None)[0] != block
    now[0] += 1
    later = hpack.Decoder().decode(head.response_block(200, True, b"text/plain", 3)[0], raw=True)
    assert (b"date", b"Fri, 15 Jan 2027 08:00:01 GMT") in later


def test_stream_reads_the_connection_attributes_of_a_downstream_connection():
    """An Http2Stream is the request path's `ctx.conn`: what an HTTP/1.x connection offers
    (server/connection.py's slots the phases and variables read) it has, the connection-wide
    ones read from its HTTP/2 connection, the per-request ones its own; no __getattr__ (which
    would make every attribute read of a stream take CPython's slow path)."""
    from types import SimpleNamespace

    from ngate.http2.stream import Http2Stream
    from ngate.http2.stream_transport import StreamTransport
    from ngate.server.connection import HttpConnection

    h2c = SimpleNamespace(
        listen=object(), runtime=object(), remote_addr="192.0.2.1", remote_port="4711",
        number=7, server_addr="127.0.0.1", server_port="8443", tls="tls", proxy_protocol=None,
        scheme="https", proto="h2", started=1.5, deadline=2.5, requests=1,
        conf=SimpleNamespace(http2_body_preread_size=1234))
    s = Http2Stream()
    s.open_on(h2c, 3)
    assert "__getattr__" not in vars(Http2Stream)
    for name in ("number", "server_addr", "server_port", "tls", "proxy_protocol", "scheme",
                 "proto", "started", "deadline", "remote_addr", "remote_port", "listen",
                 "runtime"):
        assert getattr(s, name) == getattr(h2c, name), name
    for name in HttpConnection.__slots__:
        if not name.startswith("_") and name not in ("held", "write_mark", "rejected", "linger",
                                                     "ka_timeout", "rate_check", "limiter"):
            assert hasattr(s, name), name
    assert (s.queue, s.lost, s.requests, s.window, s.reading, s.unacked, s.whole, s.inbox) == \
        (None, None, 1, 1234, True, 0, False, None)
    s.remote_addr = "203.0.113.9"           # realip replaces the stream's, not the connection's
    assert h2c.remote_addr == "192.0.2.1"
    t = s.transport
    assert isinstance(t, StreamTransport) and s.transport is t


def test_a_stream_on_headers_opens_is_as_open_on_makes_it(monkeypatch):
    """Http2Connection.on_headers opens the framing's new stream with Http2Stream.open_on's
    steps written out: every slot open_on sets has the same value."""
    from types import SimpleNamespace

    from ngate.http2 import connection, request
    from ngate.http2.stream import Http2Stream

    srv = SimpleNamespace(http2_max_concurrent_streams=128, http2_body_preread_size=1234)
    by_headers = Http2Stream()
    h2c = SimpleNamespace(
        partial=0, dropped=None, going_away=False, conf=srv, new_streams=0, flood=0,
        streams={5: by_headers}, acked=True, refused=0, requests=4, listen=object(), runtime=object(),
        prio=None, timer=None, last_request=100, ka_deadline=2.0,
        remote_addr="192.0.2.1", remote_port="4711", last_parse=None)
    started = []
    monkeypatch.setattr(request, "start", lambda *args: started.append(args))
    connection.Http2Connection.on_headers(h2c, 5, [], True, 10, by_headers)
    assert started == [(h2c, by_headers, [], True, 10)] and h2c.streams == {5: by_headers}
    by_open_on = Http2Stream()
    by_open_on.open_on(h2c, 5)
    slots = [name for name in Http2Stream.__slots__ if name not in (
        "__weakref__", "__dict__", "send_window", "recv_window", "in_closed", "out_closed")]
    for name in slots:
        assert getattr(by_headers, name) == getattr(by_open_on, name), name
    assert by_headers.requests == 5 and by_headers.window == 1234


def _whole_stream(writers):
    """An Http2Stream opened on a stand-in connection whose framing sends any whole response,
    its runtime's access log writers `writers` (slot 0), and a request context on it."""
    from types import SimpleNamespace

    from ngate.http.context import RequestContext
    from ngate.http2.stream import Http2Stream
    from ngate.server.connection import Request

    sent = []

    def send_response(sid, *args):     # the framing's: the stream leaves the one table
        sent.append((sid,) + args)
        del h2c.streams[sid]
        return True
    framing = SimpleNamespace(frame_size=16384, send_response=send_response)
    runtime = SimpleNamespace(log_writers=[writers], stats=None,
                              access_log=lambda ctx: [w.write(ctx) for w in writers])
    h2c = SimpleNamespace(
        listen=object(), runtime=runtime, remote_addr="192.0.2.1", remote_port="4711",
        requests=1, conf=SimpleNamespace(http2_body_preread_size=65536, http2_chunk_size=8192),
        closing=False, framing=framing, prio=None, streams={}, batch=True, going_away=False,
        flush_soon=False)
    s = Http2Stream()
    s.open_on(h2c, 1)
    h2c.streams[1] = s
    ctx = RequestContext(s, "GET", "/", "2.0", (), {})
    ctx.conf = SimpleNamespace(log=SimpleNamespace(slot=0), http2_chunk_size=8192)
    s.ctx = ctx
    s.current = req = Request(ctx)
    req.complete = True
    return s, ctx, sent


@pytest.mark.parametrize("general", [None, "limits", "stat_writing", "realip"])
def test_respond_whole_logs_as_log_request_does(monkeypatch, general):
    """Http2Stream.respond_whole writes log.log_request's usual case out (the line alone): the
    same writers get the request once, it is marked logged, and a request with more to end
    than its line (limit_conn's slot, stub_status's count, realip's address) goes through
    log_request itself, which is what a second stream, logged by log_request, shows."""
    from types import SimpleNamespace

    from ngate.http import log

    lines = []
    writer = SimpleNamespace(write=lines.append)
    s, ctx, sent = _whole_stream((writer,))
    released = []
    if general == "limits":
        ctx.limits = SimpleNamespace(release=lambda: released.append(ctx))
    elif general == "stat_writing":
        ctx.stat_writing = True
        s.runtime.stats = SimpleNamespace(request_done=released.append)
    elif general == "realip":
        ctx.realip = ("192.0.2.1", "4711")
        monkeypatch.setattr(log.realip, "restore", released.append)
    ctx.rare = general is not None      # as the module storing the field does (_GUARDED)
    s.respond_whole(ctx, b"block", b"ok\n")
    assert len(sent) == 1 and s.ended and s.ctx is None and s.current is None
    assert lines == [ctx] and ctx.logged and not s.h2c.streams
    assert released == ([] if general is None else [ctx])
    # the general way, log_request, on a second stream with the same state
    lines2 = []
    s2, ctx2, _ = _whole_stream((SimpleNamespace(write=lines2.append),))
    released2 = []
    if general == "limits":
        ctx2.limits = SimpleNamespace(release=lambda: released2.append(ctx2))
    elif general == "stat_writing":
        ctx2.stat_writing = True
        s2.runtime.stats = SimpleNamespace(request_done=released2.append)
    elif general == "realip":
        ctx2.realip = ("192.0.2.1", "4711")
        monkeypatch.setattr(log.realip, "restore", released2.append)
    ctx2.rare = general is not None
    log.log_request(ctx2)
    assert lines2 == [ctx2] and ctx2.logged and released2 == ([] if general is None else [ctx2])
    log.log_request(ctx)        # once only
    assert lines == [ctx]


def test_respond_whole_opens_a_confs_logs_through_access_log():
    """A conf whose writers are not made yet (the runtime's slot None): respond_whole asks
    runtime.access_log, as log_request does."""
    asked = []
    s, ctx, _ = _whole_stream(None)
    s.runtime.access_log = asked.append
    s.respond_whole(ctx, b"block", b"ok\n")
    assert asked == [ctx] and ctx.logged
