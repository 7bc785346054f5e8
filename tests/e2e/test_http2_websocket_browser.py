"""Chromium (through Playwright) loads a page over https from a `listen ... ssl http2` server;
its `new WebSocket('wss://...')` rides RFC 8441 inside that HTTP/2 connection, through the
seed's /wss block unchanged. Asserted from ngate's side: the access log shows the CONNECT
stream and the metrics count an h2 tunnel."""
from __future__ import annotations

import os
import re
import time
import urllib.request

import pytest
import trustme

from tests.harness.ws_echo import SEED_LOCATION, EchoServer
from tests.harness.processes import ProxyProcess, free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

PAGE = """<!doctype html><title>wait</title><script>
const ws = new WebSocket('wss://' + location.host + '/wss');
ws.onopen = () => ws.send('over h2');
ws.onmessage = (e) => { document.title = 'got:' + e.data; ws.close(1000, 'done'); };
ws.onerror = () => { document.title = 'error'; };
ws.onclose = (e) => { document.body.dataset.closed = String(e.code); };
</script>"""

CONF = """
error_log {prefix}/logs/error.log info;
events {}
http {
    log_format ws '$request|$status|$server_protocol|$http2';
    access_log {prefix}/logs/access.log ws;
    server {
        listen 127.0.0.1:{port} ssl http2;
        server_name a.test;
        ssl_certificate {pki}/a.crt;
        ssl_certificate_key {pki}/a.key;
        location = / { default_type text/html; return 200 '{page}'; }
""" + SEED_LOCATION + """
    }
    server {
        listen 127.0.0.1:{metrics_port};
        location = /metrics { metrics; }
    }
}
"""


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    d.chmod(0o755)
    cert = trustme.CA().issue_cert("a.test")
    cert.cert_chain_pems[0].write_to_path(str(d / "a.crt"))
    cert.private_key_pem.write_to_path(str(d / "a.key"))
    return d


def test_chromium_wss_rides_http2(tmp_path, pki):
    if not os.access(CHROMIUM, os.X_OK) and os.environ.get("CI") != "true":
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright
    with EchoServer() as echo, ProxyProcess(
            "ngate", CONF, tmp_path / "ngate", ws_port=echo.port, pki=str(pki),
            metrics_port=free_port(), page=PAGE.replace("'", '"').replace("\n", " ")) as p:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                *ARGS, f"--host-resolver-rules=MAP a.test 127.0.0.1"])
            try:
                page = browser.new_context(ignore_https_errors=True).new_page()
                page.goto(f"https://a.test:{p.port}/")
                page.wait_for_function("document.title.startsWith('got:') || "
                                       "document.title === 'error'", timeout=15000)
                assert page.title() == "got:over h2"
                page.wait_for_function("document.body.dataset.closed", timeout=10000)
            finally:
                browser.close()
        deadline = time.monotonic() + 5
        while "CONNECT /wss" not in p.access_log() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = p.access_log()
        assert re.search(r"^GET / HTTP/2.0\|200\|HTTP/2.0\|h2$", log, re.M), log
        assert re.search(r"^CONNECT /wss HTTP/2.0\|200\|HTTP/2.0\|h2$", log, re.M), log
        assert "/wss HTTP/1.1" not in log
        url = f"http://127.0.0.1:{p.params['metrics_port']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            metrics = r.read().decode()
        assert 'ngate_websocket_upgrades_total{location="/wss",protocol="h2"} 1.0' in metrics
