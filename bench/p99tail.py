"""What http_p99's tail is made of: every request's timestamps, matched with GC collections.

    python -m bench.p99tail [--proxies direct,nginx,ngate] [--runs 3] [--duration 10]
                            [--rate 1000] [--slice 0.5] [--warmup 20] [--realtime]
                            [--timer uvloop|timerfd] [--env PROXY:NAME=VALUE ...] [--keep DIR]

The http_p99 load of `python -m bench` (bench/httplat.py: 1,000 req/s over 20 keep-alive
connections, pinned as the bench pins: proxy on CPU 0, client and backend on CPU 1); every
proxy of a run is started at once and the client takes turns among them (`--slice` seconds
each, the first `--warmup` requests of a turn left out), with `httplat --trace` (per request:
due, submitted = when the client's timer let it go, sent, finished) and GC logs
(bench/gctrace.py) of the client and of ngate's master and worker. `--realtime` and `--timer
timerfd` are the bench's http_p99 conditions (bench/README.md); without them, the old ones.
Per proxy, the median over runs (min-max) of:
  p50/p90/p99/p99.9/max of latency from due (the bench's figure) and from submitted (without
  the client's own timer lateness); the lateness itself (p50/p99);
  the worker's collections by generation and their longest pause; the coarse-deadline ticks
  (with BENCH_TRACE_TICKS=1); of the requests at or above the run's p99: the share at a turn's
  start, during a tick, next to another slow one (an episode), during a worker or client
  collection, and their median split into lateness / waiting for a connection / on the wire;
  the proxy's and the client's runqueue wait (/proc/PID/schedstat).
`direct` is the load against the backend alone; names starting with "ngate" run ngate (several:
an A/A check, or an experiment with `--env`, e.g. ngate2:BENCH_GC_DEFAULT=1). bench/PROFILE.md
(Session 9, s9-p99) has the figures.
"""
import argparse
import json
import os
import statistics
import sys

from . import conf, gctrace, httplat, procs
from .cli import ROOT, Proxy, start_backends


class _H:
    """The part of cli.Harness that Proxy and start_backends use."""

    def __init__(self, registry, plan):
        self.procs, self.plan = registry, plan
        self.proxy_cpu, self.load_cpu = plan if plan else (None, None)
        self.ngate_root = self.base_root = ROOT
        self.backend_pids = []


def pct(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q / 100 * len(sorted_values)))]


def overlaps(intervals, start, stop):
    """Whether [start, stop] meets any of the sorted (start, stop) intervals."""
    return any(a <= stop and b >= start for a, b in intervals)


