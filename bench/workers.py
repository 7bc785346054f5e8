"""Multi-worker scaling: HTTP keep-alive req/s with `worker_processes 1` and `2`, nginx vs ngate.

Both configs come from the one template in bench/conf.py (only `worker_processes` differs) and
each is read verbatim by both proxies. Two derived figures per proxy, ngate's compared to nginx's
in the ratio column:
- workers_scaling: (2-worker req/s) / (1-worker req/s).
- workers_per_core: the same for req/s per CPU-second of the proxy (master + workers). About 1
  means the second worker serves requests as cheaply as the first (no shared bottleneck), so
  throughput would scale with cores the machine does not have here.

This machine has two cores for everything: proxy workers, wrk and the backend. Pinning cannot
give two workers two cores of their own, so these figures run unpinned (every process may use
both CPUs, the scheduler places them), with a 2-worker backend nginx of their own and
`wrk -t2 -c100` so neither the backend nor a single wrk thread caps the figure first. The
machine is then saturated and the scheduler shares it between runnable threads, so the proxy's
CPU (and with it its req/s) depends on how many threads it has next to the load's.
What it shows: whether a second worker takes a share of the connections (the per-process CPU
split printed under the table), what a request costs with two workers, and how much throughput a
second worker adds when it competes with the load for the same two cores. What it cannot show:
scaling on dedicated cores (a proxy that is CPU-bound, like ngate, gains from the larger share
of the machine that a second process gets; nginx, already bounded by wrk and the backend, can't).
"""
from . import conf
from .loads import Figure, Scenario, wrk

WRK_THREADS, WRK_CONNS = 2, 100


def scenario(workers):
    def write(h, prefix, port):
        http_port, ws_port = h.backends(key="workers", workers=2)
        return conf.write_proxy(prefix, port, http_port, ws_port, workers=workers)
    return Scenario(f"workers_{workers}", write, pinned=False)


def http_keepalive_unpinned(h, port, pid):
    return wrk(h, port, conns=WRK_CONNS, threads=WRK_THREADS)


FIGURES = [
    Figure("http_keepalive_w1", "HTTP keep-alive, 1 worker, unpinned", "req/s", True,
           http_keepalive_unpinned, direct=False, scenario=scenario(1)),
    Figure("http_keepalive_w2", "HTTP keep-alive, 2 workers, unpinned", "req/s", True,
           http_keepalive_unpinned, direct=False, scenario=scenario(2)),
    Figure("workers_scaling", "req/s, 2 workers / 1 worker", "x", True, None,
           derived=("http_keepalive_w2", "http_keepalive_w1", "")),
    Figure("workers_per_core", "req/s per proxy CPU, 2 workers / 1 worker", "x", True, None,
           derived=("http_keepalive_w2", "http_keepalive_w1", "_per_core")),
]
