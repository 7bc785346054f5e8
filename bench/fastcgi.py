"""FastCGI to one php-fpm, nginx vs ngate: requests per second through the seed's PHP recipe.

Usage: python -m bench.fastcgi [--duration 5] [--runs 3] [--conns 16] [--children 16]

One php-fpm (`pm = static`, `--children` workers, opcache as installed) serves `ok.php`
(`<?php echo "ok\\n";`). One nginx.conf, read by both programs in turn (`worker_processes 1`,
`access_log off`) with two locations:
- fastcgi: the seed's recipe (`fastcgi_pass 127.0.0.1:PORT`, a new FastCGI connection per request)
- fastcgi_keepalive: `fastcgi_keep_conn on` to an `upstream { keepalive 16; }` group (php-fpm
  needs a worker per kept connection: `--children` must cover them, or requests queue)
wrk (one thread, `--conns` keep-alive client connections) against each; the proxy is pinned to
the first CPU, wrk and php-fpm share the second: php-fpm is usually the ceiling, so the figure
that matters is how close each proxy gets to it (and the proxy's own CPU, printed alongside).
Prints a table and one JSON object (medians over runs) on the last line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

from . import procs
from .loads import parse_wrk

FPM_BIN = "/usr/sbin/php-fpm8.2"
FPM_CONF = """[global]
pid = {dir}/php-fpm.pid
error_log = {dir}/php-fpm.log
daemonize = no
[bench]
user = {user}
listen = 127.0.0.1:{port}
pm = static
pm.max_children = {children}
pm.max_requests = 0
"""
CONF = """worker_processes 1;
error_log {prefix}/error.log error;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    upstream php_keepalive {{ server 127.0.0.1:{fpm_port}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location ~ ^/ka/(.+\\.php)$ {{
            root {docroot};
            fastcgi_pass php_keepalive;
            fastcgi_keep_conn on;
            fastcgi_param SCRIPT_FILENAME $document_root/$1;
            include fastcgi_params;
        }}
        location ~ \\.php$ {{
            root {docroot};
            fastcgi_pass 127.0.0.1:{fpm_port};
            fastcgi_index index.php;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            include fastcgi_params;
        }}
    }}
}}
"""
FIGURES = {"fastcgi": "/ok.php", "fastcgi_keepalive": "/ka/ok.php"}


def start_fpm(reg, children: int, cpu) -> tuple[int, str]:
    d = reg.tempdir("ngate-bench-fpm-")
    docroot = os.path.join(d, "html")
    os.makedirs(docroot)
    with open(os.path.join(docroot, "ok.php"), "w") as f:
        f.write('<?php echo "ok\\n";\n')
    port = procs.free_port()
    conf = os.path.join(d, "php-fpm.conf")
    with open(conf, "w") as f:
        f.write(FPM_CONF.format(dir=d, port=port, children=children,
                                user="root" if os.geteuid() == 0 else "nobody"))
    fpm = reg.start([FPM_BIN, "-F", "-R", "-y", conf], cpu=cpu,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.wait_port(port, proc=fpm)
    return port, docroot


def proxy_argv(name: str, prefix: str) -> list[str]:
    args = ["-p", prefix + "/", "-c", os.path.join(prefix, "nginx.conf"), "-g", "daemon off;"]
    if name == "nginx":
        return ["/usr/sbin/nginx", *args]
    return [sys.executable, "-m", "ngate", *args]


def measure(reg, name: str, fpm_port: int, docroot: str, args, cpus) -> dict:
    prefix = reg.tempdir(f"ngate-bench-fcgi-{name}-")
    port = procs.free_port()
    with open(os.path.join(prefix, "nginx.conf"), "w") as f:
        f.write(CONF.format(prefix=prefix, port=port, fpm_port=fpm_port, docroot=docroot))
    if name == "nginx":         # ngate falls back to its bundled copy
        shutil.copy("/etc/nginx/fastcgi_params", prefix)
    proxy_cpu, load_cpu = cpus or (None, None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    proxy = reg.start(proxy_argv(name, prefix), cpu=proxy_cpu, cwd=prefix, env=env)
    out = {}
    try:
        procs.wait_port(port, proc=proxy)
        for figure, path in FIGURES.items():
            before = procs.cpu_seconds(procs.tree(proxy.pid))
            text = reg.run(["wrk", "-t1", f"-c{args.conns}", f"-d{args.duration:g}s", "--latency",
                            f"http://127.0.0.1:{port}{path}"], cpu=load_cpu,
                           timeout=args.duration + 30)
            used = procs.cpu_seconds(procs.tree(proxy.pid)) - before
            raw = parse_wrk(text)
            if raw["non_2xx"] or raw["socket_errors"] or not raw["requests"]:
                raise RuntimeError(f"{name} {figure}: {raw}")
            out[figure] = raw["requests_per_sec"]
            out[figure + "_p99_ms"] = raw.get("p99_ms")
            out[figure + "_proxy_cpu"] = 100.0 * used / args.duration
    finally:
        reg.stop(proxy)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--children", type=int, default=16)
    p.add_argument("--proxies", default="nginx,ngate")
    args = p.parse_args(argv)
    procs.raise_fd_limit()
    reg = procs.Procs()
    try:
        cpus = procs.pin_plan()
        fpm_port, docroot = start_fpm(reg, args.children, cpus[1] if cpus else None)
        names = args.proxies.split(",")
        runs = {name: [] for name in names}
        for _ in range(args.runs):
            for name in names:          # alternating A, B, A, B
                runs[name].append(measure(reg, name, fpm_port, docroot, args, cpus))
    finally:
        reg.close()
    result = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
              for name, rs in runs.items()}
    print(f"{'figure':18} {'program':8} {'req/s':>10} {'p99 ms':>8} {'proxy CPU %':>12}")
    for figure in FIGURES:
        for name, r in result.items():
            print(f"{figure:18} {name:8} {r[figure]:10.0f} {r[figure + '_p99_ms'] or 0:8.2f} "
                  f"{r[figure + '_proxy_cpu']:12.0f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
