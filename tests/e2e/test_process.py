"""The master/worker processes for real: `python -m ngate -p tmp -c tmp/nginx.conf`.

Pid file, bind errors, -s stop|quit|reload|reopen, reload with a broken config, worker respawn,
several workers, daemon mode, master_process off.
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.processes import REPO_ROOT, free_port, wait_for

CONF = """\
daemon {daemon};
master_process {master};
worker_processes {workers};
error_log logs/error.log notice;
pid logs/nginx.pid;
events {{}}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "{text}"; }}
    }}
}}
"""



def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


class Ngate:
    def __init__(self, prefix: Path, **params) -> None:
        self.prefix = prefix
        self.params = dict(daemon="off", master="on", workers=1, text="one", port=free_port())
        self.params.update(params)
        self.port = self.params["port"]
        self.pid_file = prefix / "logs" / "nginx.pid"
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        self.write_conf()
        self.proc: subprocess.Popen | None = None

    def write_conf(self, raw: str | None = None, **params) -> None:
        self.params.update(params)
        (self.prefix / "nginx.conf").write_text(raw or CONF.format(**self.params))

    def args(self, *extra) -> list[str]:
        return [sys.executable, "-m", "ngate", "-p", str(self.prefix), "-c", "nginx.conf", *extra]

    def env(self) -> dict:
        return dict(os.environ, PYTHONPATH=str(REPO_ROOT))

    def start(self) -> "Ngate":
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env(), text=True,
                                     start_new_session=True)
        return self

    def cli(self, *extra) -> subprocess.CompletedProcess:
        return subprocess.run(self.args(*extra), capture_output=True, text=True, env=self.env(),
                              timeout=30)

    def master_pid(self) -> int:
        return wait_for(self.read_pid, "the pid file")

    def read_pid(self) -> int | None:
        try:
            text = self.pid_file.read_text()
        except FileNotFoundError:
            return None
        return int(text) if text.strip() else None

    def get(self, path: str = "/") -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def error_log(self) -> str:
        path = self.prefix / "logs" / "error.log"
        return path.read_text() if path.exists() else ""

    def wait_exit(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        pid = self.read_pid()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if pid and alive(pid):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        if self.proc is not None:
            self.proc.stdout.close()
            self.proc.stderr.close()


@pytest.fixture
def ngate(tmp_path):
    started = []

    def make(**params) -> Ngate:
        n = Ngate(tmp_path / f"ngate-{len(started)}", **params)
        started.append(n)
        return n

    yield make
    for n in started:
        n.cleanup()


def serving(n: Ngate, expected: str) -> bool:
    try:
        return n.get() == (200, expected)
    except OSError:
        return False


# ---------------------------------------------------------------- start and stop

def test_bind_error_exits_without_pid_file(ngate):
    n = ngate()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", n.port))
        busy.listen()
        n.start()
        assert n.wait_exit() == 1
    err = n.proc.stderr.read()
    # as nginx: five tries, 500 ms apart, then "still could not bind()"
    assert err.count(f"ngate: [emerg] bind() to 127.0.0.1:{n.port} failed "
                     f"(98: Address already in use)") == 5
    assert err.endswith("ngate: [emerg] still could not bind()\n")
    assert not n.pid_file.exists()


def test_pid_file_written_after_bind_and_removed_on_stop(ngate):
    n = ngate().start()
    pid = n.master_pid()
    assert pid == n.proc.pid
    with socket.create_connection(("127.0.0.1", n.port), timeout=5):
        pass                        # the pid file exists only once the listener is bound
    assert wait_for(lambda: serving(n, "one"), "the first response")
    res = n.cli("-s", "stop")
    assert (res.returncode, res.stderr) == (0, "")
    assert n.wait_exit() == 0
    assert not n.pid_file.exists()
    log = n.error_log()
    assert f"signal 15 (SIGTERM) received from" in log and "exiting" in log
    assert n.proc.stdout.read() == ""


def test_quit_finishes_a_request_in_flight(ngate):
    n = ngate().start()
    n.master_pid()
    wait_for(lambda: serving(n, "one"), "the first response")
    client = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    with client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert n.cli("-s", "quit").returncode == 0
        wait_for(lambda: "gracefully shutting down" in n.error_log(), "the worker's notice")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", n.port), timeout=1).close()
        client.sendall(b"Connection: close\r\n\r\n")
        reply = b""
        while chunk := client.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"one")
    assert n.wait_exit() == 0
    assert not n.pid_file.exists()
    assert "signal 3 (SIGQUIT) received from" in n.error_log()


def test_quit_ends_keepalive_after_a_request_in_flight(ngate):
    """A draining worker answers the request in flight with Connection: close and closes
    (server/runtime.py stop_accepting marks its connections: http/respond.py KA_YOUNG)."""
    n = ngate().start()
    n.master_pid()
    wait_for(lambda: serving(n, "one"), "the first response")
    client = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    with client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = client.recv(4096)
        assert b"Connection: keep-alive" in first and first.endswith(b"one")
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert n.cli("-s", "quit").returncode == 0
        wait_for(lambda: "gracefully shutting down" in n.error_log(), "the worker's notice")
        client.sendall(b"\r\n")
        reply = b""
        while chunk := client.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"one")
    assert b"Connection: close" in reply
    assert n.wait_exit() == 0


# ---------------------------------------------------------------- reload

def test_reload_with_a_broken_config_keeps_the_old_one(ngate):
    n = ngate().start()
    pid = n.master_pid()
    wait_for(lambda: serving(n, "one"), "the first response")
    conf = n.prefix / "nginx.conf"
    n.write_conf(conf.read_text().replace("location /", "foo; location /"))
    res = n.cli("-s", "reload")            # like nginx: the signal process checks the config
    assert res.returncode == 1
    assert '[emerg] unknown directive "foo"' in res.stderr
    os.kill(pid, signal.SIGHUP)            # the master itself refuses it too
    wait_for(lambda: 'unknown directive "foo"' in n.error_log(), "the reload error in the log")
    assert "signal 1 (SIGHUP) received from" in n.error_log()
    assert n.get() == (200, "one")
    assert alive(pid)


def test_reload_changes_behaviour_and_retires_old_workers(ngate):
    n = ngate().start()
    pid = n.master_pid()
    wait_for(lambda: serving(n, "one"), "the first response")
    old_workers = children(pid)
    n.write_conf(text="two")
    assert n.cli("-s", "reload").returncode == 0
    wait_for(lambda: serving(n, "two"), "the new configuration")
    wait_for(lambda: not any(alive(w) for w in old_workers), "the old workers to exit")
    assert len(children(pid)) == 1 and children(pid).isdisjoint(old_workers)
    assert "reconfiguring" in n.error_log()


def test_reload_moves_to_a_new_port(ngate):
    n = ngate().start()
    pid = n.master_pid()
    wait_for(lambda: serving(n, "one"), "the first response")
    old_port = n.port
    n.write_conf(port=free_port(), text="moved")
    n.port = n.params["port"]
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: serving(n, "moved"), "the new port")

    def old_port_closed():
        try:
            socket.create_connection(("127.0.0.1", old_port), timeout=1).close()
        except OSError:
            return True
        return False
    wait_for(old_port_closed, "the dropped listener to close")


# Issue 10: a HUP with a config that fails in any way leaves the old one serving. Each entry:
# (main-level text, server-level text, the [emerg] the master logs); {prefix} is the prefix.
HOSTILE_RELOADS = [
    (f"worker_shutdown_timeout {'9' * 300}s;", "",
     '"worker_shutdown_timeout" directive invalid value in'),
    ("", "location /t { proxy_read_timeout 1y; }", '"proxy_read_timeout" directive invalid value'),
    ("", "client_max_body_size 99999999999999999999g;",
     '"client_max_body_size" directive invalid value'),
    ("", f"keepalive_requests {2 ** 63};", '"keepalive_requests" directive invalid number'),
    ("", "listen 127.0.0.1:99999999999999999999;", 'invalid port in "127.0.0.1:99999999999999999999"'),
    ("", "return \u0663\u0660\u0660;", 'invalid return code "\u0663\u0660\u0660"'),
    ("", "access_log {prefix}/nodir/a.log;",
     'open() "{prefix}/nodir/a.log" failed (2: No such file or directory)'),
    ("error_log {prefix}/nodir/e.log;", "",
     'open() "{prefix}/nodir/e.log" failed (2: No such file or directory)'),
    ("", "include {prefix}/logs;", 'pread() "{prefix}/logs" failed (21: Is a directory)'),
    ("", "location /i { if ($uri) { if ($args) { return 204; } } }",
     '"if" directive is not allowed here'),
    ("", "location /d {" * 3000 + "}" * 3000, '"location" directive is nested too deeply'),
]

# what used to kill the master or its workers and is valid for nginx: a reload must take it
HOSTILE_BUT_VALID = """\
daemon off;
worker_processes 1;
worker_shutdown_timeout 9223372036854775s;
error_log logs/error.log notice;
pid logs/nginx.pid;
include /dev/zero;
include /dev/stdin;
include /proc/self/mem;
events {{ worker_connections 9223372036854775807; }}
http {{
    access_log off;
    keepalive_timeout 9223372036854775s;
    client_header_timeout 9223372036854775807ms;
    client_max_body_size 8589934591g;
    proxy_read_timeout 9223372036854775s;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            expires 9223372036854775807s;
            add_header X-\u023f \u023f always;
            proxy_set_header X-\u023f \u023f;
            fastcgi_param X-\u023f \u023f;
            return 200 "two";
        }}
    }}
}}
"""


def test_reload_with_hostile_configs_keeps_serving(ngate):
    n = ngate().start()
    pid = n.master_pid()
    wait_for(lambda: serving(n, "one"), "the first response")
    workers = children(pid)
    good = CONF.format(**n.params)
    prefix = str(n.prefix)
    for main, server, emerg in HOSTILE_RELOADS:
        text = good.replace("pid logs/nginx.pid;", "pid logs/nginx.pid;\n" + main)
        text = text.replace("    server {\n", "    server {\n" + server + "\n")
        n.write_conf(raw=text.replace("{prefix}", prefix))
        expected = emerg.replace("{prefix}", prefix)
        before = n.error_log().count(expected)
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: n.error_log().count(expected) > before, f"[emerg] {expected}")
        assert f"[emerg] {pid}#{pid}: {expected}" in n.error_log()
        assert n.get() == (200, "one"), expected
        assert alive(pid) and children(pid) == workers, expected     # no new generation
    assert "Traceback" not in n.error_log()
    n.write_conf(raw=HOSTILE_BUT_VALID.format(**n.params))
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: serving(n, "two"), "the hostile but valid configuration")
    with socket.create_connection(("127.0.0.1", n.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert "X-\u023f: \u023f\r\n".encode() in reply        # the config's bytes, as nginx
    wait_for(lambda: not any(alive(w) for w in workers), "the old workers to exit")
    assert alive(pid) and len(children(pid)) == 1
    assert "[emerg]" not in n.error_log().split("reconfiguring")[-1]


def test_quit_right_after_start_or_reload_never_kills_a_worker(ngate):
    """A worker that gets QUIT before its handlers are set (just forked), or again while it
    exits (QUIT by the reload, then by the master's stop), must not die of the signal's
    default action: nginx's tests fail on the master's `exited on signal 3` alert."""
    for round_ in range(6):
        n = ngate(workers=4).start()
        pid = n.master_pid()
        if round_ % 2:
            wait_for(lambda: len(children(pid)) == 4, "four workers")
        for _ in range(3):
            os.kill(pid, signal.SIGHUP)        # a new generation, QUIT to the old one
        os.kill(pid, signal.SIGQUIT)           # QUIT to every worker, some just forked
        assert n.wait_exit() == 0
        log = n.error_log()
        assert "exited on signal" not in log, log
        assert "[alert]" not in log, log


# ---------------------------------------------------------------- workers

def test_two_workers(ngate):
    n = ngate(workers=2).start()
    pid = n.master_pid()
    workers = wait_for(lambda: len(children(pid)) == 2 and children(pid), "two workers")
    assert len(workers) == 2
    assert wait_for(lambda: serving(n, "one"), "a response")
    log = n.error_log()
    for w in workers:
        assert f"start worker process {w}" in log


def test_killed_worker_is_replaced(ngate):
    n = ngate(workers=2).start()
    pid = n.master_pid()
    first = wait_for(lambda: len(children(pid)) == 2 and children(pid), "two workers")
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: f"worker process {victim} exited on signal 9" in n.error_log(),
             "the alert")
    now = wait_for(lambda: len(children(pid)) == 2 and victim not in children(pid)
                   and children(pid), "a replacement worker")
    assert len(now - first) == 1
    assert wait_for(lambda: serving(n, "one"), "a response")


def test_worker_exits_when_the_master_dies(ngate):
    n = ngate().start()
    pid = n.master_pid()
    (worker,) = wait_for(lambda: children(pid), "the worker")
    os.kill(pid, signal.SIGKILL)
    n.proc.wait(10)
    wait_for(lambda: not alive(worker), "the orphaned worker to exit")


# ---------------------------------------------------------------- logs, daemon, single process

def test_reopen_logs(ngate):
    n = ngate().start()
    n.master_pid()
    wait_for(lambda: "start worker process" in n.error_log(), "the start notice")
    log = n.prefix / "logs" / "error.log"
    os.rename(log, n.prefix / "logs" / "error.log.1")
    assert n.cli("-s", "reopen").returncode == 0
    wait_for(log.exists, "a fresh error.log")
    assert n.cli("-s", "reload").returncode == 0
    wait_for(lambda: "reconfiguring" in log.read_text(), "the master to log into the new file")
    assert "reopening logs" in (n.prefix / "logs" / "error.log.1").read_text()


def test_daemon_detaches(ngate):
    n = ngate(daemon="on").start()
    assert n.wait_exit() == 0                 # the launching process returns at once
    pid = n.master_pid()
    assert pid != n.proc.pid and alive(pid)
    assert os.getsid(pid) not in (os.getsid(0), n.proc.pid)    # a session of its own
    wait_for(lambda: serving(n, "one"), "the daemon to serve")
    assert n.cli("-s", "stop").returncode == 0
    wait_for(lambda: not alive(pid), "the daemon to exit")
    assert not n.pid_file.exists()


def test_master_process_off_serves_in_one_process(ngate):
    n = ngate(master="off").start()
    pid = n.master_pid()
    assert pid == n.proc.pid
    wait_for(lambda: serving(n, "one"), "a response")
    assert children(pid) == set()
    assert n.cli("-s", "quit").returncode == 0
    assert n.wait_exit() == 0
    assert not n.pid_file.exists()
