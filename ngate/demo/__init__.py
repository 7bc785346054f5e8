"""`ngate demo`: the seed's scenario on one machine.

ngate on 127.0.0.1:8080 serves a chat page at `/` (`return 200` with the bundled page.html) and
proxies `/wss` with the seed's WebSocket recipe to the bundled chat backend (chat.py, the
websockets library) on 127.0.0.1:8888. The config is written to a fresh prefix (removed on exit);
the "open" line is printed only once both ports are bound.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


HERE = Path(__file__).resolve().parent

CONF = """\
worker_processes 1;
daemon off;
error_log {prefix}/logs/error.log notice;
pid {prefix}/logs/ngate.pid;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/logs/access.log;
    server {{
        listen 127.0.0.1:{port};
        location = / {{
            default_type text/html;
            return 200 '{page}';
        }}
        location /wss {{
            proxy_pass http://127.0.0.1:{backend_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "Upgrade";
            proxy_set_header X-Real-IP $remote_addr;
        }}
    }}
}}
"""


def demo_config(prefix: Path, port: int, backend_port: int) -> str:
    page = (HERE / "page.html").read_text()
    assert not set(page) & set("'$\\"), "page.html must not need nginx escaping"
    return CONF.format(prefix=prefix, port=port, backend_port=backend_port, page=page)


def _die_with_parent() -> None:
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)    # PR_SET_PDEATHSIG


def _interrupt(signo, frame) -> None:
    raise KeyboardInterrupt


def run(argv: list[str]) -> int:
    """Start the backend and ngate (a child process, so the demo can tell when its port is bound),
    say "open ..." once ngate has written its pid file (after binding every listener), and remove
    the temporary prefix on exit, whatever ends the demo (Ctrl-C, SIGTERM, a failed start)."""
    parser = argparse.ArgumentParser(prog="ngate demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--backend-port", type=int, default=8888)
    args = parser.parse_args(argv)
    prefix = Path(tempfile.mkdtemp(prefix="ngate-demo-"))
    old = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args, prefix)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, old)
        shutil.rmtree(prefix, ignore_errors=True)


def _run(args, prefix: Path) -> int:
    (prefix / "logs").mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(demo_config(prefix, args.port, args.backend_port))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(HERE.parent.parent), os.environ.get("PYTHONPATH")]))}
    procs = []
    try:
        backend = _start(procs, [sys.executable, str(HERE / "chat.py"), str(args.backend_port)],
                         env)
        server = _start(procs, [sys.executable, "-m", "ngate", "-p", f"{prefix}/", "-c",
                                str(conf)], env)
        if not _started(server, backend, prefix / "logs" / "ngate.pid", args.backend_port):
            return 1
        print(f"ngate demo: open http://127.0.0.1:{args.port}/ (config: {conf}; chat backend "
              f"on 127.0.0.1:{args.backend_port}); Ctrl-C stops", flush=True)
        while server.poll() is None and backend.poll() is None:
            time.sleep(0.2)
        return 1
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _start(procs: list, cmd: list[str], env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent)
    procs.append(proc)
    return proc


def _started(server, backend, pid_file: Path, backend_port: int) -> bool:
    """True once ngate has bound its port (pid file written) and the backend accepts."""
    while server.poll() is None and backend.poll() is None:
        if pid_file.exists() and _accepts(backend_port):
            return True
        time.sleep(0.05)
    return False


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

