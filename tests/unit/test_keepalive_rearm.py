"""server/lifecycle.py finish_request re-arms keepalive_timeout without adding a connection
that is still watched to Deadlines.watched: a connection whose timer is set is watched (every
arming adds it; each way out of `watched` clears the timer). These tests hold the invariant on
a real connection, the branch that adds (a timer cleared while the request ran) included."""
from __future__ import annotations

import uvloop

from ngate.server.connection import HttpConnection
from ngate.server.lifecycle import Lifecycle
from ngate.server.runtime import WorkerRuntime
from tests.harness.fake_transport import FakeTransport
from tests.unit._config_helpers import load_http

HEAD = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"


def _served(tmp_path, steps):
    config = load_http(tmp_path, f"""
        access_log off;
        error_log {tmp_path}/logs/error.log;
        server {{ listen 127.0.0.1:8080; location / {{ return 200 "x"; }} }}
    """)
    loop = uvloop.new_event_loop()
    runtime = WorkerRuntime(config, {}, loop)
    conn = HttpConnection(runtime, next(iter(runtime.listens.values())))
    seen = []

    async def run() -> None:
        conn.connection_made(FakeTransport())
        deadlines = runtime.deadlines
        assert deadlines.handle is not None and conn in deadlines.watched   # header timeout
        for step in steps:
            step(conn)
            conn.data_received(HEAD)
            assert conn.current is None and not conn.closing
            seen.append((conn.timer, conn in deadlines.watched,
                         conn.deadline - deadlines.now))
        deadlines.close()
    loop.run_until_complete(run())
    loop.close()
    return seen


def test_keepalive_rearm_keeps_the_connection_watched(tmp_path):
    seen = _served(tmp_path, [lambda c: None] * 3)
    for timer, watched, left in seen:
        assert timer is Lifecycle._keepalive_timeout and watched and abs(left - 75.0) < 1e-6


def test_keepalive_rearm_adds_a_connection_no_longer_watched(tmp_path):
    """A timer cleared while the connection waited (a tick's expiry, _cancel_timer): the
    re-arm adds the connection again."""
    def expired(conn):
        conn.runtime.deadlines.watched.discard(conn)    # as a tick does before expired()
        conn.timer = None

    seen = _served(tmp_path, [lambda c: None, expired, lambda c: c._cancel_timer()])
    for timer, watched, left in seen:
        assert timer is Lifecycle._keepalive_timeout and watched and abs(left - 75.0) < 1e-6
