"""Static files served by the proxy itself (ngate as an origin), next to nginx.

`python -m bench.static_files [--duration 5] [--conns 50]`: one docroot with a small (1 KiB)
and a 1 MiB file, one nginx.conf read by both programs, wrk (one thread, keep-alive) against each
file on each program in turn (nginx, ngate), proxy pinned to one CPU and wrk to the other when
two are available. Prints a table and, on the last line, JSON (requests/s, p99 ms, MiB/s).
"""
import argparse
import json
import os
import subprocess
import sys

from . import procs
from .cli import proxy_argv
from .loads import parse_wrk

FILES = {"small": ("1k.txt", 1024), "1mb": ("1m.bin", 1024 * 1024)}

CONF = """\
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    include /etc/nginx/mime.types;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
    }}
}}
"""


def make_docroot(base):
    root = os.path.join(base, "www")
    os.makedirs(root, exist_ok=True)
    for name, size in FILES.values():
        with open(os.path.join(root, name), "wb") as f:
            f.write(os.urandom(size))
        os.chmod(os.path.join(root, name), 0o644)
    for d in (base, root):
        os.chmod(d, 0o755)
    return root


def run_wrk(port, path, duration, conns, cpu):
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--latency",
            f"http://127.0.0.1:{port}{path}"]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu)] + argv
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    raw = parse_wrk(out)
    if raw["non_2xx"] or not raw["requests"]:
        raise RuntimeError(f"wrk against {path}: {raw}")
    return raw


def bench_proxy(name, base, root, args, plan):
    prefix = os.path.join(base, name)
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    os.chmod(prefix, 0o755)
    port = procs.free_port()
    conf_path = os.path.join(prefix, "nginx.conf")
    with open(conf_path, "w") as f:      # the same file for both programs
        f.write(CONF.format(port=port, root=root))
    argv = proxy_argv(name, prefix, conf_path)
    if plan:
        argv = ["taskset", "-c", str(plan[0])] + argv
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(argv, cwd=prefix, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        procs.wait_port(port, proc=proc)
        out = {}
        for label, (fname, size) in FILES.items():
            raw = run_wrk(port, "/" + fname, args.duration, args.conns, plan[1] if plan else None)
            out[label] = {"requests_per_sec": raw["requests_per_sec"],
                          "p99_ms": raw.get("p99_ms"),
                          "mib_per_sec": raw["requests_per_sec"] * size / (1024 * 1024)}
        return out
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(10)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--conns", type=int, default=50)
    args = p.parse_args(argv)
    import tempfile
    base = tempfile.mkdtemp(prefix="ngate-bench-static-")
    os.chmod(base, 0o755)
    root = make_docroot(base)
    plan = procs.pin_plan()
    results = {name: bench_proxy(name, base, root, args, plan) for name in ("nginx", "ngate")}
    print(f"{'file':8} {'program':8} {'req/s':>10} {'p99 ms':>8} {'MiB/s':>8}")
    for label in FILES:
        for name, res in results.items():
            r = res[label]
            print(f"{label:8} {name:8} {r['requests_per_sec']:10.0f} {r['p99_ms'] or 0:8.2f} "
                  f"{r['mib_per_sec']:8.1f}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
