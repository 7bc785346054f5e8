"""The `metrics;` handler (ngate extension): tunnel counts and bytes per location."""
from __future__ import annotations

import re
import time
import urllib.request

from tests.e2e.test_websocket import echo, ws_connect  # noqa: F401
from tests.harness.ws_echo import SEED_LOCATION
from tests.harness.processes import ProxyProcess, fresh_prefix

CONF = """
http {
    server {
        listen 127.0.0.1:{port};
        server_name example.test;
""" + SEED_LOCATION + """
        location = /metrics {
            metrics;
        }
    }
}
"""


def scrape(proxy) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.port}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(ngate_\S+) (\S+)$", text, re.M)}


def test_tunnel_metrics_per_location(tmp_path, echo):
    proxy = ProxyProcess("ngate", CONF, fresh_prefix(tmp_path, "ngate"), ws_port=echo.port).start()
    try:
        with ws_connect(proxy, compression=None) as ws:
            ws.send("x" * 1000)
            assert ws.recv(5) == "x" * 1000
            live = scrape(proxy)
            assert live['ngate_websocket_tunnels_open{location="/wss",protocol="http/1.1"}'] == 1
            assert live['ngate_websocket_upgrades_total{location="/wss",protocol="http/1.1"}'] == 1
            assert live['ngate_websocket_bytes_total{direction="to_upstream",location="/wss",protocol="http/1.1"}'] > 1000
        time.sleep(0.5)
        done = scrape(proxy)
        assert done['ngate_websocket_tunnels_open{location="/wss",protocol="http/1.1"}'] == 0
        assert done['ngate_websocket_tunnel_duration_seconds_count{location="/wss",protocol="http/1.1"}'] == 1
        down = done['ngate_websocket_bytes_total{direction="to_client",location="/wss",protocol="http/1.1"}']
        assert down >= live['ngate_websocket_bytes_total{direction="to_client",location="/wss",protocol="http/1.1"}'] > 1000
    finally:
        proxy.stop()
