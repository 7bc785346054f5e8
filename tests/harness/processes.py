"""Start nginx or ngate on a generated config in a fresh prefix, and stop it.

A config is a template: `{name}` placeholders are filled from keyword parameters only (nginx's own
braces are left alone). `{prefix}` is always available. Configs without an `events` block get the
standard main context (`MAIN`) prepended, so both programs log and write their pid in the prefix.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NGINX_BIN = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
REPO_ROOT = Path(__file__).resolve().parents[2]
KINDS = ("nginx", "ngate")

MAIN = """\
worker_processes 1;
error_log {prefix}/logs/error.log info;
pid {prefix}/logs/nginx.pid;
events { worker_connections 1024; }
"""

_LISTEN_RE = re.compile(r"(?:^|[;{])\s*listen\s+(?:[\w.\-]+:|\[[0-9a-fA-F:]+\]:)?(\d+)\b", re.M)


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and not one this process
    handed out before (the kernel may give a just-closed port again: a config asking for
    three ports must not get one twice, a "duplicate listen" error)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def nginx_available() -> bool:
    return os.access(NGINX_BIN, os.X_OK)


def render(template: str, **params) -> str:
    """Fill `{name}` for the given names only; every other brace is nginx syntax.

    Adds MAIN when the template has no `events` block, and an access log in the prefix when the
    template sets none (Debian's compiled-in default is /var/log/nginx/access.log).
    """
    if not re.search(r"^\s*events\b", template, re.M):
        template = MAIN + template
    if "access_log" not in template:
        template = re.sub(r"^(\s*http\s*\{)", r"\1\n    access_log {prefix}/logs/access.log;",
                          template, count=1, flags=re.M)

    def sub(m: re.Match) -> str:
        key = m.group(1)
        return str(params[key]) if key in params else m.group(0)
    return re.sub(r"\{(\w+)\}", sub, template)


def listen_ports(conf_text: str) -> list[int]:
    return sorted({int(p) for p in _LISTEN_RE.findall(conf_text)})


def command(kind: str, prefix: Path) -> list[str]:
    args = ["-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
    if kind == "nginx":
        return [NGINX_BIN, *args]
    if kind == "ngate":
        return [sys.executable, "-m", "ngate", *args]
    raise ValueError(kind)


class ProxyProcess:
    """nginx or ngate running one config in `prefix`; a context manager.

    `params` fill the template; `port` is chosen free when not given. Served directories should be
    world-readable: nginx as root runs its workers as `nobody`.
    """

    def __init__(self, kind: str, conf: str, prefix: Path, start_timeout: float = 10.0, **params):
        self.kind = kind
        self.prefix = Path(prefix)
        self.start_timeout = start_timeout
        params.setdefault("port", free_port())
        params["prefix"] = str(self.prefix)
        self.params = params
        self.port: int = params["port"]
        self.conf_text = render(conf, **params)
        self.proc: subprocess.Popen | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "ProxyProcess":
        (self.prefix / "logs").mkdir(parents=True, exist_ok=True)
        os.chmod(self.prefix, 0o755)
        if self.kind == "ngate":
            self.conf_text = body_temp_outside(self.conf_text)
        (self.prefix / "nginx.conf").write_text(self.conf_text)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self._out = open(self.prefix / "logs" / "stdout-stderr.log", "wb")
        self.proc = subprocess.Popen(command(self.kind, self.prefix), stdout=self._out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=str(self.prefix), start_new_session=True)
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        pending = listen_ports(self.conf_text)
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}\n{self.diagnostics()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} not listening on {pending} after "
                                   f"{self.start_timeout}s\n{self.diagnostics()}")
            pending = [p for p in pending if not accepts(p)]
            if pending:
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None
        self._out.close()

    def __enter__(self) -> "ProxyProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------ logs
    def _read(self, name: str) -> str:
        path = self.prefix / "logs" / name
        return path.read_text(errors="replace") if path.exists() else ""

    def error_log(self) -> str:
        return self._read("error.log")

    def access_log(self) -> str:
        return self._read("access.log")

    def output(self) -> str:
        return self._read("stdout-stderr.log")

    def diagnostics(self) -> str:
        return (f"--- config\n{self.conf_text}\n--- error.log\n{self.error_log()[-4000:]}"
                f"\n--- stdout/stderr\n{self.output()[-4000:]}")


def searchable(path) -> None:
    """Let the workers' user reach `path` (nginx and ngate run their workers as `nobody` when
    started as root): it and every directory above it under /tmp get o+rx / o+x."""
    path = Path(path)
    os.chmod(path, os.stat(path).st_mode | 0o055)
    for p in path.parents:
        if str(p).startswith("/tmp/"):
            os.chmod(p, os.stat(p).st_mode | 0o011)


def accepts(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def require_kind(kind: str) -> None:
    """Skip (or, under CI=true, fail) when the program for `kind` is not installed."""
    import pytest
    if kind == "nginx" and not nginx_available():
        message = f"nginx not found at {NGINX_BIN}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


_HTTP_BLOCK = re.compile(r"(^|[;{}]\s*)http\s*\{", re.M)
_body_temp_root: list[str] = []


def body_temp_outside(conf: str) -> str:
    """Debian's nginx buffers request bodies in /var/lib/nginx/body; ngate's default is under the
    prefix, which pytest's 0700 temp root hides from a `nobody` worker. Without a
    client_body_temp_path of its own, an ngate config gets one in a world-searchable
    directory (as Debian's is) that lives until the session ends."""
    if "client_body_temp_path" in conf:
        return conf
    if not _body_temp_root:
        root = tempfile.mkdtemp(prefix="ngate-test-body-")
        os.chmod(root, 0o755)
        atexit.register(shutil.rmtree, root, True)
        _body_temp_root.append(root)
    path = tempfile.mkdtemp(dir=_body_temp_root[0])
    os.chmod(path, 0o755)
    # on the `http {` line: the config's line numbers (in [emerg] messages) stay as written
    return _HTTP_BLOCK.sub(lambda m: f"{m.group(0)} client_body_temp_path {path}/body;",
                           conf, count=1)


def fresh_prefix(base: Path, kind: str) -> Path:
    prefix = Path(base) / kind
    if prefix.exists():
        shutil.rmtree(prefix)
    prefix.mkdir(parents=True)
    return prefix


def terminate(proc: subprocess.Popen) -> None:
    """TERM, then KILL the process group if it is still there after 5 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_for(predicate, what: str, timeout: float = 15.0):
    """Poll `predicate` until it returns something true, and return that value.

    Raises AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_log(proc: "ProxyProcess", pattern: str, timeout: float = 5.0) -> str:
    """Poll the access and error logs of `proc` until the regex `pattern` is found in them;
    return both logs' text. Raises AssertionError, with the logs' tails, after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = proc.access_log() + proc.error_log()
        if re.search(pattern, text):
            return text
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not logged:\n{proc.access_log()[-2000:]}\n"
                         f"{proc.error_log()[-2000:]}")


def config_test(conf: Path) -> subprocess.CompletedProcess:
    """Run `ngate -t -c conf` and return the finished process (text output)."""
    return subprocess.run([sys.executable, "-m", "ngate", "-t", "-c", str(conf)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=30)
