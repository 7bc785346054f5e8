"""http/phases.py begin: a TRACE/CONNECT refused (405) on a target and Host whose route is
cached sees the context as _route leaves it for the same refusal uncached (args and server set,
$host and $uri not yet), and an allowed method's request gets the route's fields."""
from __future__ import annotations

import uvloop

from ngate.http import phases
from ngate.server.connection import HttpConnection
from ngate.server.runtime import WorkerRuntime
from tests.harness.fake_transport import FakeTransport
from tests.unit._config_helpers import load_http


def _run(tmp_path, monkeypatch, heads):
    config = load_http(tmp_path, f"""
        access_log off;
        error_log {tmp_path}/logs/error.log;
        server {{ listen 127.0.0.1:8080; server_name t; location / {{ return 200 "x"; }} }}
    """)
    loop = uvloop.new_event_loop()
    runtime = WorkerRuntime(config, {}, loop)
    seen = []
    original = phases.rejected

    def rejected(ctx, status, message):
        seen.append((status, ctx.args, ctx.server, ctx.host, ctx.uri))
        return original(ctx, status, message)
    monkeypatch.setattr(phases, "rejected", rejected)
    routed = []
    original_flp = phases.find_location_phase

    def find_location_phase(ctx):
        routed.append((ctx.args, ctx.server, ctx.host, ctx.uri))
        return original_flp(ctx)
    monkeypatch.setattr(phases, "find_location_phase", find_location_phase)

    async def run() -> None:
        for head in heads:
            conn = HttpConnection(runtime, next(iter(runtime.listens.values())))
            conn.connection_made(FakeTransport())
            conn.data_received(head)
        runtime.deadlines.close()
    loop.run_until_complete(run())
    loop.close()
    return seen, routed


def test_405_on_a_cached_route_is_the_uncached_one(tmp_path, monkeypatch):
    trace = b"TRACE /a/b?q=1 HTTP/1.1\r\nHost: t\r\n\r\n"
    get = b"GET /a/b?q=1 HTTP/1.1\r\nHost: t\r\n\r\n"
    seen, routed = _run(tmp_path, monkeypatch, [trace, get, get, trace])
    (uncached, cached) = seen
    assert uncached == cached
    status, args, server, host, uri = cached
    assert (status, args, host, uri) == (405, "q=1", "", "/") and server is not None
    assert routed[0] == routed[1] and routed[0][0] == "q=1" and routed[0][1] is server
    assert routed[0][2:] == ("t", "/a/b")
