"""`python -m bench`: start backends, then each proxy in turn (A, B, A, B), drive loads, report.

Figures come in groups, one nginx.conf (a Scenario) each: main (bench/loads.py), workers
(bench/workers.py), tls, static, fastcgi. `--only` takes figure or group names, `--all` runs
every group. Order per figure: for each run, nginx then ngate, each started fresh from the
scenario's nginx.conf and stopped afterwards (so peak RSS belongs to that load alone); a direct
run against the backend is added once per main figure as the ceiling of the load+backend CPU.
"""
import argparse
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request

from . import (auth, conf, fastcgi, gzip, http2, limits, loads, procs, report, static_files, tls,
               workers)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NGINX = "/usr/sbin/nginx"
GROUPS = {"main": loads.FIGURES, "workers": workers.FIGURES, "tls": tls.FIGURES,
          "static": static_files.FIGURES, "fastcgi": fastcgi.FIGURES, "limits": limits.FIGURES,
          "auth": auth.FIGURES, "gzip": gzip.FIGURES, "http2": http2.FIGURES}
ALL_FIGURES = [f for figs in GROUPS.values() for f in figs]


class Harness:
    """What a load function needs: durations, CPUs, the process registry, helpers to run loads."""

    def __init__(self, args, registry, plan):
        self.duration, self.idle_conns = args.duration, args.idle_conns
        self.lat_rate, self.ws_procs = args.lat_rate, args.ws_procs
        self.lat_timer = args.lat_timer
        self.procs, self.root, self.plan = registry, ROOT, plan
        self.proxy_cpu, self.load_cpu = plan if plan else (None, None)
        self.ngate_root = ROOT  # where `python -m ngate` runs; see export_ngate
        self.base_root = None   # --base-ref: where the "base" proxy runs
        self._backends, self._confs = {}, {}
        self.backend_pids = []  # the backend nginx trees (start_backends), for set_realtime
        self.realtime = not args.no_realtime
        self.conf_texts = {}  # scenario name -> its nginx.conf, for the JSON record

    def backends(self, key="main", workers=1):
        """(http port, ws port) of the backend pair `key`, started on first use."""
        if key not in self._backends:
            self._backends[key] = start_backends(self, workers)
        return self._backends[key]

    def use(self, scenario):
        """Pin as the scenario wants; (prefix, conf path, port), written on first use."""
        if scenario.pinned or not self.plan:
            self.proxy_cpu, self.load_cpu = self.plan if self.plan else (None, None)
        else:  # every CPU for everyone: taskset undoes the harness's own narrowed affinity
            self.proxy_cpu = self.load_cpu = procs.all_cpus()
        if scenario.name not in self._confs:
            prefix = self.procs.tempdir(f"bench-{scenario.name}-")
            os.makedirs(os.path.join(prefix, "logs"))
            port = procs.free_port()
            path = scenario.write(self, prefix, port)
            with open(path) as f:
                self.conf_texts[scenario.name] = f.read()
            self._confs[scenario.name] = (prefix, path, port)
        return self._confs[scenario.name]

    def use_for(self, scenario, name, first):
        """(prefix, conf path, port) of proxy `name` in a paired figure: the first proxy's is
        `use`'s; the others get the same scenario written again under their own prefix with
        their own port (the one difference between the files), so all can run at once."""
        shared = self.use(scenario)
        if name == first:
            return shared
        key = f"{scenario.name}+{name}"
        if key not in self._confs:
            prefix = self.procs.tempdir(f"bench-{scenario.name}-{name}-")
            os.makedirs(os.path.join(prefix, "logs"))
            port = procs.free_port()
            self._confs[key] = (prefix, scenario.write(self, prefix, port), port)
        return self._confs[key]

    def python_load(self, module, *argv, seconds=None, realtime=False):
        return self.python_load_parallel(1, module, *argv, seconds=seconds,
                                         realtime=realtime)[0]

    def python_load_parallel(self, n, module, *argv, seconds=None, realtime=False):
        """Run `module` in n processes on the load CPU; each prints JSON last. `seconds`: how
        long the load runs (default: --duration); `realtime`: under SCHED_FIFO (chrt)."""
        rt = ["chrt", "-f", "1"] if realtime else []
        ps = [self.procs.start([*rt, sys.executable, "-m", module, *argv], cpu=self.load_cpu,
                               cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        try:
            outs = [p.communicate(timeout=(seconds or self.duration) + 60)[0] for p in ps]
        finally:
            for p in ps:
                self.procs.stop(p)
        if any(p.returncode for p in ps):
            raise RuntimeError(f"{module} failed (exit {[p.returncode for p in ps]})")
        return [json.loads(o.strip().splitlines()[-1]) for o in outs]


def proxy_argv(name, prefix, conf_path):
    common = ["-p", prefix + "/", "-c", conf_path, "-g", "daemon off;"]
    if name.startswith("nginx"):  # "nginx2" etc.: an A/A run to see the noise
        return [NGINX, *common]
    return [sys.executable, "-m", "ngate", *common]


class Proxy:
    """One proxy process tree, started from the shared nginx.conf, ready once `GET /` is 200."""

    def __init__(self, h, name, prefix, conf_path, port, scenario=loads.MAIN, argv=None):
        self.h, self.name, self.port, self.prefix = h, name, port, prefix
        self.scenario = scenario
        log = open(os.path.join(prefix, "logs", f"{name}.out"), "ab")
        root = h.base_root if name == "base" else h.ngate_root
        argv = argv or proxy_argv(name, prefix, conf_path)
        self.proc = h.procs.start(argv, cpu=h.proxy_cpu,
                                  cwd=root, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise

    def _wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        last = None
        scheme = "https" if self.scenario.tls else "http"
        url = f"{scheme}://127.0.0.1:{self.port}{self.scenario.ready_path}"
        ctx = ssl._create_unverified_context() if self.scenario.tls else None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
                    if r.status == 200:
                        return
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s ({last}): {self.log_tail()}")

    def log_tail(self, lines=2):
        """Last lines of the proxy's stdout/stderr and error.log, for the failure record."""
        out = []
        for name in (f"{self.name}.out", "error.log"):
            try:
                with open(os.path.join(self.prefix, "logs", name), errors="replace") as f:
                    out += [ln.strip() for ln in f.read().splitlines()[-lines:] if ln.strip()]
            except OSError:
                pass
        return " | ".join(out)

    def stop(self):
        self.h.procs.stop(self.proc)


def export_ngate(h, ref):
    """Copy ngate/ as of git `ref` to a temp dir (read-only on git) and run ngate from there,
    so a benchmark measures one commit, not a working tree others are editing."""
    d = h.procs.tempdir("bench-ngate-")
    archive = subprocess.run(["git", "archive", ref, "ngate"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", d], input=archive, check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    h.ngate_root = d
    return commit


def export_base(h, ref):
    """`--base-ref`: ngate/ as of `ref` for the "base" proxy (export_ngate's copy)."""
    keep = h.ngate_root
    commit = export_ngate(h, ref)
    h.base_root, h.ngate_root = h.ngate_root, keep
    return commit


def start_backends(h, workers=1):
    """Backend nginx (`workers` workers) and the WebSocket echo server, on the load CPU(s)."""
    prefix = h.procs.tempdir("bench-backend-")
    http_port, ws_port = procs.free_port(), procs.free_port()
    path = conf.write_backend(prefix, http_port, workers)
    p = h.procs.start([NGINX, "-p", prefix + "/", "-c", path, "-g", "daemon off;"],
                      cpu=h.load_cpu, stderr=subprocess.DEVNULL)
    procs.wait_port(http_port, proc=p)
    h.backend_pids += procs.tree(p.pid)
    p = h.procs.start([sys.executable, "-m", "bench.wsecho", str(ws_port)], cpu=h.load_cpu, cwd=ROOT)
    procs.wait_port(ws_port, proc=p)
    return http_port, ws_port


def measure(h, fig, port, pid):
    """One run of one figure; errors become a record, not an abort."""
    try:
        if pid is None:
            return fig.fn(h, port, None)
        with procs.Monitor(pid, h.load_cpu) as mon:
            out = fig.fn(h, port, pid)
        return {**out, "peak_rss_kb": mon.peak_kb, "cpu_pct": mon.cpu_pct,
                "process_cpu_pct": mon.process_cpu_pct, "load_cpu_pct": mon.load_cpu_pct}
    except Exception as e:  # a failing proxy is a result: record it and go on
        return {"value": None, "error": f"{type(e).__name__}: {e}"}


def run_paired(h, fig, args):
    """A paired figure (fig.paired): every run starts all proxies at once and one load takes
    turns among them (`fig.fn(h, {name: port})` -> {name: result}), so they share the machine's
    noise; the backend is a turn too ("direct") in the first run. CPU% is over the whole load
    (all turns): about 1/targets of the proxy's CPU% during its own turns. Unless
    --no-realtime, the proxies, the backend and the load client run under SCHED_FIFO during
    the load (procs.set_realtime): other processes on the machine no longer delay their
    wake-ups, which is most of a fixed-rate latency figure's spread on a shared machine."""
    scenario = fig.scenario or loads.MAIN
    runs = {name: [] for name in args.proxies}
    try:
        confs = {n: h.use_for(scenario, n, args.proxies[0]) for n in args.proxies}
    except Exception as e:
        print(f"  {fig.name}: setup failed: {e}", file=sys.stderr, flush=True)
        return {name: [{"value": None, "error": f"setup: {type(e).__name__}: {e}"}]
                for name in args.proxies}
    for i in range(args.runs):
        started = {}
        for name in args.proxies:
            prefix, conf_path, port = confs[name]
            try:
                started[name] = Proxy(h, name, prefix, conf_path, port, scenario)
            except Exception as e:
                runs[name].append({"value": None, "error": f"start: {e}"})
        try:
            out = _paired_load(h, fig, args, {n: confs[n][2] for n in started}, started, i == 0)
        finally:
            for proxy in started.values():
                proxy.stop()
        for name, r in out.items():
            runs.setdefault(name, []).append(r)
            print(f"  {fig.name:<20} run {i + 1}/{args.runs} {name:<6} "
                  + (f"{r['value']:.6g} {fig.unit}" if r["value"] is not None else r["error"][:150]),
                  file=sys.stderr, flush=True)
    return runs


def _paired_load(h, fig, args, ports, started, first):
    """One paired run of fig over `ports` (+ the backend's in the first run), with each
    started proxy's RSS/CPU monitored; {name: result}."""
    if first and fig.direct and not args.no_direct:
        ports = {"direct": h.backends()[0], **ports}
    if not ports:
        return {}
    rt = [p for proxy in started.values() for p in procs.tree(proxy.proc.pid)] + h.backend_pids
    with contextlib.ExitStack() as stack:
        mons = {n: stack.enter_context(procs.Monitor(p.proc.pid, h.load_cpu))
                for n, p in started.items()}
        if h.realtime:
            procs.set_realtime(rt)
            stack.callback(procs.set_realtime, h.backend_pids, False)
        try:
            out = fig.fn(h, ports)
        except Exception as e:  # a failing load is a result for every proxy in it
            out = {n: {"value": None, "error": f"{type(e).__name__}: {e}"} for n in ports}
    for n, mon in mons.items():
        out[n] = {**out[n], "peak_rss_kb": mon.peak_kb, "cpu_pct": mon.cpu_pct,
                  "process_cpu_pct": mon.process_cpu_pct, "load_cpu_pct": mon.load_cpu_pct}
    return out


def run_figure(h, fig, args):
    if fig.paired:
        return run_paired(h, fig, args)
    scenario = fig.scenario or loads.MAIN
    runs = {name: [] for name in args.proxies}
    try:
        proxy_prefix, conf_path, proxy_port = h.use(scenario)
    except Exception as e:  # e.g. php-fpm missing: this group fails, the others run
        print(f"  {fig.name}: setup failed: {e}", file=sys.stderr, flush=True)
        return {name: [{"value": None, "error": f"setup: {type(e).__name__}: {e}"}]
                for name in args.proxies}
    if fig.direct and not args.no_direct:
        http_port, ws_port = h.backends()
        runs["direct"] = [measure(h, fig, ws_port if fig.name.startswith("ws") else http_port, None)]
    for i in range(args.runs):
        for name in args.proxies:
            try:
                proxy = Proxy(h, name, proxy_prefix, conf_path, proxy_port, scenario)
            except Exception as e:
                runs[name].append({"value": None, "error": f"start: {e}"})
                continue
            try:
                runs[name].append(measure(h, fig, proxy_port, proxy.proc.pid))
            finally:
                proxy.stop()
            r = runs[name][-1]
            print(f"  {fig.name:<20} run {i + 1}/{args.runs} {name:<6} "
                  + (f"{r['value']:.6g} {fig.unit}" if r["value"] is not None else r["error"][:150]),
                  file=sys.stderr, flush=True)
    return runs


def select(only, everything):
    """Figures named by `only` (figure or group names, comma-separated), in suite order, plus
    the figures a derived one needs; `everything`: all groups; neither: the main group."""
    if everything:
        return list(ALL_FIGURES)
    if not only:
        return list(loads.FIGURES)
    wanted = set()
    for name in only.split(","):
        if name in GROUPS:
            wanted.update(f.name for f in GROUPS[name])
        else:
            wanted.add(name)
    unknown = wanted - {f.name for f in ALL_FIGURES}
    if unknown:
        raise ValueError(f"unknown figures: {', '.join(sorted(unknown))}")
    for f in ALL_FIGURES:
        if f.name in wanted and f.derived:
            wanted.update(f.derived)
    return [f for f in ALL_FIGURES if f.name in wanted]


def parse_args(argv=None):
    names = [f.name for f in ALL_FIGURES]
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated groups (" + ",".join(GROUPS)
                    + ") or figures: " + ",".join(names))
    ap.add_argument("--all", action="store_true", help="every group (default: main only)")
    ap.add_argument("--runs", type=int, default=3, help="runs per proxy, alternated (default 3)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per load (default 5)")
    ap.add_argument("--quick", action="store_true", help="smoke run: --runs 1 --duration 2")
    ap.add_argument("--idle-conns", type=int, default=5000, help="idle tunnels for ws_idle_rss")
    ap.add_argument("--lat-rate", type=int, default=1000, help="req/s for http_p99 (default 1000)")
    ap.add_argument("--lat-timer", choices=("timerfd", "uvloop"), default="timerfd",
                    help="how http_p99's client waits for each due time (bench/httplat.py; "
                    "uvloop: millisecond timers, the figure before session 9)")
    ap.add_argument("--ws-procs", type=int, default=1, help="client processes for ws loads")
    ap.add_argument("--proxies", default="nginx,ngate",
                    help="A,B (default nginx,ngate; nginx,nginx2 is an A/A noise check)")
    ap.add_argument("--ngate-ref", help="run ngate as of this git commit/ref (e.g. HEAD) "
                    "instead of the working tree")
    ap.add_argument("--base-ref", help="also run ngate as of this git ref, as proxy `base`, "
                    "alternated with the others (before/after in one run)")
    ap.add_argument("--no-direct", action="store_true", help="skip the no-proxy baseline runs")
    ap.add_argument("--no-realtime", action="store_true", help="paired figures (http_p99): "
                    "without SCHED_FIFO for the proxies, backend and client during the load")
    ap.add_argument("--no-chart", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.duration = 1, 2.0
    args.proxies = args.proxies.split(",")
    if args.base_ref and "base" not in args.proxies:
        args.proxies.insert(len(args.proxies) - 1, "base")
    try:
        args.figures = select(args.only, args.all)
    except ValueError as e:
        ap.error(str(e))
    return args


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    fd_limit = procs.raise_fd_limit()
    if fd_limit < 2 * args.idle_conns + 1000:
        args.idle_conns = (fd_limit - 1000) // 2
    plan = procs.pin_plan()
    if plan:
        os.sched_setaffinity(0, {plan[1]})
    registry = procs.Procs()
    h = Harness(args, registry, plan)
    meta = report.meta(args, plan, fd_limit, ROOT)
    results = {}
    try:
        if args.ngate_ref:
            meta["ngate_commit"] = export_ngate(h, args.ngate_ref)
        else:
            meta["ngate_commit"] += " + working tree"
        if args.base_ref:
            meta["base_commit"] = export_base(h, args.base_ref)
        print(report.describe(meta), file=sys.stderr, flush=True)
        meta["nginx_conf"] = h.conf_texts
        for fig in args.figures:
            if fig.fn is not None:
                results[fig.name] = run_figure(h, fig, args)
    except KeyboardInterrupt:
        print("interrupted: cleaning up, reporting what was measured", file=sys.stderr)
    finally:
        registry.close()
    meta["loadavg_end"] = os.getloadavg()
    summary = report.summarize(args.figures, results, args.proxies)
    print(report.table(summary, meta, args.proxies))
    if len(args.proxies) > 2:
        print(report.per_proxy(summary, args.proxies))
    paths = report.save(args.out, meta, summary, results, args.proxies, chart=not args.no_chart)
    for p in paths:
        print(f"wrote {p}")