def analyse(trace, target, gcs, workers, client_pid, per_turn, warmup):
    """Figures of the requests to `target` (index in the trace); `workers`: pids whose GC
    collections count as the proxy's; `per_turn`: requests per turn (httplat --slice)."""
    ix = [i for i, (f, k) in enumerate(zip(trace["finished"], trace["target"]))
          if k == target and f is not None and i % per_turn >= warmup]
    reqs = [(trace["due"][i], trace["submitted"][i], trace["sent"][i], trace["finished"][i])
            for i in ix]
    t0, t1 = reqs[0][0], max(r[3] for r in reqs)
    lat = sorted(f - d for d, s, w, f in reqs)
    lat_sub = sorted(f - s for d, s, w, f in reqs)
    late = sorted(s - d for d, s, w, f in reqs)
    out = {f"p{q}": pct(lat, q) * 1e3 for q in (50, 90, 99, 99.9)}
    out.update({f"sub_p{q}": pct(lat_sub, q) * 1e3 for q in (50, 99)})
    out["max"] = lat[-1] * 1e3
    out["late_p50"], out["late_p99"] = pct(late, 50) * 1e3, pct(late, 99) * 1e3
    in_run = [g for g in gcs if t0 <= g[3] and g[2] <= t1]
    ticks = sorted((g[2], g[3]) for g in in_run if g[0] in workers and g[1] == -1)
    in_run = [g for g in in_run if g[1] >= 0]
    worker = sorted((g[2], g[3]) for g in in_run if g[0] in workers)
    client = sorted((g[2], g[3]) for g in in_run if g[0] == client_pid)
    for gen in (0, 1, 2):
        out[f"worker_gc{gen}"] = sum(1 for g in in_run if g[0] in workers and g[1] == gen)
    out["worker_gc_max_ms"] = max((b - a for a, b in worker), default=0.0) * 1e3
    out["client_gc"] = len(client)
    cut = pct(lat, 99)
    slow = [r for r in reqs if r[3] - r[0] >= cut]
    out["slow"] = len(slow)
    cut_sub = pct(lat_sub, 99)
    slow_sub = [i for i, r in zip(ix, reqs) if r[3] - r[1] >= cut_sub]
    out["slow_sub_turn_start_pct"] = 100.0 * sum(1 for i in slow_sub
                                                 if i % per_turn < warmup + 3) / len(slow_sub)
    out["slow_worker_gc_pct"] = 100.0 * sum(overlaps(worker, d, f) for d, s, w, f in slow) / len(slow)
    out["ticks"] = len(ticks)
    out["slow_tick_pct"] = 100.0 * sum(overlaps(ticks, d, f) for d, s, w, f in slow) / len(slow)
    out["all_tick_pct"] = 100.0 * sum(overlaps(ticks, d, f) for d, s, w, f in reqs) / len(reqs)
    out["slow_in_episode_pct"] = 100.0 * sum(
        1 for j, r in enumerate(reqs) if r[3] - r[0] >= cut and any(
            reqs[k][3] - reqs[k][0] >= cut for k in (j - 1, j + 1) if 0 <= k < len(reqs))
    ) / len(slow)
    out["slow_client_gc_pct"] = 100.0 * sum(overlaps(client, d, f) for d, s, w, f in slow) / len(slow)
    out["slow_late_ms"] = statistics.median(s - d for d, s, w, f in slow) * 1e3
    out["slow_queue_ms"] = statistics.median(w - s for d, s, w, f in slow) * 1e3
    out["slow_wire_ms"] = statistics.median(f - w for d, s, w, f in slow) * 1e3
    return out


def one_round(h, names, confs, backend_port, backend_pids, args, work):
    """Every proxy started at once, one client taking turns among them (httplat --port A,B)."""
    trace, gclog = os.path.join(work, "round.trace"), os.path.join(work, "round.gc")
    for path in (trace, gclog):
        if os.path.exists(path):
            os.unlink(path)
    started, ports, trees = [], [], {}
    try:
        for name in names:
            if name == "direct":
                ports.append(backend_port)
                trees[name] = []
                continue
            prefix, conf_path, port = confs[name]
            argv = None
            env = args.env.get(name, {})
            env_keep = {k: os.environ.get(k) for k in env}
            if name.startswith("ngate"):
                argv = [sys.executable, "-m", "bench.gctrace", gclog, "--", "-p", prefix + "/",
                        "-c", conf_path, "-g", "daemon off;"]
                os.environ.update(env)
            try:
                proxy = Proxy(h, name, prefix, conf_path, port, argv=argv)
            finally:
                for k, v in env_keep.items():
                    os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
            started.append(proxy)
            ports.append(port)
            trees[name] = procs.tree(proxy.proc.pid)
        if args.realtime:
            procs.set_realtime([p for t in trees.values() for p in t] + backend_pids)
        wait0 = {n: sum(httplat.run_delay(p) for p in t) for n, t in trees.items()}
        rt = ["chrt", "-f", "1"] if args.realtime else []
        p = h.procs.start([*rt, sys.executable, "-m", "bench.httplat", "--port",
                           ",".join(map(str, ports)), "--rate", str(args.rate), "--conns", "20",
                           "--duration", f"{args.duration:g}", "--slice", f"{args.slice:g}",
                           "--warmup", str(args.warmup), "--timer", args.timer,
                           "--trace", trace, "--gc-trace", gclog],
                          cpu=h.load_cpu, cwd=ROOT, stdout=procs.subprocess.PIPE, text=True)
        client_pid = p.pid
        out = p.communicate(timeout=len(names) * args.duration + 60)[0]
        h.procs.stop(p)
        waited = {n: sum(httplat.run_delay(p) for p in t) - wait0[n] for n, t in trees.items()}
    finally:
        for proxy in started:
            proxy.stop()
    raw = json.loads(out.strip().splitlines()[-1])
    summaries = raw["targets"] if len(names) > 1 else [raw]
    with open(trace) as f:
        tr = json.load(f)
    gcs = gctrace.read(gclog)
    if args.keep:
        import shutil
        shutil.copy(trace, os.path.join(args.keep, f"trace-{os.getpid()}-{len(os.listdir(args.keep))}.json"))
    results = {}
    for i, name in enumerate(names):
        if summaries[i]["ok"] < 0.99 * summaries[i]["sent"]:
            raise RuntimeError(f"httplat {name}: {summaries[i]}")
        workers = set(trees[name][1:])      # the master's children
        per_turn = round(args.slice * args.rate) if len(names) > 1 else len(tr["due"])
        r = analyse(tr, i, gcs, workers, client_pid, per_turn, args.warmup)
        r["proxy_wait_ms"] = waited[name] * 1e3
        r["client_wait_ms"] = summaries[i]["run_delay_ms"]
        results[name] = r
    return results


