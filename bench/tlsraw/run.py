"""Session 7 (tlsraw) measurements, bench/PROFILE.md: minimal TLS servers (servers.py) and
ngate trees / nginx side by side, alternated runs, medians.

  python bench/tlsraw/run.py cpu MODE,MODE,... [RUNS] [extra server args]
  python bench/tlsraw/run.py idle MODE,MODE,... [RUNS]

MODE: uvloop | membio | raw (servers.py; "+fork": served by a child forked from a parent that
loaded the context and some heap first, as ngate's master; "+mmap": mallopt(M_MMAP_THRESHOLD,
128 KiB) in the server; "+ra": SSL read-ahead), nginx, or ngate=TREE (a checkout's ngate,
master_process off), http:ngate=TREE / http:nginx (the same server without TLS: plain HTTP
keep-alive, to tell TLS's share from the request path's). One config: TLSv1.3, ECDSA P-256, `return 200 "ok\n"`.
cpu: wrk -t1 -c50 keep-alive, 1 s warm-up then 5 s; the server's utime+stime from /proc per
request (us); server pinned to CPU 0, wrk to CPU 1 (TLSRAW_PIN=0: unpinned). idle: 20 connections opened and closed, then 1500 connections each served one
request and kept open; (VmRSS after - before) / 1500 in KB.
Certificates and prefixes go to $TLSRAW_DIR (default /tmp/tlsraw-bench)."""
import os, re, signal, socket, ssl, statistics, subprocess, sys, time

D = os.environ.get("TLSRAW_DIR", "/tmp/tlsraw-bench")
HERE = os.path.dirname(os.path.abspath(__file__))
what = sys.argv[1]
modes = sys.argv[2].split(",")
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
extra = sys.argv[4:]
N = 1500
# as in bench: the server on the first CPU, the load on the second (TLSRAW_PIN=0: unpinned)
PIN = ["taskset", "-c", "0"] if os.environ.get("TLSRAW_PIN", "1") != "0" else []
LOAD_PIN = ["taskset", "-c", "1"] if PIN else []


def _ssl(mode):
    if mode.startswith("http:"):
        return ""
    return f"ssl backlog=4096; ssl_certificate {D}/cert.pem; ssl_certificate_key {D}/key.pem; ssl_protocols TLSv1.3"


def start(mode, port):
    tls = _ssl(mode)
    mode = mode.split(":", 1)[-1]
    if mode.startswith("ngate="):
        tree = mode.split("=", 1)[1]
        pre = D + "/ngp-" + str(port)
        os.makedirs(pre + "/logs", exist_ok=True)
        open(pre + "/nginx.conf", "w").write(f"""daemon off; master_process off; worker_processes 1;
error_log {pre}/logs/error.log; pid {pre}/nginx.pid;
events {{ worker_connections 4096; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port} {tls}; keepalive_requests 100000;
location / {{ return 200 "ok\\n"; }} }} }}""")
        env = dict(os.environ, PYTHONPATH=tree)
        p = subprocess.Popen(PIN + [sys.executable, "-m", "ngate", "-p", pre + "/", "-c", pre + "/nginx.conf"],
                             env=env, cwd=tree)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        return p, p.pid
    if mode == "nginx":
        os.makedirs(D + "/ng/logs", exist_ok=True)
        open(D + "/ng/nginx.conf", "w").write(f"""daemon off; master_process off; worker_processes 1;
error_log {D}/ng/logs/error.log; pid {D}/ng/nginx.pid;
events {{ worker_connections 4096; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port} {tls}; keepalive_requests 100000;
location / {{ return 200 "ok\\n"; }} }} }}""")
        p = subprocess.Popen(PIN + ["/usr/sbin/nginx", "-p", D + "/ng", "-c", D + "/ng/nginx.conf"])
        time.sleep(0.5)
        return p, p.pid
    args = mode.split("+")
    p = subprocess.Popen(PIN + [sys.executable, HERE + "/servers.py", args[0], str(port)] + args[1:] + extra,
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    return p, int(line.split()[1])


def cpu(pid, part=None):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    if part is not None:            # 0: utime, 1: stime
        return int(f[11 + part]) / os.sysconf("SC_CLK_TCK")
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])


def client_ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def one(ctx, port, req=True):
    s = socket.create_connection(("127.0.0.1", port))
    t = ctx.wrap_socket(s)
    if req:
        t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while not got.endswith(b"ok\n"):
            got += t.recv(4096)
    return t


def run_cpu(mode, port):
    url = f"{'http' if mode.startswith('http:') else 'https'}://127.0.0.1:{port}/"
    p, pid = start(mode, port)
    try:
        subprocess.run(LOAD_PIN + ["wrk", "-t1", "-c50", "-d1s", url], capture_output=True)
        c0, s0 = cpu(pid), cpu(pid, 1)
        out = subprocess.run(LOAD_PIN + ["wrk", "-t1", "-c50", "-d5s", url],
                             capture_output=True, text=True).stdout
        c1, s1 = cpu(pid), cpu(pid, 1)
        n = int(re.search(r"(\d+) requests in", out).group(1))
        return (c1 - c0) / n * 1e6, n / 5, (s1 - s0) / n * 1e6
    finally:
        os.kill(pid, 9)
        p.kill(); p.wait()


def run_idle(mode, port):
    p, pid = start(mode, port)
    ctx = client_ctx()
    try:
        warm = [one(ctx, port) for _ in range(20)]
        for t in warm:
            t.close()
        time.sleep(0.3)
        r0 = rss(pid)
        conns = [one(ctx, port) for _ in range(N)]
        time.sleep(0.5)
        r1 = rss(pid)
        for t in conns:
            t.close()
        return (r1 - r0) * 1024 / N / 1000, 0
    finally:
        os.kill(pid, 9)
        p.kill(); p.wait()


os.makedirs(D, exist_ok=True)
if not os.path.exists(D + "/cert.pem"):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", D + "/key.pem", "-out",
                    D + "/cert.pem", "-days", "30", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
res = {m: [] for m in modes}
port = 18443
for r in range(runs):
    for m in modes:
        port += 1
        res[m].append((run_cpu if what == "cpu" else run_idle)(m, port))
print(open("/proc/loadavg").read().strip())
for m in modes:
    vals = [v[0] for v in res[m]]
    print(f"{m:24s} median {statistics.median(vals):7.2f}  runs " +
          " ".join(f"{v:.2f}" for v in vals) +
          ("  req/s " + " ".join(f"{v[1]:.0f}" for v in res[m]) +
           f"  stime us median {statistics.median(v[2] for v in res[m]):.2f}"
           if what == "cpu" else ""))
