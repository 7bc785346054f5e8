"""The figures: one function per benchmark, each driving a load at a port and returning its value.

A benchmark function is called as ``fn(h, port, pid)``: `h` is the Harness (durations, CPUs,
process registry), `port` the proxy (or backend, for the direct baseline), `pid` the proxy's
master pid or None. It returns a dict with ``value`` plus whatever raw figures the load produced.
A paired figure's function (``Figure.paired``, http_p99) is called as ``fn(h, ports)`` with
every running proxy's port by name and returns ``{name: dict}``: one load takes turns among them.
"""
import json
import re
import sys
import time
from dataclasses import dataclass

from . import conf, procs
from .conf import STATIC_NAME

MIB = 1024 * 1024


@dataclass(frozen=True)
class Scenario:
    """One nginx.conf (and the backends it points at), written once, read by every proxy.

    ``write(h, prefix, port)`` writes ``prefix/nginx.conf`` for a proxy listening on `port`,
    starting any backend it needs through ``h.procs``, and returns the file's path.
    """
    name: str
    write: object
    ready_path: str = "/"         # answers 200 once the proxy serves
    tls: bool = False
    pinned: bool = True           # proxy on one CPU, loads + backends on the other


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    unit: str
    higher_is_better: bool
    fn: object                    # None for a figure derived from two others
    target: float | None = None   # on the ngate/nginx ratio
    direct: bool = True           # meaningful without a proxy (backend ceiling)
    scenario: Scenario | None = None   # None: MAIN (below)
    derived: tuple[str, str, str] | None = None  # (numerator, denominator, key): report.summarize
    paired: bool = False          # fn(h, {name: port}) -> {name: result}: cli.run_paired
    side: str | None = None       # a second key of the runs' records whose ratios are printed


