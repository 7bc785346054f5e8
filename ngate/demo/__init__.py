"""`ngate demo`: the seed's scenario on one machine.

ngate on 127.0.0.1:8080 serves a chat page at `/` (`return 200` with the bundled page.html) and
proxies `/wss` with the seed's WebSocket recipe to the bundled chat backend (chat.py, the
websockets library) on 127.0.0.1:8888. The config is written to a fresh prefix and printed.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from ngate.cli import register_verb

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


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ngate demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--backend-port", type=int, default=8888)
    args = parser.parse_args(argv)
    prefix = Path(tempfile.mkdtemp(prefix="ngate-demo-"))
    (prefix / "logs").mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(demo_config(prefix, args.port, args.backend_port))
    backend = subprocess.Popen([sys.executable, str(HERE / "chat.py"), str(args.backend_port)],
                               preexec_fn=_die_with_parent)
    print(f"ngate demo: open http://127.0.0.1:{args.port}/ (config: {conf}; chat backend on "
          f"127.0.0.1:{args.backend_port}); Ctrl-C stops", flush=True)
    from ngate.cli import main
    try:
        return main(["-p", f"{prefix}/", "-c", str(conf)])
    finally:
        backend.terminate()
        backend.wait(5)


register_verb("demo", run, "run the WebSocket chat demo (ngate on :8080, chat backend on :8888)")
