"""TLS figures, nginx vs ngate: full handshakes per second and HTTPS requests per second.

Usage: python -m bench.tls [--duration 5] [--runs 3] [--proxies nginx,ngate]

One config (`worker_processes 1`, `access_log off`, an ECDSA P-256 certificate made by trustme,
`ssl_protocols TLSv1.2 TLSv1.3`, `return 200 "ok\\n"`) started for each proxy in turn, pinned to
the first CPU, the load on the second (as bench/cli.py does):
- tls_handshake: 50 asyncio loops of connect, full TLS 1.3 handshake (no resumption), one
  request, close; handshakes per second.
- https_keepalive: `wrk -t1 -c50` over HTTPS keep-alive connections; requests per second.
Prints a table and one JSON object (medians over runs) on the last line.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import sys
import time

from . import procs
from .loads import parse_wrk

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


def write_prefix(reg) -> str:
    import trustme
    prefix = reg.tempdir("ngate-bench-tls-")
    cert = trustme.CA().issue_cert("bench.test", key_type=trustme.KeyType.ECDSA)
    cert.cert_chain_pems[0].write_to_path(os.path.join(prefix, "cert.pem"))
    cert.private_key_pem.write_to_path(os.path.join(prefix, "key.pem"))
    for name in ("cert.pem", "key.pem"):
        os.chmod(os.path.join(prefix, name), 0o644)
    return prefix


def proxy_argv(name: str, prefix: str) -> list[str]:
    args = ["-p", prefix + "/", "-c", os.path.join(prefix, "nginx.conf"), "-g", "daemon off;"]
    if name == "nginx":
        return ["/usr/sbin/nginx", *args]
    return [sys.executable, "-m", "ngate", *args]


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


def measure(reg, name: str, duration: float, cpus) -> dict:
    prefix = write_prefix(reg)
    port = procs.free_port()
    with open(os.path.join(prefix, "nginx.conf"), "w") as f:
        f.write(CONF.format(prefix=prefix, port=port))
    proxy_cpu, load_cpu = cpus or (None, None)
    proxy = reg.start(proxy_argv(name, prefix), cpu=proxy_cpu, cwd=os.getcwd())
    try:
        procs.wait_port(port, proc=proxy)
        hs = json.loads(reg.run([sys.executable, "-m", "bench.tls", "--handshake-load", str(port),
                                 "--duration", str(duration)], cpu=load_cpu,
                                timeout=duration + 30).strip().splitlines()[-1])
        out = reg.run(["wrk", "-t1", "-c50", f"-d{duration:g}s", "--latency",
                       f"https://127.0.0.1:{port}/"], cpu=load_cpu, timeout=duration + 30)
        https = parse_wrk(out)
    finally:
        reg.stop(proxy)
    return {"tls_handshake": hs["value"], "tls_handshake_errors": hs["errors"],
            "https_keepalive": https["requests_per_sec"],
            "https_errors": https["socket_errors"] + https["non_2xx"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.tls")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--proxies", default="nginx,ngate")
    ap.add_argument("--handshake-load", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.handshake_load:
        return handshake_load(args.handshake_load, args.duration)
    procs.raise_fd_limit()
    reg = procs.Procs()
    names = args.proxies.split(",")
    runs: dict = {n: [] for n in names}
    try:
        for _ in range(args.runs):
            for name in names:          # alternating A, B, A, B
                runs[name].append(measure(reg, name, args.duration, procs.pin_plan()))
    finally:
        reg.close()
    medians = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    print(f"{'figure':<18}" + "".join(f"{n:>12}" for n in names))
    for key in ("tls_handshake", "https_keepalive"):
        print(f"{key:<18}" + "".join(f"{medians[n][key]:>12.0f}" for n in names))
    print(json.dumps({"medians": medians, "runs": runs}))


if __name__ == "__main__":
    main()
