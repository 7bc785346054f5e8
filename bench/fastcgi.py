"""FastCGI to one php-fpm, nginx vs ngate: requests per second through the seed's PHP recipe.

Usage: python -m bench.fastcgi [--duration 5] [--runs 3] [--ngate-ref HEAD]
(the same as `python -m bench --only fastcgi`).

One php-fpm (`pm = static`, 16 workers, opcache as installed) serves `ok.php`
(`<?php echo "ok\\n";`). One nginx.conf, read by both programs in turn (`worker_processes 1`,
`access_log off`, Debian's `fastcgi_params` copied next to it) with two locations:
- fastcgi: the seed's recipe (`fastcgi_pass 127.0.0.1:PORT`, a new FastCGI connection per request)
- fastcgi_keepalive: `fastcgi_keep_conn on` to an `upstream { keepalive 16; }` group (php-fpm
  needs a worker per kept connection: CHILDREN must cover them, or requests queue)
wrk (one thread, 16 keep-alive client connections) against each; the proxy is pinned to the
first CPU, wrk and php-fpm share the second: php-fpm is usually the ceiling, so the figure that
matters is how close each proxy gets to it (and the proxy's own CPU, printed alongside).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from . import procs
from .loads import Figure, Scenario, wrk

CHILDREN = CONNS = 16

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


def write_conf(h, prefix, port) -> str:
    """Start php-fpm (on the load CPU), then write nginx.conf and fastcgi_params under prefix."""
    fpm_port, docroot = start_fpm(h.procs, CHILDREN, h.load_cpu)
    shutil.copy("/etc/nginx/fastcgi_params", prefix)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(CONF.format(prefix=prefix, port=port, fpm_port=fpm_port, docroot=docroot))
    return path


def fastcgi_load(path):
    def load(h, port, pid):
        return wrk(h, port, path=path, conns=CONNS)
    return load


SCENARIO = Scenario("fastcgi", write_conf, ready_path="/ok.php")
FIGURES = [
    Figure("fastcgi", "FastCGI, new connection per request", "req/s", True,
           fastcgi_load("/ok.php"), 0.8, direct=False, scenario=SCENARIO),
    Figure("fastcgi_keepalive", "FastCGI, fastcgi_keep_conn + keepalive 16", "req/s", True,
           fastcgi_load("/ka/ok.php"), direct=False, scenario=SCENARIO),
]


def main(argv=None) -> int:
    from . import cli
    return cli.main(["--only", "fastcgi", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
