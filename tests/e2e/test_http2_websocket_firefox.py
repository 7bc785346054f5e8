"""Firefox (Debian's firefox-esr, headless, over WebDriver BiDi: tests/harness/firefox.py) loads a
page over https from a `listen ... ssl http2` server; its `new WebSocket('wss://...')` rides
RFC 8441 inside that HTTP/2 connection, through the seed's /wss block unchanged (the echo backend
of the Chromium test). A second server with `http2_websocket off` does not advertise
SETTINGS_ENABLE_CONNECT_PROTOCOL, and Firefox opens its WebSocket over HTTP/1.1 instead.
Asserted from ngate's side: each server's access log and the metrics' protocol label.

One ngate and one Firefox for the module. Firefox trusts the throwaway CA through the session's
`acceptInsecureCerts` (a certificate override); it still coalesces the WebSocket into the h2
connection. `network.dns.localDomains` makes a.test resolve to the loopback address.
"""
from __future__ import annotations

import os
import re
import urllib.request

import pytest
import trustme

from tests.harness import firefox
from tests.harness.processes import ProxyProcess, free_port, wait_for
from tests.harness.ws_echo import SEED_LOCATION, EchoServer

# two round trips (text, then binary), then a clean close
PAGE = """<!doctype html><title>wait</title><script>
const got = [];
const ws = new WebSocket("wss://" + location.host + "/wss");
ws.binaryType = "arraybuffer";
ws.onopen = () => ws.send("hello " + location.port);
ws.onmessage = (e) => {
  if (typeof e.data === "string") { got.push(e.data); ws.send(new Uint8Array([1, 2, 255])); }
  else { got.push(Array.from(new Uint8Array(e.data)).join(",")); ws.close(1000, "done"); }
};
ws.onerror = () => { document.title = "error"; };
ws.onclose = (e) => { document.title = "closed " + e.code + " " + got.join("|"); };
</script>"""

SERVER = """
    server {
        listen 127.0.0.1:{%s} ssl http2;
        server_name a.test;
        ssl_certificate {pki}/a.crt;
        ssl_certificate_key {pki}/a.key;
        access_log {prefix}/logs/%s.log ws;
        %s
        location = / { default_type text/html; return 200 '{page}'; }
        location = /favicon.ico { return 204; }
""" + SEED_LOCATION + """
    }
"""

CONF = """
error_log {prefix}/logs/error.log info;
events {}
http {
    log_format ws '$request|$status|$server_protocol|$http2';
""" + SERVER % ("port", "on", "") + SERVER % ("off_port", "off", "http2_websocket off;") + """
    server {
        listen 127.0.0.1:{metrics_port};
        location = /metrics { metrics; }
    }
}
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not firefox.available():
        message = f"firefox-esr not found at {firefox.FIREFOX}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    ff = firefox.Firefox(tmp_path_factory.mktemp("firefox"),
                         prefs={"network.dns.localDomains": "a.test"})
    yield ff
    ff.close()


@pytest.fixture(scope="module")
def ngate(tmp_path_factory):
    base = tmp_path_factory.mktemp("ngate-ff")
    pki = base / "pki"
    pki.mkdir()
    pki.chmod(0o755)
    cert = trustme.CA().issue_cert("a.test")
    cert.cert_chain_pems[0].write_to_path(str(pki / "a.crt"))
    cert.private_key_pem.write_to_path(str(pki / "a.key"))
    with EchoServer() as echo, ProxyProcess(
            "ngate", CONF, base / "ngate", ws_port=echo.port, pki=str(pki),
            off_port=free_port(), metrics_port=free_port(),
            page=PAGE.replace("'", '"').replace("\n", " ")) as p:
        yield p


def _round_trips(browser, port: int) -> str:
    browser.navigate(f"https://a.test:{port}/")
    return browser.wait_for("document.title.startsWith('closed') || document.title === 'error'"
                            " ? document.title : ''")


def _log(p, name: str, line: str) -> str:
    """The server's access log once the tunnel's line (written when it closes) is there."""
    path = p.prefix / "logs" / f"{name}.log"
    return wait_for(lambda: path.exists() and line in path.read_text() and path.read_text(),
                    f"{line!r} in {path}", timeout=5)


def _upgrades(p, protocol: str) -> str:
    url = f"http://127.0.0.1:{p.params['metrics_port']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        metrics = r.read().decode()
    m = re.search(r'^ngate_websocket_upgrades_total\{location="/wss",protocol="%s"\} (\S+)$'
                  % re.escape(protocol), metrics, re.M)
    return m and m.group(1)


def test_firefox_wss_rides_http2(browser, ngate):
    port = ngate.port
    assert _round_trips(browser, port) == f"closed 1000 hello {port}|1,2,255"
    log = _log(ngate, "on", "CONNECT /wss")
    assert re.search(r"^GET / HTTP/2.0\|200\|HTTP/2.0\|h2$", log, re.M), log
    assert re.search(r"^CONNECT /wss HTTP/2.0\|200\|HTTP/2.0\|h2$", log, re.M), log
    assert "/wss HTTP/1.1" not in log, log
    assert _upgrades(ngate, "h2") == "1.0"


def test_firefox_falls_back_to_http1_without_the_setting(browser, ngate):
    port = ngate.params["off_port"]
    assert _round_trips(browser, port) == f"closed 1000 hello {port}|1,2,255"
    log = _log(ngate, "off", "/wss HTTP/1.1")
    assert re.search(r"^GET / HTTP/2.0\|200\|HTTP/2.0\|h2$", log, re.M), log
    assert re.search(r"^GET /wss HTTP/1.1\|101\|HTTP/1.1\|$", log, re.M), log
    assert "CONNECT" not in log, log
    assert _upgrades(ngate, "http/1.1") == "1.0"