def parse_wrk(out):
    """Requests/sec, latency percentiles (ms), and error counts from `wrk --latency` output."""
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    raw = {"requests_per_sec": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct, num, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        raw[f"p{pct}_ms"] = float(num) * units[unit]
    m = re.search(r"(\d+) requests in", out)
    raw["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    raw["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    raw["socket_errors"] = sum(map(int, m.groups())) if m else 0
    return raw


def wrk(h, port, path="/", close=False, conns=50, threads=1, scheme="http", headers=()):
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{h.duration:g}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    for header in headers:
        argv += ["-H", header]
    out = h.procs.run(argv + [f"{scheme}://127.0.0.1:{port}{path}"], cpu=h.load_cpu,
                      timeout=h.duration + 30)
    raw = check_wrk(parse_wrk(out))
    return {"value": raw["requests_per_sec"], "wrk_threads": threads, "wrk_conns": conns, **raw}


def check_wrk(raw, tolerance=0.01):
    """`raw` if wrk saw requests and at most `tolerance` of them failed, else RuntimeError."""
    bad = raw["non_2xx"] + raw["socket_errors"]
    if raw["requests"] == 0 or bad > tolerance * raw["requests"]:
        raise RuntimeError(f"wrk: {raw['requests']} requests, {raw['non_2xx']} non-2xx, "
                           f"{raw['socket_errors']} socket errors")
    return raw


def http_keepalive(h, port, pid):
    return wrk(h, port)


def http_keepalive_64k(h, port, pid):
    return wrk(h, port, path=f"/static/{STATIC_NAME}")


def http_close(h, port, pid):
    return wrk(h, port, close=True)


def http_p99(h, ports):
    """Paired (Figure.paired): one open-loop client takes 0.5 s turns among the proxies (and the
    backend, "direct"), each at lat_rate for --duration seconds in all, the first 20 requests
    of each turn left out (warm-up after the idle turns), the client waking at each due time
    on a timerfd (--lat-timer; uvloop's millisecond timers made requests up to ~1 ms late,
    most of the figure); the value is the p99 from the due time, `p99_submit` (from when the
    client got to the request) is in the record."""
    names = list(ports)
    raw = h.python_load("bench.httplat", "--port", ",".join(str(ports[n]) for n in names),
                        "--rate", str(h.lat_rate), "--conns", "20", "--duration",
                        f"{h.duration:g}", "--slice", "0.5", "--warmup", "20",
                        "--timer", h.lat_timer,
                        seconds=len(names) * h.duration, realtime=h.realtime)
    out = {}
    for name, r in zip(names, raw["targets"] if len(names) > 1 else [raw]):
        if r["ok"] < 0.99 * r["sent"]:
            out[name] = {"value": None, "error": f"httplat: {r}"}
        else:
            out[name] = {"value": r["p99"], **r}
    return out


def ws_load(h, port, mode, *args, procs_n=1):
    """Run `bench.wsload` in procs_n processes at once (connections split) and sum the results."""
    runs = h.python_load_parallel(procs_n, "bench.wsload", mode, "--port", str(port),
                                  "--duration", f"{h.duration:g}", *args)
    total = {k: sum(r[k] for r in runs) for k in runs[0]}
    total["seconds"] = max(r["seconds"] for r in runs)
    total["processes"] = procs_n
    return total


def ws_handshake(h, port, pid):
    raw = ws_load(h, port, "handshake", "--conns", str(50 // h.ws_procs), procs_n=h.ws_procs)
    if raw["errors"] > 0.01 * max(raw["handshakes"], 1):
        raise RuntimeError(f"wsload handshake: {raw}")
    return {"value": raw["handshakes"] / raw["seconds"], **raw}


def ws_throughput(h, port, pid):
    raw = ws_load(h, port, "echo", "--conns", "4", "--size", str(MIB))
    return {"value": raw["payload_bytes"] / MIB / raw["seconds"], "message_bytes": MIB, **raw}


def ws_roundtrip(h, port, pid):
    raw = ws_load(h, port, "echo", "--conns", str(50 // h.ws_procs), "--size", "64",
                  procs_n=h.ws_procs)
    return {"value": raw["messages"] / raw["seconds"], "message_bytes": 64, **raw}


def ws_idle_rss(h, port, pid):
    """(RSS of master+workers with N idle tunnels - RSS before) / N, in KiB."""
    pids = procs.tree(pid)
    time.sleep(0.5)
    before, pss_before = procs.rss_kb(pids), procs.pss_kb(pids)
    p = h.procs.start([sys.executable, "-m", "bench.wsload", "idle", "--port", str(port),
                       "--conns", str(h.idle_conns)], cpu=h.load_cpu, cwd=h.root,
                      stdin=procs.subprocess.PIPE, stdout=procs.subprocess.PIPE)
    try:
        ready = json.loads(p.stdout.readline() or "{}")
        if ready.get("ready") != h.idle_conns:
            raise RuntimeError(f"wsload idle: {ready}")
        time.sleep(1.0)
        pids = procs.tree(pid)
        after, pss_after = procs.rss_kb(pids), procs.pss_kb(pids)
        p.stdin.close()
        final = json.loads(p.stdout.readline() or "{}")
        p.wait(30)
    finally:
        h.procs.stop(p)
    if final.get("closed_early", 1):
        raise RuntimeError(f"tunnels closed while idle: {final}")
    n = h.idle_conns
    return {"value": (after - before) / n, "tunnels": n, "rss_before_kb": before,
            "rss_after_kb": after, "pss_per_tunnel_kb": (pss_after - pss_before) / n}


def write_main(h, prefix, port):
    http_port, ws_port = h.backends()
    return conf.write_proxy(prefix, port, http_port, ws_port)


MAIN = Scenario("main", write_main)

# targets: issue 16's ratios (issue 15's for HTTP/2), on the ngate/nginx ratio of medians
FIGURES = [
    Figure("http_keepalive", "HTTP keep-alive, small body", "req/s", True, http_keepalive, 0.7),
    Figure("http_keepalive_64k", "HTTP keep-alive, 64 KiB body", "req/s", True,
           http_keepalive_64k, 0.5),
    Figure("http_close", "HTTP without keep-alive", "req/s", True, http_close, 0.9),
    Figure("http_p99", "HTTP p99 latency at fixed rate", "ms", False, http_p99, 1.2, paired=True,
           side="p99_submit"),
    Figure("ws_handshake", "WebSocket handshakes", "/s", True, ws_handshake, 0.8),
    Figure("ws_throughput", "WS tunnel throughput, 1 MiB msgs", "MiB/s", True, ws_throughput, 1.2),
    Figure("ws_roundtrip", "WS round trips, 64 B x 50 conns", "/s", True, ws_roundtrip, 1.0),
    Figure("ws_idle_rss", "RSS per idle WS tunnel", "KiB", False, ws_idle_rss, 0.25,
           direct=False),
]
