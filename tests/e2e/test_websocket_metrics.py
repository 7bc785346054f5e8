"""The `metrics;` handler (ngate extension): tunnel counts and bytes per location; a tunnel over
HTTP/2 (RFC 8441) counts as one over HTTP/1.1 does, in the metrics and in stub_status."""
from __future__ import annotations

import re
import time
import urllib.request

from tests.e2e.test_websocket import echo, ws_connect  # noqa: F401
from tests.harness.h2client import H2Client
from tests.harness.h2ws import H2WebSocket
from tests.harness.ws_echo import SEED_LOCATION
from tests.harness.processes import ProxyProcess, fresh_prefix, free_port, wait_for

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


BOTH_CONF = """
http {
    server {
        listen 127.0.0.1:{port};
""" + SEED_LOCATION + """
        location = /metrics { metrics; }
        location = /status { stub_status; }
    }
    server {
        listen 127.0.0.1:{h2_port} http2;
""" + SEED_LOCATION + """
    }
}
"""


def active_connections(proxy) -> int:
    """stub_status's count, the scraping connection included."""
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.port}/status", timeout=5) as r:
        return int(re.search(r"Active connections: (\d+)", r.read().decode()).group(1))


def test_an_h2_tunnel_counts_as_an_http1_tunnel(tmp_path, echo):
    proxy = ProxyProcess("ngate", BOTH_CONF, fresh_prefix(tmp_path, "ngate"), ws_port=echo.port,
                         h2_port=free_port()).start()
    try:
        wait_for(lambda: active_connections(proxy) == 1, "no connection but the scrape's")
        open_label = 'ngate_websocket_tunnels_open{location="/wss",protocol="%s"}'
        with ws_connect(proxy, compression=None) as ws:
            ws.send("one")
            assert ws.recv(5) == "one"
            assert scrape(proxy)[open_label % "http/1.1"] == 1
            assert active_connections(proxy) == 2
        wait_for(lambda: active_connections(proxy) == 1, "the HTTP/1.1 tunnel closed")
        ws = H2WebSocket(H2Client(proxy.params["h2_port"]), "/wss")
        try:
            ws.send("two")
            assert ws.recv() == "two"
            live = scrape(proxy)
            assert live[open_label % "h2"] == 1 and live[open_label % "http/1.1"] == 0
            # the client's one HTTP/2 connection carries the tunnel: one connection, not two
            assert active_connections(proxy) == 2
        finally:
            ws.c.close()
        wait_for(lambda: active_connections(proxy) == 1, "the HTTP/2 tunnel closed")
        assert scrape(proxy)[open_label % "h2"] == 0
    finally:
        proxy.stop()
