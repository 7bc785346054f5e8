"""The cost of limit_req on the keep-alive figure, nginx vs ngate.

Usage: python -m bench.limits [--duration 5] [--runs 3] (= `python -m bench --only limits`).

One config: the main proxy template (bench/conf.py) plus a `limit_req_zone` keyed on
`$binary_remote_addr` with a rate no load here reaches (so every request is looked up, charged
and passed, none delayed or refused), and two twin locations to the keep-alive backend's `/`:
`/pl` (plain) and `/lr` (the same plus `limit_req`). wrk -t1 -c50 on each, proxy pinned as for
the main figures. limit_req_cost = (req/s with limit_req) / (req/s without), per proxy; its ratio
column compares ngate's factor with nginx's.
"""
import sys

from . import conf
from .loads import Figure, Scenario, wrk

ZONE = "\n    limit_req_zone $binary_remote_addr zone=bench:10m rate=10000000r/s;\n"
TWINS = """
        location /pl {
            proxy_pass http://http_backend/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }

        location /lr {
            limit_req zone=bench burst=1000 nodelay;
            proxy_pass http://http_backend/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
"""


def write_conf(h, prefix, port):
    http_port, ws_port = h.backends()
    path = conf.write_proxy(prefix, port, http_port, ws_port)
    with open(path) as f:
        text = f.read()
    text = text.replace("\nhttp {\n", "\nhttp {\n" + ZONE, 1)
    text = text.replace("\n        location /ws {", TWINS + "\n        location /ws {", 1)
    if ZONE not in text or TWINS not in text:
        raise RuntimeError("bench/conf.py's template changed: update bench/limits.py")
    with open(path, "w") as f:
        f.write(text)
    return path


def keepalive_plain(h, port, pid):
    return wrk(h, port, path="/pl")


def keepalive_limit_req(h, port, pid):
    return wrk(h, port, path="/lr")


SCENARIO = Scenario("limits", write_conf, ready_path="/pl")
FIGURES = [
    Figure("keepalive_plain", "HTTP keep-alive (limits config, no limit)", "req/s", True,
           keepalive_plain, direct=False, scenario=SCENARIO),
    Figure("keepalive_limit_req", "HTTP keep-alive with limit_req", "req/s", True,
           keepalive_limit_req, direct=False, scenario=SCENARIO),
    Figure("limit_req_cost", "req/s, limit_req / none", "x", True, None,
           derived=("keepalive_limit_req", "keepalive_plain", "")),
]


def main(argv=None):
    from . import cli
    return cli.main(["--only", "limits", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
