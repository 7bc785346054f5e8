"""`ngate demo` in headless Chromium: the page connects through ngate and a message round-trips;
the "open" line comes only once the port is bound (a busy port: an [emerg] and no "open" line),
and the demo's temporary prefix is gone when it exits."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.harness.processes import REPO_ROOT, accepts, free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def start_demo(port: int, backend_port: int, tmpdir=None) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmpdir)} if tmpdir else None
    return subprocess.Popen([sys.executable, "-m", "ngate", "demo", "--port", str(port),
                             "--backend-port", str(backend_port)], cwd=REPO_ROOT, env=env,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def demo():
    port, backend_port = free_port(), free_port()
    proc = start_demo(port, backend_port)
    first = proc.stdout.readline()          # blocks until the demo says something
    assert first.startswith(f"ngate demo: open http://127.0.0.1:{port}/"), first
    # printed only once bound: both ports accept right away
    assert accepts(port) and accepts(backend_port)
    config = re.search(r"config: (\S+);", first).group(1)
    assert os.path.exists(config)
    yield port, proc, os.path.dirname(config)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_demo_removes_its_prefix_on_sigterm(demo):
    port, proc, prefix = demo
    assert os.path.isdir(prefix)
    proc.send_signal(signal.SIGTERM)        # the demo alone: it stops ngate and the backend
    assert proc.wait(15) == 0
    assert not os.path.exists(prefix)
    assert not accepts(port)


def test_demo_on_a_busy_port_says_emerg_and_no_open_line(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        proc = start_demo(port, free_port(), tmp_path)
        out, _ = proc.communicate(timeout=30)
    finally:
        busy.close()
    assert proc.returncode == 1
    assert f"[emerg] bind() to 127.0.0.1:{port} failed (98: Address already in use)" in out
    assert "open http" not in out
    assert list(tmp_path.iterdir()) == []       # its prefix was made there and removed


def test_demo_page_chats_through_ngate(demo):
    if not os.access(CHROMIUM, os.X_OK) and os.environ.get("CI") != "true":
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{demo[0]}/")
            page.wait_for_function(
                "document.getElementById('status').textContent === 'connected'", timeout=10000)
            page.fill("#msg", "hello through ngate")
            page.click("button")
            page.wait_for_selector("#log li:has-text('hello through ngate')", timeout=10000)
        finally:
            browser.close()
