"""Many concurrent proxied WebSockets in one worker (issue 3: 9,000), nginx and ngate side by side.

Usage: python -m bench.ws_many [--tunnels 9000] [--clients 3] [--proxies nginx,ngate]
                               [--access-log] [--ngate-ref HEAD|worktree] [--json FILE]

For each proxy, one config (`worker_processes 1; worker_rlimit_nofile 20000;`,
`worker_connections 20000`: with 19,000 nginx starts closing just-accepted connections,
"worker_connections are not enough, reusing connections", once fewer than 1/16 are free) in front of the bench.wsecho backend (one process per 8,000 tunnels),
`--clients` client processes (this module's `client` mode) each open their share of the tunnels
(every process is limited to 20,000 descriptors). Then: the worker's RSS with every tunnel idle,
one message echoed through every tunnel (each must come back), the RSS again. Printed: time to
open them all, worker RSS before/after and per tunnel, echoes that came back.
`--access-log` writes nginx's combined log for the tunnels (ngate keeps each line pre-rendered).

Client mode (`python -m bench.ws_many client --port P --tunnels N`): prints {"ready": N,
"seconds": S} once the N tunnels are open, then, for each "echo" line on stdin, sends one frame
on every tunnel and prints {"echoed": n}; stdin closed: prints {"closed_early": n} and exits.
"""
import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time

from . import procs, wsload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NGINX = "/usr/sbin/nginx"
PER_BACKEND = 8000

CONF = """\
worker_processes 1;
worker_rlimit_nofile 20000;
pid logs/nginx.pid;
error_log logs/error.log warn;
events {{ worker_connections 20000; }}
http {{
    {access_log}
    upstream ws_backend {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = / {{ return 200 "ok\\n"; }}
        location /ws {{
            proxy_pass http://ws_backend;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}
    }}
}}
"""


# ---------------------------------------------------------------- client mode

async def client(args):
    frame = wsload.masked_frame(32)
    t0 = time.monotonic()
    tunnels = await wsload.open_many(args.port, args.tunnels, frame)
    print(json.dumps({"ready": len(tunnels), "seconds": time.monotonic() - t0}), flush=True)
    loop = asyncio.get_running_loop()
    while (line := await loop.run_in_executor(None, sys.stdin.readline)).strip() == "echo":
        want = {id(t): t.count + 1 for t in tunnels}
        for t in tunnels:
            t.transport.write(frame)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(t.count < want[id(t)] for t in tunnels):
            await asyncio.sleep(0.05)
        print(json.dumps({"echoed": sum(t.count >= want[id(t)] for t in tunnels)}), flush=True)
    lost = sum(t.closed.done() for t in tunnels)
    for t in tunnels:
        t.transport.close()
    print(json.dumps({"closed_early": lost}), flush=True)


# ---------------------------------------------------------------- driver

