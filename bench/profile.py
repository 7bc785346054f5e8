"""Profile one ngate worker under load with py-spy: `python -m bench.profile WHAT`.

WHAT is one of: hotpath, hotpath-static, hotpath-log, hotpath-fastcgi (bench/hotpath.py under
py-spy: the request path's own Python, no sockets: proxying, a 1 KiB static file, proxying with
an access log, FastCGI with fastcgi_keep_conn), return (HTTP keep-alive, `return 200 "ok\\n"`:
the downstream path alone, wrk -c50),
proxy (HTTP keep-alive proxying, wrk -c50 on `/` through `proxy_pass` to a backend nginx),
close (the same with `Connection: close`: a connection per request), static (a 1 KiB static
file, wrk -c50), https (HTTPS keep-alive, `return 200`),
ws (WebSocket handshakes: connect, upgrade, read the 101, close, 50 loops, through a proxied
location to bench/wsecho.py), tls (full TLS 1.3 handshakes, one request each), fastcgi and
fastcgi-ka (bench/fastcgi.py's php-fpm: a FastCGI connection per request, fastcgi_keep_conn).

ngate runs as in bench (`worker_processes 1`, the same nginx.conf as nginx would read); py-spy
samples its worker for --seconds while the load runs, and the folded stacks are summarised as the
top functions by self and by cumulative share of the samples (bench/PROFILE.md shows the output).
Needs py-spy (`pip install py-spy`) and, for proxy/ws, /usr/sbin/nginx. `--raw FILE` keeps the
folded stacks (for flamegraph.pl or speedscope).
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import conf as bconf
from . import fastcgi, static_files, tls

WS_CLIENT = "bench.wsload"
RETURN_CONF = """worker_processes 1;
error_log {prefix}/error.log error;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
# as in bench: the proxy on the first CPU, load and backends on the second (py-spy counts a
# runnable thread that the load preempted as busy: unpinned, syscalls that wake the load look
# far more expensive than they are)
PROXY_CPU = ["taskset", "-c", "0"]
LOAD_CPU = ["taskset", "-c", "1"]


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 10.0) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("port %d never opened" % port)


def _worker_pid(master: int) -> int:
    """The worker process under the master (the first child running ngate's worker)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        if pids:
            return pids[0]
        time.sleep(0.1)
    raise SystemExit("no worker under master %d" % master)


def _fastcgi_conf(tmp: str, prefix: str, port: int, procs: list) -> str:
    """bench/fastcgi.py's php-fpm (on the load CPU) and nginx.conf."""
    docroot = os.path.join(tmp, "html")
    os.makedirs(docroot)
    with open(os.path.join(docroot, "ok.php"), "w") as f:
        f.write('<?php echo "ok\\n";\n')
    fpm_port = _free_port()
    fpm_conf = os.path.join(tmp, "php-fpm.conf")
    with open(fpm_conf, "w") as f:
        f.write(fastcgi.FPM_CONF.format(dir=tmp, port=fpm_port, children=fastcgi.CHILDREN,
                                        user="root" if os.geteuid() == 0 else "nobody"))
    procs.append(subprocess.Popen(LOAD_CPU + [fastcgi.FPM_BIN, "-F", "-R", "-y", fpm_conf],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True))
    _wait_port(fpm_port)
    shutil.copy("/etc/nginx/fastcgi_params", prefix)
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(fastcgi.CONF.format(prefix=prefix, port=port, fpm_port=fpm_port, docroot=docroot))
    return path