KEYS = ["p50", "p90", "p99", "p99.9", "max", "sub_p50", "sub_p99", "late_p50", "late_p99",
        "worker_gc0", "worker_gc1", "worker_gc2", "worker_gc_max_ms", "client_gc", "slow",
        "slow_sub_turn_start_pct", "ticks", "slow_tick_pct", "all_tick_pct", "slow_in_episode_pct", "slow_worker_gc_pct", "slow_client_gc_pct", "slow_late_ms",
        "slow_queue_ms", "slow_wire_ms", "proxy_wait_ms", "client_wait_ms"]


def table(results):
    names = list(results)
    lines = [f"{'':<20}" + "".join(f"{n:>22}" for n in names)]
    for k in KEYS:
        cells = []
        for n in names:
            vals = [r[k] for r in results[n]]
            cells.append(f"{statistics.median(vals):8.3g} ({min(vals):.3g}-{max(vals):.3g})")
        lines.append(f"{k:<20}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.p99tail", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", default="direct,nginx,ngate")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--slice", type=float, default=0.5, help="seconds per turn (httplat)")
    ap.add_argument("--warmup", type=int, default=20, help="requests left out per turn")
    ap.add_argument("--timer", default="uvloop", help="httplat --timer (uvloop, timerfd)")
    ap.add_argument("--env", action="append", default=[], help="PROXY:NAME=VALUE: an environment variable for one "
                    "ngate proxy (e.g. ngate2:BENCH_GC_DEFAULT=1 with --proxies nginx,ngate,ngate2)")
    ap.add_argument("--realtime", action="store_true",
                    help="proxies, backend and client under SCHED_FIFO (procs.set_realtime)")
    ap.add_argument("--keep", help="copy every run's request trace into this directory")
    ap.add_argument("--json", help="write every run's figures here")
    args = ap.parse_args(argv)
    env = {}
    for e in args.env:
        name, setting = e.split(":", 1)
        env.setdefault(name, dict([setting.split("=", 1)]))[setting.split("=", 1)[0]] = \
            setting.split("=", 1)[1]
    args.env = env
    plan = procs.pin_plan()
    if plan:
        os.sched_setaffinity(0, {plan[1]})
    registry = procs.Procs()
    h = _H(registry, plan)
    names = args.proxies.split(",")
    results = {n: [] for n in names}
    try:
        work = registry.tempdir("bench-p99tail-")
        http_port, ws_port = start_backends(h)
        confs = {}
        for name in names:
            if name != "direct":
                prefix = registry.tempdir(f"bench-p99tail-{name}-")
                os.makedirs(os.path.join(prefix, "logs"))
                port = procs.free_port()
                confs[name] = (prefix, conf.write_proxy(prefix, port, http_port, ws_port), port)
        for i in range(args.runs):
            for name, r in one_round(h, names, confs, http_port, h.backend_pids, args,
                                     work).items():
                results[name].append(r)
                print(f"run {i + 1} {name:<8} p99 {r['p99']:.3f} ms (from submitted "
                      f"{r['sub_p99']:.3f}), worker gc {r['worker_gc0']}/{r['worker_gc1']}/"
                      f"{r['worker_gc2']}, proxy waited {r['proxy_wait_ms']:.0f} ms",
                      file=sys.stderr, flush=True)
    finally:
        registry.close()
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
