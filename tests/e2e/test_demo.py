"""`ngate demo` in headless Chromium: the page connects through ngate and a message round-trips."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.harness.processes import REPO_ROOT, accepts, free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.fixture
def demo():
    port, backend_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ngate", "demo", "--port", str(port),
                             "--backend-port", str(backend_port)], cwd=REPO_ROOT,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while not (accepts(port) and accepts(backend_port)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.1)
    yield port
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


def test_demo_page_chats_through_ngate(demo):
    if not os.access(CHROMIUM, os.X_OK) and os.environ.get("CI") != "true":
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{demo}/")
            page.wait_for_function(
                "document.getElementById('status').textContent === 'connected'", timeout=10000)
            page.fill("#msg", "hello through ngate")
            page.click("button")
            page.wait_for_selector("#log li:has-text('hello through ngate')", timeout=10000)
        finally:
            browser.close()
