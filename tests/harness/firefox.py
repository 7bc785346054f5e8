"""Debian's firefox-esr, headless, driven over WebDriver BiDi (which Firefox speaks natively).

`Firefox(tmp_dir, prefs=...)` starts one browser on a fresh profile (`user.js` holds `PREFS` and
the caller's prefs) in its own process group, waits for its "WebDriver BiDi listening on ws://..."
line, and opens a BiDi session (`session.new`, `acceptInsecureCerts`: the tests' certificates come
from a throwaway CA). `navigate(url)` loads a page in the first tab and waits for its load event;
`evaluate(expr)` runs a JavaScript expression there (a promise is awaited) and returns its value
(strings, numbers, booleans, null); `wait_for(expr)` polls an expression until it is truthy.
`close()` ends the session and kills the process group, so no firefox process outlives a test;
the tests call it from a fixture finaliser.

The client is `websockets`' sync client sending a command and reading until the answer with its
id (events are not subscribed to, so none arrive). No WebDriver library: this is all the tests
need. `FIREFOX` (env FIREFOX_BIN) is the binary. With `log_modules` (default: env FIREFOX_MOZ_LOG,
e.g. "nsHttp:5,nsWebSocket:5") Firefox logs what it did on the wire into files named
`firefox_log` + ".moz_log" (parent) and ".child-N.moz_log" (content processes).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from websockets.sync.client import connect

FIREFOX = os.environ.get("FIREFOX_BIN", "/usr/bin/firefox-esr")

# quiet, offline and fast: no first-run pages, updates, telemetry or background connections
PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "browser.safebrowsing.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "extensions.update.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.http.speculative-parallel-limit": 0,
    "network.proxy.type": 0,
    "browser.newtabpage.enabled": False,
    "remote.prefs.recommended": True,
}


def available() -> bool:
    return os.access(FIREFOX, os.X_OK)


def _pref_line(name: str, value) -> str:
    return f"user_pref({json.dumps(name)}, {json.dumps(value)});\n"


class BidiError(RuntimeError):
    pass


class Firefox:
    """One headless firefox-esr with a BiDi session; see the module docstring."""

    def __init__(self, tmp_dir: Path, prefs: dict | None = None, log_modules: str | None = None,
                 start_timeout: float = 30.0):
        self.dir = Path(tmp_dir)
        self.profile = self.dir / "profile"
        self.profile.mkdir(parents=True, exist_ok=True)
        (self.profile / "user.js").write_text(
            "".join(_pref_line(k, v) for k, v in {**PREFS, **(prefs or {})}.items()))
        self.firefox_log = self.dir / "moz.log"
        env = dict(os.environ, MOZ_HEADLESS="1", MOZ_CRASHREPORTER_DISABLE="1")
        log_modules = os.environ.get("FIREFOX_MOZ_LOG", "") if log_modules is None else log_modules
        if log_modules:
            env.update(MOZ_LOG=log_modules, MOZ_LOG_FILE=str(self.firefox_log))
        self._out = open(self.dir / "firefox-stderr.log", "wb")
        self.proc = subprocess.Popen(
            [FIREFOX, "--headless", "--no-remote", "--remote-debugging-port=0",
             "-profile", str(self.profile), "about:blank"],
            stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
        self._ids = itertools.count(1)
        self.ws = None
        self._stack = contextlib.ExitStack()
        try:
            self.ws = self._stack.enter_context(connect(
                self._endpoint(start_timeout) + "/session", max_size=None,
                open_timeout=start_timeout))
            self.command("session.new",
                         {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}})
            tree = self.command("browsingContext.getTree", {})
            self.context = tree["contexts"][0]["context"]
        except BaseException:
            self.close()
            raise

    def _endpoint(self, timeout: float) -> str:
        """The ws:// address Firefox prints once its BiDi server listens (port 0: its choice)."""
        deadline = time.monotonic() + timeout
        pattern = re.compile(rb"WebDriver BiDi listening on (ws://[\d.:]+)")
        while time.monotonic() < deadline:
            m = pattern.search((self.dir / "firefox-stderr.log").read_bytes())
            if m:
                return m.group(1).decode()
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"firefox: no BiDi endpoint (exit {self.proc.poll()}):\n"
                           + self.output()[-3000:])

    def output(self) -> str:
        return (self.dir / "firefox-stderr.log").read_text(errors="replace")

    # ------------------------------------------------------------ commands
    def command(self, method: str, params: dict, timeout: float = 30.0) -> dict:
        """Send one BiDi command; return its result (raise BidiError on an error answer)."""
        cid = next(self._ids)
        self.ws.send(json.dumps({"id": cid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            if msg.get("id") != cid:
                continue                    # an event
            if msg.get("type") == "error":
                raise BidiError(f"{method}: {msg.get('error')}: {msg.get('message')}")
            return msg["result"]

    def navigate(self, url: str, timeout: float = 30.0) -> None:
        self.command("browsingContext.navigate",
                     {"context": self.context, "url": url, "wait": "complete"}, timeout)

    def evaluate(self, expression: str, timeout: float = 30.0):
        """The value of `expression` in the page (awaited when it is a promise)."""
        result = self.command("script.evaluate", {
            "expression": expression, "target": {"context": self.context},
            "awaitPromise": True, "resultOwnership": "none"}, timeout)
        if result.get("type") == "exception":
            raise BidiError(f"script threw: {result['exceptionDetails'].get('text')}")
        return _value(result["result"])

    def wait_for(self, expression: str, timeout: float = 15.0):
        """Poll `expression` in the page until it is truthy; return its value. A BidiError
        names the expression after `timeout` seconds."""
        js = ("new Promise((ok, no) => { const end = Date.now() + %d; const poll = () => {"
              " const v = (%s); if (v) ok(v); else if (Date.now() > end) no(new Error("
              "'timed out waiting for ' + %s)); else setTimeout(poll, 50); }; poll(); })"
              % (timeout * 1000, expression, json.dumps(expression)))
        return self.evaluate(js, timeout + 10)

    # ------------------------------------------------------------ shutdown
    def close(self) -> None:
        """End the session, then kill the whole process group (content processes included)."""
        if self.ws is not None:
            try:
                self.command("session.end", {}, timeout=5)
            except Exception:
                pass
            self._stack.close()
            self.ws = None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)    # children that outlived the parent
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        self._out.close()

    def __enter__(self) -> "Firefox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _value(remote: dict):
    """A BiDi RemoteValue of a primitive type as Python."""
    kind = remote["type"]
    if kind in ("undefined", "null"):
        return None
    if kind in ("string", "boolean", "number"):
        return remote["value"]
    raise BidiError(f"unsupported result type {kind}: {remote}")
