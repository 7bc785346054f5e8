"""Summaries (medians and ratios), the stdout table, the JSON file and the PNG chart of ratios."""
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def meta(args, plan, fd_limit, root):
    def cmd(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, cwd=root, timeout=10)
            return (r.stdout + r.stderr).strip()
        except OSError as e:
            return str(e)
    return {
        "timestamp": time.strftime("%Y%m%d-%H%M%S"),
        "argv": sys.argv[1:], "runs": args.runs, "duration_s": args.duration,
        "idle_conns": args.idle_conns, "lat_rate": args.lat_rate, "ws_procs": args.ws_procs,
        "lat_timer": getattr(args, "lat_timer", None),
        "realtime": not getattr(args, "no_realtime", False),
        "pinning": ({"proxy_cpu": plan[0], "load_and_backends_cpu": plan[1]} if plan else None),
        "fd_limit": fd_limit, "cpus": os.cpu_count(), "kernel": platform.release(),
        "python": sys.version.split()[0], "nginx": cmd(["/usr/sbin/nginx", "-v"]),
        "wrk": (cmd(["wrk", "-v"]).splitlines() or [""])[0],
        "ngate_commit": cmd(["git", "rev-parse", "--short", "HEAD"]),
        "loadavg_start": os.getloadavg(),
    }


def describe(m):
    pin = (f"proxy pinned to CPU {m['pinning']['proxy_cpu']}, loads + backends to CPU "
           f"{m['pinning']['load_and_backends_cpu']} (taskset; workers group: unpinned)"
           if m["pinning"]
           else "NOT pinned (fewer than 2 CPUs)")
    load = " -> ".join(f"{m[k][0]:.2f}" for k in ("loadavg_start", "loadavg_end") if k in m)
    return (f"bench: {m['runs']} run(s) x {m['duration_s']:g}s per proxy, alternating; {pin}; "
            f"fd limit {m['fd_limit']}; {m['nginx']}; ngate {m['ngate_commit']}; "
            f"loadavg(1 min) {load}")


def median(runs):
    values = [r["value"] for r in runs if r.get("value") is not None]
    return statistics.median(values) if values else None


def summarize(figures, results, proxies):
    """One row per figure: medians per proxy (and direct), their ratio, the side figures.
    A derived figure's value per proxy is numerator / denominator of the rows' `key` field
    (the median value, or `_per_core`: median value / median proxy CPU in cores)."""
    out, by_name = [], {}
    for fig in figures:
        row = {"name": fig.name, "title": fig.title, "unit": fig.unit, "target": fig.target,
               "higher_is_better": fig.higher_is_better}
        if fig.derived:
            num, den, key = fig.derived
            num, den = by_name.get(num), by_name.get(den)
            if num is None or den is None:
                continue
            for name in proxies:
                row[name] = ratio(num.get(name + key), den.get(name + key))
        elif fig.name in results:
            _measured(row, results[fig.name], proxies, fig.higher_is_better)
            if getattr(fig, "paired", False):
                row["run_ratios"] = run_ratios(results[fig.name], proxies)
            if getattr(fig, "side", None):
                row["side"] = fig.side
                row["side_run_ratios"] = run_ratios(results[fig.name], proxies, fig.side)
        else:
            continue
        row["ratio"] = ratio(row.get(proxies[-1]), row.get(proxies[0]))
        row["meets_target"] = _meets(row["ratio"], fig)
        by_name[fig.name] = row
        out.append(row)
    return out


def _measured(row, runs, proxies, throughput):
    for name in [*proxies, "direct"]:
        rs = runs.get(name, [])
        row[name] = median(rs)
        row[f"{name}_peak_rss_mib"] = _med([r.get("peak_rss_kb") for r in rs], 1 / 1024)
        row[f"{name}_cpu_pct"] = _med([r.get("cpu_pct") for r in rs])
        if throughput and row[f"{name}_cpu_pct"]:
            row[f"{name}_per_core"] = ratio(row[name], row[f"{name}_cpu_pct"] / 100)
        row[f"{name}_process_cpu_pct"] = median_each([r.get("process_cpu_pct") for r in rs])
        row[f"{name}_load_cpu_pct"] = _med([r.get("load_cpu_pct") for r in rs])
        row[f"{name}_errors"] = [r["error"] for r in rs if r.get("error")]