def summarise(path: str, top: int = 25, under: str | None = None) -> str:
    """Top functions by self and cumulative share of the folded stacks in `path` (only the
    stacks through a frame whose name contains `under`, counted from that frame, if given)."""
    selfc, cum, total = collections.Counter(), collections.Counter(), 0
    for line in open(path):
        stack, _, cnt = line.rstrip().rpartition(" ")
        if not stack:
            continue
        if under is not None:
            at = stack.find(under)
            if at < 0:
                continue
            stack = stack[stack.rfind(";", 0, at) + 1:]
        n = int(cnt)
        frames = []
        for f in stack.split(";"):
            m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", f)
            if m:
                fn, file = m.groups()
                file = re.sub(r".*/(ngate|bench|uvloop|asyncio|ssl)/", r"\1/", file)
                file = re.sub(r".*/python3\.\d+/", "", file)
                f = "%s (%s)" % (fn, file)
            frames.append(f)
        total += n
        selfc[frames[-1]] += n
        for f in set(frames):
            cum[f] += n
    out = ["samples: %d" % total, "", "self %  function", "------  --------"]
    out += ["%5.1f%%  %s" % (c * 100 / total, f) for f, c in selfc.most_common(top)]
    out += ["", "cum %   function", "------  --------"]
    out += ["%5.1f%%  %s" % (c * 100 / total, f) for f, c in cum.most_common(top)]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["proxy", "close", "return", "static", "https", "ws", "tls",
                                     "fastcgi", "fastcgi-ka",
                                     "hotpath", "hotpath-static", "hotpath-log",
                                     "hotpath-fastcgi",
                                     "hotpath-return"])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    ap.add_argument("--raw", help="keep the folded stacks in this file")
    ap.add_argument("--perf", action="store_true",
                    help="also `perf record` the worker: CPU by shared object (kernel, python, "
                         "uvloop, libssl) and the top native symbols")
    ap.add_argument("--strace", action="store_true",
                    help="also count the worker's syscalls for 3 s (strace -c; per accepted "
                         "connection when it accepts)")
    args = ap.parse_args()
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy not found: pip install py-spy")
    if args.what.startswith("hotpath"):
        return _hotpath(args)
    tmp = tempfile.mkdtemp(prefix="ngate-profile-")
    os.chmod(tmp, 0o755)        # workers run as nobody: the docroot must be reachable
    procs = []
    try:
        port = _free_port()
        prefix = os.path.join(tmp, "proxy")
        os.makedirs(os.path.join(prefix, "logs"))
        if args.what in ("proxy", "close", "ws"):
            bprefix = os.path.join(tmp, "backend")
            os.makedirs(os.path.join(bprefix, "logs"))
            http_port, ws_port = _free_port(), _free_port()
            bpath = bconf.write_backend(bprefix, http_port)
            procs.append(subprocess.Popen(LOAD_CPU + ["/usr/sbin/nginx", "-p", bprefix, "-c", bpath,
                                           "-g", "daemon off;"], start_new_session=True))
            procs.append(subprocess.Popen(LOAD_CPU + [sys.executable, "-m", "bench.wsecho", str(ws_port)],
                                          start_new_session=True))
            path = bconf.write_proxy(prefix, port, http_port, ws_port)
            _wait_port(http_port)
        elif args.what == "static":
            path = static_files.write_conf(None, prefix, port)
        elif args.what.startswith("fastcgi"):
            path = _fastcgi_conf(tmp, prefix, port, procs)
        elif args.what == "return":
            path = os.path.join(prefix, "nginx.conf")
            with open(path, "w") as f:
                f.write(RETURN_CONF.format(prefix=prefix, port=port))
        else:
            path = tls.write_conf(None, prefix, port)
        master = subprocess.Popen(PROXY_CPU + [sys.executable, "-m", "ngate", "-p", prefix, "-c", path,
                                   "-g", "daemon off;"], start_new_session=True)
        procs.append(master)
        _wait_port(port)
        worker = _worker_pid(master.pid)
        # the load outlasts py-spy, then perf (3 s) and strace (3 s), which run after it
        d = str(int(args.seconds) + 2 + 4 * args.perf + 4 * args.strace)
        if args.what in ("proxy", "return"):
            load = ["wrk", "-t1", "-c50", "-d" + d, "http://127.0.0.1:%d/" % port]
        elif args.what == "close":
            load = ["wrk", "-t1", "-c50", "-d" + d, "-H", "Connection: close",
                    "http://127.0.0.1:%d/" % port]
        elif args.what == "static":
            load = ["wrk", "-t1", "-c50", "-d" + d, "http://127.0.0.1:%d/1k.txt" % port]
        elif args.what.startswith("fastcgi"):
            load = ["wrk", "-t1", "-c%d" % fastcgi.CONNS, "-d" + d, "http://127.0.0.1:%d/%s"
                    % (port, "ka/ok.php" if args.what == "fastcgi-ka" else "ok.php")]
        elif args.what == "https":
            load = ["wrk", "-t1", "-c50", "-d" + d, "https://127.0.0.1:%d/" % port]
        elif args.what == "ws":
            load = [sys.executable, "-m", WS_CLIENT, "handshake", "--port", str(port),
                    "--duration", d]
        else:
            load = [sys.executable, "-c", "import sys; from bench import tls; "
                    "tls.handshake_load(int(sys.argv[1]), float(sys.argv[2]))", str(port), d]
        lp = subprocess.Popen(LOAD_CPU + load, stdout=subprocess.DEVNULL, start_new_session=True)
        procs.append(lp)
        time.sleep(1.0)
        raw = args.raw or os.path.join(tmp, "stacks.txt")
        cmd = ["py-spy", "record", "-r", str(args.rate), "-d", str(int(args.seconds)), "-f",
               "raw", "-o", raw, "-p", str(worker)] + (["--native"] if args.native else [])
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if args.perf:
            data = os.path.join(tmp, "perf.data")
            subprocess.run(["perf", "record", "-q", "-o", data, "-p", str(worker), "--",
                            "sleep", "3"], check=True, stderr=subprocess.DEVNULL)
        if args.strace:
            st = subprocess.run(["timeout", "-s", "INT", "3", "strace", "-c", "-f", "-p",
                                 str(worker)], capture_output=True, text=True)
        lp.wait(timeout=30)
        print(summarise(raw, args.top))
        if args.strace:
            print("\nstrace -c (3 s):\n" + _per_accept(st.stderr))
        if args.perf:
            for sort in ("dso", "dso,sym"):
                rep = subprocess.run(["perf", "report", "-q", "-i", data, "--sort", sort,
                                      "--percent-limit", "1.5"], capture_output=True, text=True)
                print("\nperf, by %s:\n%s" % (sort, rep.stdout.rstrip()))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def _per_accept(table: str) -> str:
    """strace -c's table with a calls-per-accepted-connection column (when accept4 was seen)."""
    rows = [line.split() for line in table.splitlines()]
    accepts = next((int(r[3]) for r in rows if r and r[-1] == "accept4" and len(r) >= 5), 0)
    if not accepts:
        return table
    out = ["calls  per accept  syscall"]
    for r in rows:
        if len(r) >= 5 and r[3].isdigit() and r[-1] != "total":
            out.append("%7s  %8.2f  %s" % (r[3], int(r[3]) / accepts, r[-1]))
    return "\n".join(out)


def _hotpath(args) -> None:
    """bench/hotpath.py under py-spy: the request path's Python alone (no sockets, no loop)."""
    extra = {"hotpath": [], "hotpath-static": ["--static"], "hotpath-log": ["--access-log"],
             "hotpath-return": ["--return"], "hotpath-fastcgi": ["--fastcgi"]}
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw or os.path.join(tmp, "stacks.txt")
        subprocess.run(["py-spy", "record", "-r", "1000", "-f", "raw", "-o", raw, "--",
                        sys.executable, "-m", "bench.hotpath", "--rounds", "3"]
                       + extra[args.what], check=True, stderr=subprocess.DEVNULL)
        print(summarise(raw, args.top, under="drive (bench/hotpath.py"))


if __name__ == "__main__":
    main()
