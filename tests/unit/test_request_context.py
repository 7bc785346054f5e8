"""http/context.py: RequestContext(...) makes a Context with every slot set; the rare state is a
class default a request overrides for itself alone."""
from __future__ import annotations

import time

from ngate.http import context
from ngate.http.context import Context, RequestContext


def test_every_slot_is_set_by_the_factory():
    ctx = RequestContext(None, "GET", "/a", "1.1", (), {})
    for name in Context.__slots__:
        if name != "__dict__":
            getattr(ctx, name)      # an unset slot would raise AttributeError
    assert ctx.http_minor == 1 and ctx.keep_alive and ctx.uri == "/"
    assert RequestContext(None, "GET", "/", "1.0", (), {}).http_minor == 0


def test_rare_state_is_a_default_until_a_request_sets_it():
    a = RequestContext(None, "GET", "/", "1.1", (), {})
    b = RequestContext(None, "GET", "/", "1.1", (), {})
    for name in context._RARE:
        assert name not in Context.__slots__ and hasattr(Context, name)
    assert a.gzip is None and a.error_pages_done is False and a.request_id is None
    a.gzip = "deflate"
    a.error_pages_done = True
    assert (a.gzip, a.error_pages_done) == ("deflate", True)
    assert (b.gzip, b.error_pages_done, Context.gzip) == (None, False, None)


def test_pending_request_is_the_context():
    """server/request_head.py Request(ctx): the context itself, its body state a slot
    (`complete`) and class defaults (_BODY) a request with a body sets for itself."""
    from ngate.server.request_head import Request
    a = RequestContext(None, "GET", "/", "1.1", (), {})
    b = RequestContext(None, "POST", "/", "1.1", (), {})
    req = Request(b)
    assert req is b and req.ctx is b and not req.complete
    for name in context._BODY:
        assert name not in Context.__slots__ and hasattr(Context, name)
    req.body = [b"x"]
    req.body_size = 1
    req.discard = True
    assert (a.body, a.body_size, a.consumer, a.upgrade, a.discard) == (None, 0, None, False, False)
    assert (b.body, b.body_size, b.discard) == ([b"x"], 1, True) and a.__dict__ == {}


def test_start_wall_is_the_wall_clock_at_start():
    ctx = RequestContext(None, "GET", "/", "1.1", (), {})
    ctx.start -= 5.0        # as if the request began five seconds ago
    assert abs(ctx.start_wall - (time.time() - 5.0)) < 0.5


def test_http1_head_makes_the_same_context(tmp_path, monkeypatch):
    """server/request_head.py's _head writes RequestContext out: every slot as the factory
    stores it (the head's own fields aside)."""
    import uvloop

    from ngate.server.connection import HttpConnection
    from ngate.server.runtime import WorkerRuntime
    from tests.harness.fake_transport import FakeTransport
    from tests.unit._config_helpers import load_http

    config = load_http(tmp_path, f"""
        access_log off;
        error_log {tmp_path}/logs/error.log;
        server {{ listen 127.0.0.1:8080; location / {{ return 200 "x"; }} }}
    """)
    loop = uvloop.new_event_loop()
    runtime = WorkerRuntime(config, {}, loop)
    seen = []
    monkeypatch.setattr(HttpConnection, "start_request",
                        staticmethod(lambda ctx, req: seen.append(ctx)))
    head = b"GET /a?b HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n"
    conn = HttpConnection(runtime, next(iter(runtime.listens.values())))

    async def run() -> None:
        conn.connection_made(FakeTransport())
        conn.data_received(head)
    loop.run_until_complete(run())
    loop.close()
    (ctx,) = seen
    ref = RequestContext(conn, "GET", "/a?b", "1.0", ctx.headers, ctx.hdr)
    ref.keep_alive = True
    ref.request_length = len(head)
    ref.complete = True             # (its pending request: no body)
    for name in Context.__slots__:
        if name not in ("__dict__", "start"):
            assert getattr(ctx, name) == getattr(ref, name), name
    assert ctx.http_minor == 0 and ctx.keep_alive and ctx.__dict__ == {}
    assert abs(ctx.start - ref.start) < 5.0


def test_host_key_is_the_shared_object():
    """A head's Host key is http/context.py HOST itself (phases.begin's lookup is an identity
    hit), whatever its case as sent; other names are their lower-case bytes."""
    from ngate.server.request_head import header_key

    for sent in (b"Host", b"host", b"HOST"):
        assert header_key(sent, False, True) is context.HOST
    assert header_key(b"X-Host", False, True) == b"x-host"
    assert header_key(b"Bad_Name", False, True) == b""


def test_guarded_fields_are_defaults_behind_rare():
    """http/context.py _GUARDED: class defaults a request stores for itself alone; `rare`, a
    slot stored False per request, is what finish_request, log_request and send_response test
    before reading them (the module storing one sets `rare` too)."""
    a = RequestContext(None, "GET", "/", "1.1", (), {})
    b = RequestContext(None, "GET", "/", "1.1", (), {})
    for name in context._GUARDED:
        assert name not in Context.__slots__ and hasattr(Context, name)
    assert "rare" in Context.__slots__ and a.rare is False
    assert (a.limits, a.stat_writing, a.realip, a.accel_headers, a.www_authenticate,
            a.location_out) == (None, False, None, None, None, None)
    a.realip = ("192.0.2.1", "1")
    a.rare = True
    assert (a.realip, b.realip, Context.realip, b.rare) == (("192.0.2.1", "1"), None, None, False)


def test_modules_storing_a_guarded_field_set_rare():
    """Every store of a _GUARDED field in ngate/ (other than a clear to its default) is
    followed by `ctx.rare = True`: a field set without it would go unseen at the request's end
    (a limit_conn slot not released, realip's address not restored)."""
    import pathlib
    import re

    root = pathlib.Path(context.__file__).resolve().parents[1]
    store = re.compile(r"\bctx\.(%s) = (?!None\b|False\b)" % "|".join(context._GUARDED))
    found = 0
    for path in root.rglob("*.py"):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if store.search(line):
                found += 1
                indent = line[:len(line) - len(line.lstrip())]
                assert lines[i + 1].startswith(indent + "ctx.rare = True"), (path, i + 1, line)
    assert found >= 9
