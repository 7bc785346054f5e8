"""Static files served by the proxy itself (ngate as an origin), next to nginx.

Usage: python -m bench.static_files [--duration 5] [--runs 3] [--ngate-ref HEAD]
(the same as `python -m bench --only static`).

One docroot with a small (1 KiB) and a 1 MiB file, one nginx.conf read by both programs, wrk
(one thread, 50 keep-alive connections) against each file; proxy pinned to one CPU and wrk to
the other. Raw figures also give p99 and MiB/s.
"""
import os
import sys

from .loads import Figure, Scenario, wrk

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


def write_conf(h, prefix, port):
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:      # the same file for both programs
        f.write(CONF.format(port=port, root=make_docroot(prefix)))
    return path


def static_load(label):
    name, size = FILES[label]

    def load(h, port, pid):
        raw = wrk(h, port, path="/" + name)
        return {**raw, "mib_per_sec": raw["requests_per_sec"] * size / (1024 * 1024)}
    return load


SCENARIO = Scenario("static", write_conf, ready_path="/" + FILES["small"][0])
FIGURES = [
    Figure("static_1k", "static file 1 KiB, keep-alive", "req/s", True, static_load("small"), 0.7,
           direct=False, scenario=SCENARIO),
    Figure("static_1m", "static file 1 MiB, keep-alive", "req/s", True, static_load("1mb"),
           direct=False, scenario=SCENARIO),
]


def main(argv=None):
    from . import cli
    return cli.main(["--only", "static", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