def run_ratios(runs, proxies, key="value"):
    """Last proxy / first of the runs' `key`, run by run (a paired figure's runs measure both
    at once)."""
    a, b = runs.get(proxies[0], []), runs.get(proxies[-1], [])
    return [ratio(y.get(key), x.get(key)) for x, y in zip(a, b)]


def ratio(b, a):
    """b / a, or None when either is missing or a is zero."""
    return b / a if a and b is not None else None


def median_each(lists):
    """Position-wise medians of equally long lists (per-process CPU over runs), else None."""
    lists = [v for v in lists if v]
    if not lists or len({len(v) for v in lists}) != 1:
        return None
    return [statistics.median(col) for col in zip(*lists)]


def _med(values, scale=1.0):
    values = [v for v in values if v is not None]
    return statistics.median(values) * scale if values else None


def _meets(value, fig):
    if value is None or fig.target is None:
        return None
    return value >= fig.target if fig.higher_is_better else value <= fig.target


def _fmt(v, digits=4):
    if v is None:
        return "-"
    return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"


def per_proxy(summary, proxies):
    """Every proxy's ratio to the first and its CPU per request (us: CPU% x 10^4 / req/s, the
    figure a busy machine disturbs least), one line per figure (--base-ref, A/A runs)."""
    a = proxies[0]
    lines = ["figure             " + "  ".join(f"{p + '/' + a:>14} {'us/req ' + p:>14}"
                                                for p in proxies[1:])]
    for r in summary:
        cells = []
        for p in proxies[1:]:
            rt = ratio(r.get(p), r.get(a))
            cpu, v = r.get(f"{p}_cpu_pct"), r.get(p)
            per = cpu * 1e4 / v if r["higher_is_better"] and cpu and v else None
            cells.append(f"{'-' if rt is None else f'{rt:.2f}x':>14} {_fmt(per, 3):>14}")
        lines.append(f"{r['name']:<18} " + "  ".join(cells))
    cpu_a = "  (us/req " + a + ": " + ", ".join(
        f"{r['name']} {_fmt(r[f'{a}_cpu_pct'] * 1e4 / r[a], 3)}" for r in summary
        if r["higher_is_better"] and r.get(f"{a}_cpu_pct") and r.get(a)) + ")"
    return "\n".join(lines) + "\n" + cpu_a


