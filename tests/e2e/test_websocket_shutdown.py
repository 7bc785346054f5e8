"""Tunnels across reload and graceful stop: kept while the old worker drains; at the end of
worker_shutdown_timeout ngate sends close frames 1001 to both ends (nginx cuts TCP)."""
from __future__ import annotations

import signal
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.test_websocket import echo, ws_connect  # noqa: F401
from tests.harness.ws_echo import CLOSE_CODES, SEED_LOCATION

CONF = """
worker_processes 1;
{shutdown}
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log {prefix}/logs/access.log;
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
""" + SEED_LOCATION + """
    }
}
"""


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_reload_keeps_established_tunnels(start_proxy, echo):
    proxy = start_proxy(CONF, ws_port=echo.port, shutdown="")
    with ws_connect(proxy) as ws:
        ws.send("before")
        assert ws.recv(5) == "before"
        proxy.proc.send_signal(signal.SIGHUP)
        assert _wait(lambda: "reconfiguring" in proxy.error_log() or "signal 1" in proxy.error_log())
        time.sleep(1)
        with ws_connect(proxy) as fresh:        # the new generation serves new connections
            fresh.send("new")
            assert fresh.recv(5) == "new"
        ws.send("after reload")
        assert ws.recv(5) == "after reload"


@pytest.mark.parametrize("how", ["reload", "quit"])
def test_shutdown_timeout_sends_close_frames(tmp_path, how, echo):
    from tests.harness.processes import ProxyProcess, fresh_prefix
    proxy = ProxyProcess("ngate", CONF, fresh_prefix(tmp_path, "ngate"), ws_port=echo.port,
                         shutdown="worker_shutdown_timeout 1s;").start()
    try:
        with ws_connect(proxy) as ws:
            ws.send("hello")
            assert ws.recv(5) == "hello"
            del CLOSE_CODES[:]
            proxy.proc.send_signal(signal.SIGHUP if how == "reload" else signal.SIGQUIT)
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    ws.send("still here")
                    assert ws.recv(5) == "still here"
                    time.sleep(0.2)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert _wait(lambda: CLOSE_CODES, 5) and CLOSE_CODES == [1001]
        if how == "quit":
            proxy.proc.wait(10)
    finally:
        proxy.stop()
