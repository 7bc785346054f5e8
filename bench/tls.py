"""TLS figures, nginx vs ngate: full handshakes per second and HTTPS requests per second.

Usage: python -m bench.tls [--duration 5] [--runs 3] [--proxies nginx,ngate] [--ngate-ref HEAD]
(the same as `python -m bench --only tls`; any `python -m bench` option works).

One config (`worker_processes 1`, `access_log off`, an ECDSA P-256 certificate made by trustme,
`ssl_protocols TLSv1.2 TLSv1.3`, `return 200 "ok\\n"`) read by each proxy in turn, pinned to
the first CPU, the load on the second (as for the main figures):
- tls_handshake: 50 asyncio loops of connect, full TLS 1.3 handshake (no resumption), one
  request, close; handshakes per second.
- https_keepalive: `wrk -t1 -c50` over HTTPS keep-alive connections; requests per second.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time

from .loads import Figure, Scenario, wrk

CONF = """worker_processes 1;
error_log {prefix}/error.log error;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {prefix}/cert.pem;
        ssl_certificate_key {prefix}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
REQUEST = b"GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n"


def write_conf(h, prefix, port) -> str:
    """Certificate, key and nginx.conf under `prefix` (readable by nginx's `nobody` workers)."""
    import trustme
    cert = trustme.CA().issue_cert("bench.test", key_type=trustme.KeyType.ECDSA)
    cert.cert_chain_pems[0].write_to_path(os.path.join(prefix, "cert.pem"))
    cert.private_key_pem.write_to_path(os.path.join(prefix, "key.pem"))
    for name in ("cert.pem", "key.pem"):
        os.chmod(os.path.join(prefix, name), 0o644)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(CONF.format(prefix=prefix, port=port))
    return path


async def _handshakes(port: int, duration: float, loops: int) -> dict:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    done = errors = 0
    deadline = time.monotonic() + duration

    async def loop_once():
        nonlocal done, errors
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                               server_hostname="bench.test")
                writer.write(REQUEST)
                await reader.read()
                writer.close()
                done += 1
            except (OSError, ssl.SSLError):
                errors += 1
    await asyncio.gather(*(loop_once() for _ in range(loops)))
    return {"value": done / duration, "handshakes": done, "errors": errors}


def handshake_load(port: int, duration: float) -> None:
    """Run in a child process (pinned to the load CPU): prints the result as JSON."""
    import uvloop
    print(json.dumps(uvloop.run(_handshakes(port, duration, 50))))


def tls_handshake(h, port, pid):
    raw = h.python_load("bench.tls", "--handshake-load", str(port), "--duration", f"{h.duration:g}")
    if raw["errors"] > 0.01 * max(raw["handshakes"], 1):
        raise RuntimeError(f"tls handshakes: {raw}")
    return raw


def https_keepalive(h, port, pid):
    return wrk(h, port, scheme="https")


SCENARIO = Scenario("tls", write_conf, tls=True)
FIGURES = [
    Figure("tls_handshake", "TLS 1.3 full handshakes (+1 request)", "/s", True, tls_handshake,
           direct=False, scenario=SCENARIO),
    Figure("https_keepalive", "HTTPS keep-alive, small body", "req/s", True, https_keepalive, 0.6,
           direct=False, scenario=SCENARIO),
]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--handshake-load", type=int)
    ap.add_argument("--duration", type=float, default=5.0)
    args, _ = ap.parse_known_args(argv)
    if args.handshake_load:
        return handshake_load(args.handshake_load, args.duration)
    from . import cli
    return cli.main(["--only", "tls", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
