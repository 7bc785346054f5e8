"""Log every cyclic-GC collection of a process (and of the processes it forks) to a file.

    python -m bench.gctrace OUT -- -p PREFIX -c CONF -g "daemon off;"   # ngate's argv

runs ngate (`ngate.cli.main`) with a `gc.callbacks` hook installed first, so the master and the
workers it forks append one line per collection to OUT: ``pid generation start stop collected``
(start/stop = time.monotonic(), the clock bench/httplat.py stamps requests with: CLOCK_MONOTONIC
is one clock for every process). bench/p99tail.py matches them with slow requests.
`install(path)` is the hook alone (bench/httplat.py --gc-trace uses it on the load client).
BENCH_TRACE_TICKS=1 logs the coarse-deadline ticks as well (generation -1).
BENCH_GC_DEFAULT=1 in the environment makes ngate's gc.freeze() and gc.set_threshold() no-ops
(the experiment of CPython's defaults). Bench-only: ngate itself has no such hook.
"""
import gc
import os
import sys
import time


def install(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    began = [0.0]
    clock, write, getpid = time.monotonic, os.write, os.getpid

    def hook(phase, info):
        if phase == "start":
            began[0] = clock()
            return
        stop = clock()
        write(fd, (f"{getpid()} {info['generation']} {began[0]:.6f} {stop:.6f} "
                   f"{info['collected']}\n").encode())

    gc.callbacks.append(hook)
    return fd


def trace_ticks(path):
    """Log the worker's coarse-deadline ticks (server/clock.py Deadlines._tick) the same way,
    with generation -1 and the number of watched objects."""
    from ngate.server import clock
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    tick, now = clock.Deadlines._tick, time.monotonic

    def traced(self):
        start, n = now(), len(self.watched)
        tick(self)
        os.write(fd, f"{os.getpid()} -1 {start:.6f} {now():.6f} {n}\n".encode())

    clock.Deadlines._tick = traced


def read(path):
    """[(pid, generation, start, stop, collected)] from an OUT file (missing: [])."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                pid, gen, start, stop, collected = line.split()
                out.append((int(pid), int(gen), float(start), float(stop), int(collected)))
    except FileNotFoundError:
        pass
    return out


def main():
    argv = sys.argv[1:]
    if len(argv) < 2 or argv[1] != "--":
        sys.exit(__doc__)
    install(argv[0])
    if os.environ.get("BENCH_TRACE_TICKS"):
        trace_ticks(argv[0])
    if os.environ.get("BENCH_GC_DEFAULT"):     # experiment: ngate with CPython's GC defaults
        gc.freeze = lambda: None
        gc.set_threshold = lambda *a: None
    from ngate.cli import main as ngate_main
    sys.exit(ngate_main(argv[2:]))


if __name__ == "__main__":
    main()
