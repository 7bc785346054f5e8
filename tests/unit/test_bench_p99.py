"""http_p99's method: httplat taking turns among ports with a warm-up per turn, the paired run
of the harness, the run-by-run ratios, GC logging and the tail analysis (bench/p99tail.py)."""
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from bench import cli, gctrace, p99tail, procs, report
from bench.loads import Figure

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"


class CountingServer:
    """A keep-alive HTTP server on a thread: answers every request head, counts them."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    with self.lock:
                        self.requests += 1
                    conn.sendall(RESPONSE)

    def close(self):
        self.sock.close()


def test_httplat_takes_turns_and_leaves_each_turns_warmup_out(tmp_path):
    a, b = CountingServer(), CountingServer()
    trace = tmp_path / "trace.json"
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.httplat", "--port", f"{a.port},{b.port}",
             "--rate", "200", "--conns", "2", "--duration", "0.5", "--slice", "0.1",
             "--warmup", "3", "--trace", str(trace)],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    finally:
        a.close()
        b.close()
    raw = json.loads(out.strip().splitlines()[-1])
    first, second = raw["targets"]
    assert a.requests == b.requests == 100          # 0.5 s at 200 req/s each
    assert first["ok"] == second["ok"] == 100
    assert first["measured"] == second["measured"] == 100 - 5 * 3   # 5 turns of 20, 3 left out
    assert raw["slice_s"] == pytest.approx(0.1)
    targets = json.loads(trace.read_text())["target"]
    assert targets == ([0] * 20 + [1] * 20) * 5     # turns of 20 requests, alternating
    for t in (first, second):
        assert 0 < t["p50"] <= t["p99"] <= t["max"]
        assert t["p99_submit"] <= t["p99"]          # submission is never before the due time


def test_paired_run_starts_every_proxy_and_gives_direct_the_first_run(monkeypatch):
    calls, stopped = [], []

    class FakeProxy:
        def __init__(self, h, name, prefix, conf_path, port, scenario=None, argv=None):
            if name == "broken":
                raise RuntimeError("no")
            self.name, self.proc = name, type("P", (), {"pid": os.getpid()})()

        def stop(self):
            stopped.append(self.name)

    class FakeHarness:
        load_cpu, backend_pids, realtime = None, [], False

        def use_for(self, scenario, name, first):
            return (f"/tmp/{name}", f"/tmp/{name}/nginx.conf", {"nginx": 1, "ngate": 2}.get(name, 3))

        def backends(self):
            return 9, 10

    def load(h, ports):
        calls.append(dict(ports))
        return {n: {"value": float(p)} for n, p in ports.items()}

    monkeypatch.setattr(cli, "Proxy", FakeProxy)
    args = type("A", (), {"proxies": ["nginx", "broken", "ngate"], "runs": 2,
                          "no_direct": False})()
    fig = Figure("lat", "p99", "ms", False, load, paired=True)
    runs = cli.run_paired(FakeHarness(), fig, args)
    assert calls == [{"direct": 9, "nginx": 1, "ngate": 2}, {"nginx": 1, "ngate": 2}]
    assert [r["value"] for r in runs["nginx"]] == [1.0, 1.0]
    assert [r["value"] for r in runs["direct"]] == [9.0]
    assert [r["error"] for r in runs["broken"]] == ["start: no", "start: no"]
    assert "cpu_pct" in runs["ngate"][0] and "cpu_pct" not in runs["direct"][0]
    assert sorted(stopped) == ["ngate", "ngate", "nginx", "nginx"]


def test_paired_figure_reports_ratios_run_by_run():
    fig = Figure("lat", "p99", "ms", False, None, 1.2, paired=True, side="p99_submit")
    results = {"lat": {"nginx": [{"value": 1.0, "p99_submit": 0.4},
                                 {"value": 2.0, "p99_submit": 0.5}],
                       "ngate": [{"value": 1.1, "p99_submit": 0.6}, {"value": None}]}}
    (row,) = report.summarize([fig], results, ["nginx", "ngate"])
    assert row["run_ratios"] == [pytest.approx(1.1), None]
    assert row["side_run_ratios"] == [pytest.approx(1.5), None]
    meta = {"runs": 2, "duration_s": 1.0, "pinning": None, "fd_limit": 1024,
            "loadavg_start": (0.5, 0.4, 0.3), "nginx": "nginx/1.22.1", "ngate_commit": "abc"}
    text = report.table([row], meta, ["nginx", "ngate"])
    assert "lat ngate/nginx run by run (paired: one load taking turns): 1.10x -" in text
    assert "lat p99_submit ngate/nginx run by run: 1.50x -" in text


def test_set_realtime_switches_a_process_and_back():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        changed = procs.set_realtime([p.pid])
        if os.geteuid() == 0:
            assert changed == 1
            assert os.sched_getscheduler(p.pid) == os.SCHED_FIFO
        else:                       # refused without root: nothing changed, nothing raised
            assert changed == 0
            assert os.sched_getscheduler(p.pid) == os.SCHED_OTHER
        procs.set_realtime([p.pid], on=False)
        assert os.sched_getscheduler(p.pid) == os.SCHED_OTHER
    finally:
        p.kill()
        p.wait()


def test_gctrace_logs_every_collection_of_the_process(tmp_path):
    log = tmp_path / "gc.log"
    code = ("import gc, sys; sys.path.insert(0, %r); from bench import gctrace; "
            "gctrace.install(%r); gc.collect(); gc.collect(0)" % (ROOT, str(log)))
    p = subprocess.run([sys.executable, "-c", code], timeout=30, check=True)
    events = gctrace.read(str(log))
    gens = "".join(str(e[1]) for e in events)
    assert "20" in gens                 # the two explicit collections, in order (shutdown adds)
    assert all(e[2] <= e[3] for e in events)
    assert gctrace.read(str(tmp_path / "missing")) == []
    assert p.returncode == 0


def test_p99tail_names_the_collection_under_the_slow_request():
    # 100 requests of 1 ms every 10 ms; the one at 0.5 s takes 20 ms during a worker collection
    due = [i * 0.01 for i in range(100)]
    fin = [d + (0.020 if i == 50 else 0.001) for i, d in enumerate(due)]
    trace = {"due": due, "submitted": due, "sent": due, "finished": fin, "target": [0] * 100}
    gcs = [(7, 2, 0.505, 0.515, 0), (7, 0, 0.9001, 0.9002, 0), (5, 0, 0.505, 0.51, 0)]
    out = p99tail.analyse(trace, 0, gcs, {7}, 5, per_turn=100, warmup=0)
    assert out["worker_gc2"] == 1 and out["worker_gc0"] == 1
    assert out["slow"] == 1 and out["slow_worker_gc_pct"] == 100.0
    assert out["slow_client_gc_pct"] == 100.0     # pid 5 (the client) collected then too
    assert out["p99.9"] == pytest.approx(20.0)
    assert out["worker_gc_max_ms"] == pytest.approx(10.0)


def test_timerfd_wakes_at_or_after_the_instant():
    import asyncio
    import time

    from bench.httplat import TimerFd

    async def main():
        timer = TimerFd(asyncio.get_running_loop())
        try:
            woke = []
            for step in (0.002, 0.0005, -0.001):   # a past instant wakes at once
                when = time.monotonic() + step
                await timer.sleep_until(when)
                woke.append(time.monotonic() >= when)
            return woke
        finally:
            timer.close()

    assert asyncio.run(main()) == [True, True, True]
