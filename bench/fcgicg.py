"""Instructions per FastCGI request of a live ngate process, under callgrind: `python -m
bench.fcgicg [fastcgi|fastcgi-ka] [-n N] [--keep DIR]`.

bench/fastcgi.py's php-fpm and nginx.conf (`fastcgi`: a FastCGI connection per request,
`fastcgi-ka`: fastcgi_keep_conn); ngate runs as one process (`master_process off`) under
valgrind --tool=callgrind with instrumentation off; h2load (HTTP/1.1, 16 connections, on the
load CPU) sends 50 requests, then callgrind_control turns instrumentation on for N more and
off again: total Ir / N is what one request costs the worker in user space (Python,
uvloop/libuv, libc), start, config, warm-up and shutdown excluded. Repeatable to ~0.1% on the
shared machine (instruction counts do not move with its load). Kernel time is not in it:
`--strace` counts the worker's syscalls per request ((calls at --base + N) - (calls at
--base)) / N), `--cpu` reads its user and system CPU time for N requests (`--nginx`: the same
for Debian's nginx), `--cprofile OUT` profiles the N requests' Python (calls per request).
`--keep DIR` keeps the callgrind file (callgrind_annotate it).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

from . import fastcgi, procs

NGATE = [sys.executable, "-m", "ngate"]
# ngate with cProfile on at SIGRTMIN, off and dumped to argv[1] at SIGRTMIN+1
PROFILED = [sys.executable, "-c", """if 1:
    import cProfile, signal, sys
    out, sys.argv = sys.argv[1], ["ngate"] + sys.argv[2:]
    prof = cProfile.Profile()
    signal.signal(signal.SIGRTMIN, lambda *_: prof.enable())
    signal.signal(signal.SIGRTMIN + 1, lambda *_: (prof.disable(), prof.dump_stats(out)))
    from ngate.cli import main
    sys.exit(main())
"""]


# ngate with an opcode count per function (sys.settrace, f_trace_opcodes) on at SIGRTMIN, off
# and written to argv[1] at SIGRTMIN+1 (lines "count<TAB>function"; calls on "calls<TAB>...")
OPCODES = [sys.executable, "-c", """if 1:
    import collections, signal, sys
    out, sys.argv = sys.argv[1], ["ngate"] + sys.argv[2:]
    ops = collections.Counter()
    calls = collections.Counter()
    lines = collections.Counter()
    def local(frame, event, arg):
        if event == "opcode":
            code = frame.f_code
            ops[code.co_filename, code.co_firstlineno, code.co_name] += 1
            lines[code.co_filename, frame.f_lineno or 0] += 1
        return local
    def trace(frame, event, arg):
        frame.f_trace_opcodes = True
        code = frame.f_code
        calls[code.co_filename, code.co_firstlineno, code.co_name] += 1
        return local
    def start(*_):
        sys.settrace(trace)
    def stop(*_):
        sys.settrace(None)
        with open(out, "w") as f:
            for key, n in ops.items():
                f.write("%d\\t%d\\t%s:%d(%s)\\n" % (n, calls.get(key, 0), *key))
        with open(out + ".lines", "w") as f:
            for key, n in lines.items():
                f.write("%d\\t%s\\t%d\\n" % (n, *key))
    signal.signal(signal.SIGRTMIN, start)
    signal.signal(signal.SIGRTMIN + 1, stop)
    from ngate.cli import main
    sys.exit(main())
"""]


def _control(pid: int, *args: str) -> None:
    r = subprocess.run(["callgrind_control", *args, str(pid)], check=True,
                       capture_output=True, text=True, timeout=120)
    if os.environ.get("FCGICG_DEBUG"):
        print(r.stdout, r.stderr)


def _times(pid: int) -> tuple[float, ...]:
    """(user, system, run time, voluntary and involuntary context switches) of a process:
    seconds (user and system in clock ticks; run time in ns from schedstat) and counts."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    with open(f"/proc/{pid}/schedstat") as f:
        run = int(f.read().split()[0]) / 1e9
    switches = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.endswith("ctxt_switches:\t" + line.split("\t")[-1]):
                switches[line.split(":")[0]] = int(line.split()[-1])
    return (int(fields[11]) / procs.CLK_TCK, int(fields[12]) / procs.CLK_TCK, run,
            switches.get("voluntary_ctxt_switches", 0),
            switches.get("nonvoluntary_ctxt_switches", 0))