def table(summary, m, proxies):
    a, b = proxies[0], proxies[-1]
    head = ["figure", "unit", a, b, f"{b}/{a}", "target", "direct",
            f"RSS MiB {a}", f"RSS MiB {b}", f"CPU% {a}", f"CPU% {b}", f"load CPU% {a}/{b}"]
    rows = [head]
    for r in summary:
        target = "-" if r["target"] is None else (">=" if r["higher_is_better"] else "<=") + f"{r['target']}x"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x" + (
            "" if r["meets_target"] is None else (" ok" if r["meets_target"] else " MISS"))
        rows.append([r["name"], r["unit"], _fmt(r.get(a)), _fmt(r.get(b)), ratio,
                     target, _fmt(r.get("direct")),
                     _fmt(r.get(f"{a}_peak_rss_mib"), 3), _fmt(r.get(f"{b}_peak_rss_mib"), 3),
                     _fmt(r.get(f"{a}_cpu_pct"), 3), _fmt(r.get(f"{b}_cpu_pct"), 3),
                     f'{_fmt(r.get(f"{a}_load_cpu_pct"), 3)}/{_fmt(r.get(f"{b}_load_cpu_pct"), 3)}'])
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = [describe(m), ""]
    for j, row in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    errors = [(r["name"], p, e) for r in summary for p in dict.fromkeys(proxies)
              for e in r.get(f"{p}_errors", [])]
    for name, p, e in errors:
        lines.append(f"! {name} {p}: {e[:300]}")
    for r in summary:
        if r.get("run_ratios"):
            lines.append(f"{r['name']} {b}/{a} run by run (paired: one load taking turns): "
                         + " ".join("-" if v is None else f"{v:.2f}x" for v in r["run_ratios"]))
        if r.get("side_run_ratios"):
            lines.append(f"{r['name']} {r['side']} {b}/{a} run by run: "
                         + " ".join("-" if v is None else f"{v:.2f}x"
                                    for v in r["side_run_ratios"]))
    for r in summary:
        splits = [(p, r.get(f"{p}_process_cpu_pct")) for p in dict.fromkeys(proxies)]
        if any(split and len(split) > 2 for _, split in splits):  # master + 2 workers or more
            lines.append(f"{r['name']} CPU% by process (master, workers): " + "; ".join(
                f"{p} " + "/".join(f"{v:.0f}" for v in split) for p, split in splits if split))
    lines.append(f"ratio = {b}/{a} of medians; RSS = peak of master+workers during the load; "
                 "CPU% = proxy CPU time / wall time (100 = one core saturated); "
                 "load CPU% = busy share of the load+backend CPU; "
                 "direct = load against the backend alone (ceiling of the load CPU). "
                 "http_keepalive_w1/_w2 run unpinned on all CPUs (wrk -t2 -c100, load CPU% = "
                 "whole machine); workers_scaling = w2/w1 req/s, workers_per_core = w2/w1 "
                 "req/s per proxy CPU-second, per proxy: on 2 shared cores they show whether a "
                 "2nd worker takes a share of the load and what it costs per request, not "
                 "scaling on dedicated cores (see bench/workers.py).")
    return "\n".join(lines)


def save(out_dir, m, summary, results, proxies, chart=True):
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, m["timestamp"])
    with open(base + ".json", "w") as f:
        json.dump({"meta": m, "summary": summary, "runs": results}, f, indent=2)
    paths = [base + ".json"]
    if chart and summary:
        png = plot(summary, base + ".png", proxies)
        if png:
            paths.append(png)
    return paths


def plot(summary, path, proxies):
    """Horizontal bars of the ratios on a log axis (1.0 = parity), targets as dashed ticks."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (pip install matplotlib): no chart", file=sys.stderr)
        return None
    rows = list(reversed(summary))  # first figure on top
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.32 * len(rows)))
    ax.set_xscale("log")
    for i, r in enumerate(rows):
        value = r["ratio"]
        color = ("tab:gray" if r["meets_target"] is None
                 else "tab:green" if r["meets_target"] else "tab:red")
        if value:  # a bar from parity (1.0) to the ratio
            ax.barh(i, value - 1.0, left=1.0, color=color, height=0.6)
        below = value is not None and value < 1.0
        ax.text(value or 1.0, i, "n/a" if value is None else f" {value:.2f}x ", va="center",
                ha="right" if below else "left", fontsize=7)
        if r["target"] is not None:
            ax.vlines(r["target"], i - 0.4, i + 0.4, colors="black", linestyles="dashed")
    ax.axvline(1.0, color="black", linewidth=0.7)
    values = [v for r in rows for v in (r["ratio"], r["target"]) if v]
    ax.set_xlim(min([0.25, *values]) / 1.6, max([4.0, *values]) * 1.6)
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16) if ax.get_xlim()[0] < t < ax.get_xlim()[1]]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_yticks(range(len(rows)), [f"{r['name']} ({'↑' if r['higher_is_better'] else '↓'})"
                                     for r in rows], fontsize=7)
    ax.set_xlabel(f"{proxies[-1]} / {proxies[0]} (median, log scale)", fontsize=8)
    ax.set_title(f"{proxies[-1]} vs {proxies[0]}: ↑ higher is better, ↓ lower is better; "
                 "dashed: target (green met, red missed)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", color="0.9")
    ax.set_axisbelow(True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