def ngate_root(reg, ref):
    """ngate as of git `ref` (see bench.cli.export_ngate), or the working tree."""
    if ref == "worktree":
        return ROOT, "worktree"
    d = reg.tempdir("ws-many-ngate-")
    archive = subprocess.run(["git", "archive", ref, "ngate"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", d], input=archive, check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    return d, commit


def write_conf(prefix, port, backend_ports, access_log):
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in backend_ports)
    log = "access_log logs/access.log;" if access_log else "access_log off;"
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(CONF.format(access_log=log, servers=servers, port=port))
    return path


def worker_pid(master):
    kids = [p for p in procs.tree(master) if p != master]
    return kids[0] if len(kids) == 1 else master


def readline_json(p, what):
    """One JSON line from a client (a dead or silent client is an error naming `what`)."""
    line = p.stdout.readline()
    if not line:
        raise RuntimeError(f"client exited ({p.poll()}) before {what}")
    return json.loads(line)


def run_one(reg, name, args, root):
    prefix = reg.tempdir(f"ws-many-{name}-")
    os.makedirs(os.path.join(prefix, "logs"))
    os.chmod(os.path.join(prefix, "logs"), 0o777)
    n_backends = math.ceil(args.tunnels / PER_BACKEND)
    ports = [procs.free_port() for _ in range(n_backends)]
    for p in ports:
        b = reg.start([sys.executable, "-m", "bench.wsecho", str(p)], cwd=ROOT)
        procs.wait_port(p, proc=b)
    port = procs.free_port()
    conf_path = write_conf(prefix, port, ports, args.access_log)
    common = ["-p", prefix + "/", "-c", conf_path, "-g", "daemon off;"]
    argv = [NGINX, *common] if name == "nginx" else [sys.executable, "-m", "ngate", *common]
    proxy = reg.start(argv, cwd=root, stderr=subprocess.STDOUT,
                      stdout=open(os.path.join(prefix, "logs", "out.log"), "ab"))
    procs.wait_port(port, proc=proxy)
    time.sleep(1.0)
    worker = worker_pid(proxy.pid)
    before = procs.rss_kb([worker])
    shares = [args.tunnels // args.clients + (i < args.tunnels % args.clients)
              for i in range(args.clients)]
    t0 = time.monotonic()
    clients = [reg.start([sys.executable, "-m", "bench.ws_many", "client", "--port", str(port),
                          "--tunnels", str(n)], cwd=ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True) for n in shares]
    result = {"proxy": name, "tunnels": args.tunnels, "clients": args.clients,
              "access_log": args.access_log, "worker_rss_before_kb": before}
    try:
        ready = [readline_json(c, "its tunnels were open") for c in clients]
        result["open_seconds"] = time.monotonic() - t0
        result["opened"] = sum(r["ready"] for r in ready)
        time.sleep(2.0)
        result["worker_rss_idle_kb"] = idle = procs.rss_kb([worker])
        result["rss_per_tunnel_kb"] = (idle - before) / args.tunnels
        for c in clients:
            c.stdin.write("echo\n")
            c.stdin.flush()
        result["echoed"] = sum(readline_json(c, "the echo")["echoed"] for c in clients)
        result["worker_rss_after_echo_kb"] = procs.rss_kb([worker])
        for c in clients:
            c.stdin.close()
        result["closed_early"] = sum(readline_json(c, "the end")["closed_early"] for c in clients)
        if args.access_log:
            result["access_log_lines"] = wait_lines(os.path.join(prefix, "logs", "access.log"),
                                                    args.tunnels)
    except Exception as err:
        result["error"] = f"{err}; proxy error.log: {tail(prefix)}"
    finally:
        for c in clients:
            reg.stop(c)
        reg.stop(proxy)
    return result


def tail(prefix, n=3):
    try:
        with open(os.path.join(prefix, "logs", "error.log"), errors="replace") as f:
            return " | ".join(f.read().splitlines()[-n:])
    except OSError:
        return ""


def wait_lines(path, want, timeout=10.0):
    """Lines in the access log once it has `want` (one per closed tunnel) or stopped growing."""
    deadline = time.monotonic() + timeout
    n = -1
    while time.monotonic() < deadline:
        time.sleep(1.5)         # ngate writes its log buffer out once a second
        try:
            with open(path, "rb") as f:
                last, n = n, sum(1 for _ in f)
        except OSError:
            last, n = n, 0
        if n >= want or n == last:
            break
    return n


def show(r):
    if "error" in r:
        return f"{r['proxy']:6} FAILED: {r['error']}"
    return (f"{r['proxy']:6} {r['opened']:>6} tunnels open in {r['open_seconds']:6.2f} s, "
            f"echoed {r['echoed']}/{r['tunnels']}, worker RSS {r['worker_rss_before_kb'] / 1024:.1f}"
            f" -> {r['worker_rss_idle_kb'] / 1024:.1f} MiB idle ({r['rss_per_tunnel_kb']:.2f} KiB"
            f"/tunnel), {r['worker_rss_after_echo_kb'] / 1024:.1f} MiB after the echo"
            + (f", {r['access_log_lines']} log lines" if r["access_log"] else ""))


def drive(args):
    procs.raise_fd_limit()
    reg = procs.Procs()
    try:
        root, commit = ngate_root(reg, args.ngate_ref)
        results = []
        for name in args.proxies.split(","):
            r = run_one(reg, name, args, root)
            r["ngate"] = commit if name == "ngate" else None
            print(show(r), flush=True)
            results.append(r)
    finally:
        reg.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if any("error" in r or r["echoed"] != r["tunnels"] for r in results) else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="drive", choices=["drive", "client"])
    ap.add_argument("--tunnels", type=int, default=9000)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--port", type=int)
    ap.add_argument("--proxies", default="nginx,ngate")
    ap.add_argument("--access-log", action="store_true")
    ap.add_argument("--ngate-ref", default="HEAD")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.mode == "client":
        procs.raise_fd_limit()
        wsload.uvloop.run(client(args))
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
