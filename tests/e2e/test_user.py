"""`user`: a master started as root runs its workers as the configured user (nginx's default
`nobody`, group `nogroup` here), logs keep working across USR1 and reload; without root the
directive is ignored with nginx's warning (tests/unit/test_directive_classes.py). `user name` without a group means the group of that
name, as nginx (Debian has no group `nobody`: `getgrnam("nobody") failed`)."""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.harness.client import request
from tests.harness.processes import REPO_ROOT, ProxyProcess, nginx_available, wait_for

CONF = """\
{user}
worker_processes 2;
error_log {prefix}/logs/error.log notice;
pid {prefix}/logs/nginx.pid;
events { }
http {
    access_log {prefix}/logs/access.log;
    server {
        listen 127.0.0.1:{port};
        location / { return 200 "{text}"; }
    }
}
"""



def ids(pid: int) -> tuple[int, int]:
    """(effective uid, effective gid) of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return int(fields["Uid"][1]), int(fields["Gid"][1])


def workers(master: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == master and stat[0] != "Z":
                found.add(int(entry))
    return found


def settled_workers(master: int, count: int, old: frozenset = frozenset()) -> set[int]:
    """`count` workers (none of `old`), each past its user switch: a worker just forked still
    has the master's ids for a moment (nginx's too), and between its setgid and setuid has
    (0, gid); one that never switches times out here."""
    def ready():
        found = workers(master)
        return (len(found) == count and not found & old
                and all(ids(w)[0] != 0 for w in found) and found)
    return wait_for(ready, f"{count} workers past their user switch")


@pytest.fixture
def open_dir():
    """A prefix the workers' user may reach (pytest's own temp dirs are 0700 root)."""
    base = tempfile.mkdtemp(prefix="ngate-user-", dir="/tmp")
    os.chmod(base, 0o755)
    yield Path(base)
    shutil.rmtree(base, ignore_errors=True)


def get(port: int) -> str:
    resp = request(port, "GET", "/")
    assert resp.status == 200
    return resp.body.decode()


def t_run(conf: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "ngate", "-t", "-c", str(conf)],
                          capture_output=True, text=True, timeout=60, env=env, cwd="/")


def need_root():
    """These tests need root (the switch needs it); under CI a missing root fails them."""
    if os.geteuid() != 0 and os.environ.get("CI") != "true":
        pytest.skip("needs root")


def test_workers_run_as_the_user_and_keep_logging(open_dir):
    need_root()
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    with ProxyProcess("ngate", CONF, open_dir / "ngate", user="user nobody nogroup;",
                      text="one") as proxy:
        prefix = proxy.prefix
        master = int(wait_for(lambda: (prefix / "logs/nginx.pid").read_text().strip()
                              if (prefix / "logs/nginx.pid").exists() else "", "the pid"))
        assert ids(master) == (0, 0)
        first = settled_workers(master, 2)
        assert {ids(w) for w in first} == {(nobody, nogroup)}
        assert get(proxy.port) == "one"
        access = prefix / "logs/access.log"
        wait_for(lambda: access.exists() and "GET / " in access.read_text(), "an access line")

        # USR1 after a rotation: the master makes the new files and gives them to nobody
        access.rename(prefix / "logs/access.log.1")
        (prefix / "logs/error.log").rename(prefix / "logs/error.log.1")
        os.kill(master, signal.SIGUSR1)
        wait_for(lambda: (prefix / "logs/error.log.1").read_text().count("reopening logs") == 3,
                 "master and both workers to reopen")
        wait_for(lambda: get(proxy.port) and access.exists()
                 and "GET / " in access.read_text(), "a line in the new access.log")
        assert access.stat().st_uid == nobody
        assert (prefix / "logs/error.log").stat().st_uid == nobody

        # reload: new workers, nobody again, logging to the same files
        (prefix / "nginx.conf").write_text(proxy.conf_text.replace('"one"', '"two"'))
        os.kill(master, signal.SIGHUP)
        wait_for(lambda: get(proxy.port) == "two", "the new config")
        second = settled_workers(master, 2, frozenset(first))
        assert {ids(w) for w in second} == {(nobody, nogroup)}
        before = access.read_text().count("GET / ")
        get(proxy.port)
        wait_for(lambda: access.read_text().count("GET / ") > before, "a line after the reload")
        log = (prefix / "logs/error.log").read_text()
        assert "[emerg]" not in log and "[alert]" not in log, log


def test_default_user_is_nobody(open_dir):
    need_root()
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    with ProxyProcess("ngate", CONF, open_dir / "ngate", user="", text="x") as proxy:
        assert get(proxy.port) == "x"
        master = int((proxy.prefix / "logs/nginx.pid").read_text())
        assert {ids(w) for w in settled_workers(master, 2)} == {(nobody, nogroup)}


@pytest.mark.parametrize("line,message", [
    ("user nobody;", 'getgrnam("nobody") failed'),            # no group named nobody here
    ("user no-such-user;", 'getpwnam("no-such-user") failed'),
    ("user nobody no-such-group;", 'getgrnam("no-such-group") failed'),
])
def test_unknown_user_or_group_fails_as_nginx(tmp_path, line, message):
    need_root()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"{line}\npid {tmp_path}/p.pid; error_log {tmp_path}/e.log;\nevents {{}}\n")
    r = t_run(conf)
    assert r.returncode == 1 and f"[emerg] {message} in {conf}:1" in r.stderr
    if nginx_available():
        n = subprocess.run(["/usr/sbin/nginx", "-t", "-p", f"{tmp_path}/", "-c", str(conf)],
                           capture_output=True, text=True, timeout=30)
        assert n.returncode == 1 and f"{message} in {conf}:1" in n.stderr