def _fpm_cpu(pid: int) -> float:
    """CPU seconds of php-fpm's master `pid` and its children (schedstat run times)."""
    pids = [pid] + [int(c) for c in subprocess.run(["pgrep", "-P", str(pid)],
                                                    capture_output=True, text=True).stdout.split()]
    total = 0.0
    for q in pids:
        try:
            with open(f"/proc/{q}/schedstat") as f:
                total += int(f.read().split()[0]) / 1e9
        except OSError:
            pass
    return total


def _run(kind: str, n: int, tool: list, window: bool = False, profile: str = "",
         cpu: list | None = None, nginx: bool = False, perf: str = "",
         opcodes: str = "") -> str:
    """One ngate process under `tool`, `n` requests (after 50 of warm-up); the tool's output."""
    reg = procs.Procs()
    try:
        load_cpu = procs.pin_plan()[1] if procs.pin_plan() else None
        prefix = reg.tempdir("ngate-fcgicg-")

        class H:
            pass
        h = H()
        h.procs, h.load_cpu = reg, load_cpu
        port = procs.free_port()
        conf = fastcgi.write_conf(h, prefix, port)
        ngate = PROFILED + [profile] if profile else NGATE
        if opcodes:
            ngate = OPCODES + [opcodes]
        if nginx:
            ngate = ["/usr/sbin/nginx"]
        p = reg.start(tool + ngate + ["-p", prefix, "-c", conf, "-g",
                                      "master_process off; daemon off;"],
                      cpu=procs.pin_plan()[0] if procs.pin_plan() else None,
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                      env=dict(os.environ, PYTHONHASHSEED="0"))
        procs.wait_port(port, timeout=120, proc=p)
        path = "/ka/ok.php" if kind == "fastcgi-ka" else "/ok.php"
        url = f"http://127.0.0.1:{port}{path}"
        load = ["h2load", "--h1", "-c", str(fastcgi.CONNS), "-m", "1"]
        if load_cpu is not None:
            load = ["taskset", "-c", str(load_cpu)] + load
        for count in (50, n):
            if count == n and window:
                _control(p.pid, "-i", "on")
            if count == n and (profile or opcodes):
                os.kill(p.pid, signal.SIGRTMIN)
            if count == n and cpu is not None:
                before = _times(p.pid)
                fpm_before = _fpm_cpu(reg.procs[0].pid)
                load_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            if count == n and perf:
                rec = subprocess.Popen(["perf", "record", "-q", "-g", "-o", perf, "-p",
                                        str(p.pid)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            r = subprocess.run(load + ["-n", str(count), url], capture_output=True,
                               text=True, timeout=600)
            if f"{count} succeeded" not in r.stdout:
                raise SystemExit("h2load: " + r.stdout[-800:])
        if cpu is not None:
            after = _times(p.pid)
            load_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[:] = [a - b for a, b in zip(after, before)] + [
                _fpm_cpu(reg.procs[0].pid) - fpm_before,
                load_after.ru_utime + load_after.ru_stime
                - load_before.ru_utime - load_before.ru_stime]
        if perf:
            rec.send_signal(signal.SIGINT)
            rec.wait(timeout=120)
        if window:
            _control(p.pid, "-i", "off")
        if profile or opcodes:
            os.kill(p.pid, signal.SIGRTMIN + 1)
            time.sleep(1)
        target = p.pid
        if tool[:1] == ["strace"]:      # its child is ngate
            target = int(subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True,
                                        text=True).stdout.split()[0])
        os.kill(target, signal.SIGQUIT)
        _, err = p.communicate(timeout=120)
        return err.decode("utf-8", "replace")
    finally:
        reg.close()


def callgrind(kind: str, n: int, keep: str | None = None, sim: bool = False) -> dict:
    """{event: count} of the window (Ir; with `sim` also callgrind's simulated caches and
    branch predictor: I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim)."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        extra = ["--cache-sim=yes", "--branch-sim=yes"] if sim else []
        _run(kind, n, ["valgrind", "--tool=callgrind", "--instr-atstart=no", *extra,
                       f"--callgrind-out-file={out}"], window=True)
        with open(out) as f:
            lines = f.read().splitlines()
        events = [line.split()[1:] for line in lines if line.startswith("events:")][-1]
        totals = [line.split()[1:] for line in lines if line.startswith("totals:")][-1]
        if keep:
            shutil.copy(out, os.path.join(keep, f"cg-{kind}-{n}.out"))
    return dict(zip(events, map(int, totals)))


def strace(kind: str, n: int) -> str:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "st")
        _run(kind, n, ["strace", "-f", "-c", "-o", out])
        with open(out) as f:
            return f.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", nargs="?", default="fastcgi", choices=("fastcgi", "fastcgi-ka"))
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--base", type=int, default=200)
    ap.add_argument("--keep", help="keep the second run's callgrind file in this directory")
    ap.add_argument("--strace", action="store_true", help="syscalls per request (strace -c)")
    ap.add_argument("--sim", action="store_true",
                    help="callgrind's cache and branch simulation too (misses per request)")
    ap.add_argument("--cprofile", metavar="OUT",
                    help="no valgrind: cProfile the n requests into OUT (calls per request)")
    ap.add_argument("--opcodes", metavar="OUT",
                    help="no valgrind: bytecodes per request by function (sys.settrace)")
    ap.add_argument("--lines", metavar="FILE",
                    help="with --opcodes: bytecodes per request by line of files whose path "
                         "contains FILE")
    ap.add_argument("--cpu", action="store_true",
                    help="no valgrind: the process's user and system CPU per request")
    ap.add_argument("--nginx", action="store_true", help="--cpu of Debian's nginx instead")
    ap.add_argument("--perf", metavar="OUT",
                    help="with --cpu: `perf record -g` of the process during the n requests")
    args = ap.parse_args()
    if args.cpu:
        cpu: list = []
        _run(args.kind, args.n, [], cpu=cpu, nginx=args.nginx, perf=args.perf or "")
        n = args.n
        print(f"{'nginx ' if args.nginx else ''}{args.kind}: user {cpu[0] / n * 1e6:.1f} us, system "
              f"{cpu[1] / n * 1e6:.1f} us, run {cpu[2] / n * 1e6:.2f} us per request (CPU time of "
              f"n = {n}); context switches per request {cpu[3] / n:.3f} voluntary, "
              f"{cpu[4] / n:.3f} involuntary; php-fpm {cpu[5] / n * 1e6:.1f} us, h2load "
              f"{cpu[6] / n * 1e6:.1f} us per request")
        return
    if args.opcodes:
        path = os.path.abspath(args.opcodes)
        _run(args.kind, args.n, [], opcodes=path)
        rows = []
        with open(path) as f:
            for line in f:
                ops, calls, name = line.rstrip("\n").split("\t")
                rows.append((int(ops), int(calls), name))
        rows.sort(reverse=True)
        print(f"bytecodes per request: {sum(r[0] for r in rows) / args.n:.0f}, Python calls "
              f"{sum(r[1] for r in rows) / args.n:.1f}; by function (self):")
        for ops, calls, name in rows[:45]:
            print(f"  {ops / args.n:7.1f} {calls / args.n:5.2f}  {name}")
        if args.lines:      # bytecodes per request by line of the files named
            import linecache
            print(f"by line of {args.lines}:")
            with open(path + ".lines") as f:
                for line in sorted(f, key=lambda ln: (ln.split("\t")[1], int(ln.split("\t")[2]))):
                    ops, name, lineno = line.rstrip("\n").split("\t")
                    if args.lines in name and int(ops) >= args.n:
                        text = linecache.getline(name, int(lineno)).rstrip()
                        print(f"  {int(ops) / args.n:6.1f} {name.rsplit('/', 1)[-1]}:{lineno}"
                              f" {text}")
        return
    if args.cprofile:
        import pstats
        _run(args.kind, args.n, [], profile=os.path.abspath(args.cprofile))
        st = pstats.Stats(args.cprofile)
        print(f"calls per request: {sum(v[1] for v in st.stats.values()) / args.n:.1f}")
        st.sort_stats("tottime").print_stats(40)
        return
    if args.strace:
        low = strace(args.kind, args.base)
        high = strace(args.kind, args.base + args.n)
        print("syscalls per request ((calls at base+n) - (calls at base)) / n:")
        counts = {}
        for text, sign in ((high, 1), (low, -1)):
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 5 and parts[-1].isidentifier() and parts[3].isdigit():
                    counts[parts[-1]] = counts.get(parts[-1], 0) + sign * int(parts[3])
        for name, c in sorted(counts.items(), key=lambda kv: -kv[1]):
            if abs(c) / args.n >= 0.01:
                print(f"  {name:20s} {c / args.n:6.2f}")
        return
    t0 = time.monotonic()
    counts = callgrind(args.kind, args.n, args.keep, args.sim)
    total = counts["Ir"]
    print(f"{args.kind}: {total / args.n:.0f} instructions per request "
          f"(Ir {total} for {args.n}; {time.monotonic() - t0:.0f} s)")
    if args.sim:
        print("  per request: " + ", ".join(f"{k} {v / args.n:.0f}" for k, v in counts.items()
                                            if k != "Ir"))


if __name__ == "__main__":
    main()
