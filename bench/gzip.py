"""gzip on a 64 KiB compressible response (the proxy as origin), next to nginx.

Usage: python -m bench.gzip [--duration 5] [--runs 3] (= `python -m bench --only gzip`).

One docroot with a 64 KiB CSS-like text file, one nginx.conf read by both programs: `gzip on`,
`gzip_types text/css`, at gzip_comp_level 1 (nginx's default) and 6 (a common setting), wrk
(one thread, 50 keep-alive connections, `Accept-Encoding: gzip`). gzip_64k_bytes is the size of
one response on the wire (head, chunk framing and the gzip stream) at level 6: the target is
nginx's within 2% (ratio <= 1.02).
"""
import os
import socket
import sys

from .loads import Figure, Scenario, wrk

NAME = "app.css"
SIZE = 64 * 1024

CONF = """\
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    include /etc/nginx/mime.types;
    gzip on;
    gzip_types text/css;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location /l1/ {{ alias {root}/; gzip_comp_level 1; }}
        location /l6/ {{ alias {root}/; gzip_comp_level 6; }}
    }}
}}
"""


def compressible(size: int) -> bytes:
    """CSS-like text: repetitive enough to compress about 6:1, not trivially."""
    out, i = [], 0
    while sum(map(len, out)) < size:
        out.append(b".c%d { color: #%06x; margin: %dpx %dpx; }\n" % (i, (i * 2654435761) & 0xffffff,
                                                                    i % 17, i % 5))
        i += 1
    return b"".join(out)[:size]


def write_conf(h, prefix, port):
    root = os.path.join(prefix, "www")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, NAME), "wb") as f:
        f.write(compressible(SIZE))
    for p in (prefix, root):
        os.chmod(p, 0o755)
    os.chmod(os.path.join(root, NAME), 0o644)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:      # the same file for both programs
        f.write(CONF.format(port=port, root=root))
    return path


def wire_bytes(port: int, path: str) -> int:
    """The bytes of one gzipped response on the wire (head + chunked gzip stream)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: b\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
                  % path.encode())
        data = b""
        while True:
            more = s.recv(65536)
            if not more:
                break
            data += more
    if b"Content-Encoding: gzip" not in data.partition(b"\r\n\r\n")[0]:
        raise RuntimeError(f"not gzipped: {data[:300]!r}")
    return len(data)


def gzip_load(level):
    def load(h, port, pid):
        return wrk(h, port, path=f"/l{level}/{NAME}", headers=("Accept-Encoding: gzip",))
    return load


def gzip_bytes(h, port, pid):
    return {"value": wire_bytes(port, f"/l6/{NAME}")}


SCENARIO = Scenario("gzip", write_conf, ready_path=f"/l1/{NAME}")
FIGURES = [
    Figure("gzip_64k_l1", "gzip 64 KiB text, level 1, keep-alive", "req/s", True, gzip_load(1),
           target=0.8, direct=False, scenario=SCENARIO),
    Figure("gzip_64k_l6", "gzip 64 KiB text, level 6, keep-alive", "req/s", True, gzip_load(6),
           target=0.8, direct=False, scenario=SCENARIO),
    Figure("gzip_64k_bytes", "gzip 64 KiB text, level 6: bytes on the wire", "bytes", False,
           gzip_bytes, target=1.02, direct=False, scenario=SCENARIO),
]


def main(argv=None):
    from . import cli
    return cli.main(["--only", "gzip", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
