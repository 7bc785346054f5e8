"""Child processes: start in their own process group, pin to a CPU, measure, always clean up.

Every process the harness starts is registered in one ``Procs`` registry; ``Procs.close()``
kills each process group (TERM, then KILL) and removes every temp dir, and the harness calls it
from a ``finally`` so Ctrl-C and failures leave nothing behind.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpus():
    """CPU numbers this harness may use."""
    return sorted(os.sched_getaffinity(0))


def pin_plan():
    """(proxy cpu, load cpu) or None when there are fewer than two CPUs."""
    avail = cpus()
    if len(avail) < 2:
        return None
    return avail[0], avail[1]


def all_cpus():
    """A taskset CPU list of every CPU this harness may use ("0,1"): unpinned, but not
    inheriting the harness's own affinity (which `main` narrows to the load CPU)."""
    return ",".join(map(str, cpus()))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def raise_fd_limit():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Procs:
    """Registry of started process groups and temp dirs."""

    def __init__(self):
        self.procs = []
        self.dirs = []

    def tempdir(self, prefix):
        d = tempfile.mkdtemp(prefix=prefix)
        os.chmod(d, 0o755)  # Debian nginx workers run as nobody
        self.dirs.append(d)
        return d

    def start(self, argv, cpu=None, **kw):
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu), *argv]
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, timeout=5.0):
        """TERM the process group, KILL it if it lingers, reap."""
        if p in self.procs:
            self.procs.remove(p)
        _killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        _killpg(p.pid, signal.SIGKILL)  # stragglers in the group (workers)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        for stream in (p.stdin, p.stdout, p.stderr):
            if stream:
                stream.close()

    def run(self, argv, cpu=None, timeout=60, **kw):
        return run(self, argv, cpu=cpu, timeout=timeout, **kw)

    def close(self):
        for p in list(self.procs):
            self.stop(p)
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.dirs.clear()


def _die_with_parent():
    """Child side: get SIGKILL if the harness dies without cleaning up (e.g. kill -9)."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _killpg(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tree(pid):
    """pid and all its descendants (via /proc/*/stat ppid)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def rss_kb(pids):
    """Sum of VmRSS over pids (a proxy's master + workers, see `tree`), in KiB."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_KB
        except OSError:
            pass
    return total


def pss_kb(pids):
    """Sum of Pss over the tree (shared pages split between master and workers), in KiB."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_seconds(pids):
    """utime + stime over the tree, in seconds."""
    return sum(cpu_seconds_each(pids).values())


def cpu_seconds_each(pids):
    """{pid: utime + stime in seconds} for the pids still alive."""
    out = {}
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[p] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            pass
    return out


def cpu_times(cpu):
    """(busy, total) jiffies of one CPU (a number) or of several ("0,1") from /proc/stat."""
    wanted = {f"cpu{c} " for c in str(cpu).split(",")}
    busy = total = 0
    with open("/proc/stat") as f:
        for line in f:
            if line[:line.find(" ") + 1] in wanted:
                v = [int(x) for x in line.split()[1:]]
                busy, total = busy + sum(v) - v[3] - v[4], total + sum(v)
    return busy, total


class Monitor:
    """Samples a process tree while a load runs: peak RSS and CPU used (a thread, 20 Hz),
    plus how busy the load CPU(s) were (if both are below 100%, the load is latency-bound).
    `process_cpu_pct` splits the CPU by process (master first, then workers by pid)."""

    def __init__(self, pid, load_cpu=None, interval=0.05):
        import threading
        self.pids, self.interval, self.load_cpu = tree(pid), interval, load_cpu
        self.load_cpu_pct = None
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, rss_kb(self.pids))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._cpu0, self._t0 = cpu_seconds_each(self.pids), time.monotonic()
        if self.load_cpu is not None:
            self._load0 = cpu_times(self.load_cpu)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, rss_kb(self.pids))
        wall = time.monotonic() - self._t0
        used = cpu_seconds_each(self.pids)
        self.process_cpu_pct = [100.0 * (used[p] - self._cpu0[p]) / wall if wall else 0.0
                                for p in sorted(used) if p in self._cpu0]
        self.cpu_pct = sum(self.process_cpu_pct)
        if self.load_cpu is not None:
            busy, total = (b - a for a, b in zip(self._load0, cpu_times(self.load_cpu)))
            self.load_cpu_pct = 100.0 * busy / total if total else None


def run(registry, argv, cpu=None, timeout=60, **kw):
    """Start argv as a registered process group, wait for it, return its stdout (text)."""
    p = registry.start(argv, cpu=cpu, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        registry.stop(p)
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {p.returncode}: {err.strip()[-500:]}")
    return out


def set_realtime(pids, on=True, priority=1):
    """SCHED_FIFO (`on`) or back to SCHED_OTHER for every thread of `pids`: a realtime task
    preempts the machine's ordinary ones at once, so a latency figure measures the processes
    under test rather than whatever else shares the CPUs (sched_rt_runtime_us still leaves
    the others 5%). Returns the threads changed; needs root (else 0 changed)."""
    policy, param = ((os.SCHED_FIFO, os.sched_param(priority)) if on
                     else (os.SCHED_OTHER, os.sched_param(0)))
    changed = 0
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setscheduler(tid, policy, param)
                changed += 1
            except OSError:
                pass
    return changed
