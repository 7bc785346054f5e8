"""HTTP/2 figures, nginx vs ngate: h2load over TLS (ALPN h2) against the same nginx.conf.

Usage: python -m bench.http2 [--duration 5] [--runs 3] [--proxies nginx,ngate]
(the same as `python -m bench --only http2`; any `python -m bench` option works).

One config (`worker_processes 1`, `access_log off`, `listen ... ssl http2`, an ECDSA P-256
certificate made by trustme) read by each proxy in turn, pinned to the first CPU, h2load and
the backend on the second:
- h2_return: `h2load -c10 -m10` (10 connections, 10 streams in flight on each) on
  `return 200 "ok\\n"`: the HTTP/2 layer alone; requests per second.
- h2_proxy: the same on a location that proxies to the backend nginx over keep-alive
  HTTP/1.1 connections (`upstream { keepalive 32; }`); requests per second.
- h2_idle_rss: memory per idle HTTP/2 connection over TLS, on the fresh proxy of its run (as
  bench/h2idle.py, PROFILE-http2.md "Session 6, idle memory"): 10 connections warm it up and
  close, then 1000 connections each make one request (`GET /`, :authority and user-agent
  indexed into HPACK as clients do) and stay open; (RSS of master + worker with them - before)
  / 1000, KiB. Measured on a process that has not held many connections before: one that had
  would reuse what it freed and show far less.
"""
from __future__ import annotations

import os
import re
import resource
import sys
import time

from .loads import Figure, Scenario

CONF = """worker_processes 1;
error_log {prefix}/error.log error;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    upstream http_backend {{
        server 127.0.0.1:{http_port};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {prefix}/cert.pem;
        ssl_certificate_key {prefix}/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        http2_max_concurrent_streams 128;
        location = / {{ return 200 "ok\\n"; }}
        location /p {{
            proxy_pass http://http_backend/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def write_conf(h, prefix, port) -> str:
    import trustme
    http_port, _ws_port = h.backends()
    cert = trustme.CA().issue_cert("bench.test", key_type=trustme.KeyType.ECDSA)
    cert.cert_chain_pems[0].write_to_path(os.path.join(prefix, "cert.pem"))
    cert.private_key_pem.write_to_path(os.path.join(prefix, "key.pem"))
    for name in ("cert.pem", "key.pem"):
        os.chmod(os.path.join(prefix, name), 0o644)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(CONF.format(prefix=prefix, port=port, http_port=http_port))
    return path


def parse_h2load(out: str) -> dict:
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    if m is None:
        raise RuntimeError(f"h2load: no result in {out[-500:]!r}")
    raw = {"requests_per_sec": float(m.group(3))}
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored", out)
    raw["requests"], raw["succeeded"] = int(m.group(3)), int(m.group(4))
    raw["failed"] = int(m.group(5)) + int(m.group(6))
    m = re.search(r"status codes: (\d+) 2xx", out)
    raw["status_2xx"] = int(m.group(1)) if m else 0
    return raw


def h2load(h, port, path="/", conns=10, streams=10):
    """h2load's figures, and its own CPU time per request (`h2load_cpu_us`, user + system,
    from the harness's reaped children): the load CPU% column is the whole load CPU's busy
    share (other processes included), not h2load's."""
    argv = ["h2load", "-D", f"{h.duration:g}", "-c", str(conns), "-m", str(streams), "-t", "1",
            f"https://127.0.0.1:{port}{path}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    raw = parse_h2load(h.procs.run(argv, cpu=h.load_cpu, timeout=h.duration + 60))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if raw["requests"]:
        raw["h2load_cpu_us"] = round((after.ru_utime - before.ru_utime + after.ru_stime
                                      - before.ru_stime) / raw["requests"] * 1e6, 2)
    if raw["requests"] == 0 or raw["failed"] > 0.01 * raw["requests"] \
            or raw["status_2xx"] < 0.99 * raw["requests"]:
        raise RuntimeError(f"h2load: {raw}")
    return {"value": raw["requests_per_sec"], "h2load_conns": conns, "streams": streams, **raw}


def h2_return(h, port, pid):
    return h2load(h, port, "/")


def h2_proxy(h, port, pid):
    return h2load(h, port, "/p")


IDLE_CONNS = 1000


def h2_idle_rss(h, port, pid):
    from . import h2idle, procs
    tls = h2idle.client_tls()
    h2idle.warm_up(port, tls)
    pids = procs.tree(pid)
    before = procs.rss_kb(pids)
    socks = h2idle.open_many(port, tls, True, IDLE_CONNS)
    try:
        time.sleep(0.5)
        after = procs.rss_kb(procs.tree(pid))
    finally:
        for s in socks:
            s.close()
    return {"value": (after - before) / IDLE_CONNS, "connections": IDLE_CONNS,
            "rss_before_kb": before, "rss_after_kb": after}


SCENARIO = Scenario("http2", write_conf, tls=True)
FIGURES = [
    Figure("h2_return", "HTTP/2 over TLS, return 200 (h2load -c10 -m10)", "req/s", True,
           h2_return, 0.5, direct=False, scenario=SCENARIO),
    Figure("h2_proxy", "HTTP/2 over TLS, proxied to keep-alive HTTP/1.1 (h2load -c10 -m10)",
           "req/s", True, h2_proxy, 0.5, direct=False, scenario=SCENARIO),
    Figure("h2_idle_rss", "RSS per idle HTTP/2 connection over TLS (after one request)", "KiB",
           False, h2_idle_rss, 1.0, direct=False, scenario=SCENARIO),
]


def main(argv=None) -> None:
    from . import cli
    return cli.main(["--only", "http2", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
