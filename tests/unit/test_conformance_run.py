"""The runner's process handling with real perl processes (conformance/run.py)."""
import os
import subprocess
import time
from pathlib import Path

from conformance import run

# Forks a child that keeps the output open and records its pid, like ssl_password_file.t's
# FIFO writer: the file itself ends at once.
LEAVES_CHILD = r"""
print "1..2\nok 1 - parent\n";
my $pid = fork();
if ($pid == 0) { sleep 300; exit 0; }
open my $f, '>', "$ENV{TMPDIR}/../../child.pid" or die; print $f $pid; close $f;
print "ok 2 - forked\n";
"""

SLEEPS = 'print "1..3\\nok 1 - before\\n"; $| = 1; sleep 300;\n'

DIES = 'print "1..5\\nok 1 - a\\n"; die "Can\'t start nginx";\n'


def suite(tmp_path: Path, **files: str) -> Path:
    d = tmp_path / "suite"
    d.mkdir()
    for name, text in files.items():
        (d / f"{name}.t").write_text(text)
    return d


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:        # a zombie waiting for init counts as gone
        return f.read().split(") ")[1][0] != "Z"


def test_child_left_behind_does_not_hold_the_runner(tmp_path, monkeypatch):
    monkeypatch.setattr(run.tempfile, "tempdir", str(tmp_path))
    d = suite(tmp_path, leaves=LEAVES_CHILD)
    started = time.monotonic()
    r = run.run_file("leaves.t", d, Path("/bin/false"), timeout=60)
    assert time.monotonic() - started < 30
    assert (r.passed, r.failed, r.status) == (2, 0, "ok")
    child = int(next(tmp_path.glob("child.pid")).read_text())
    for _ in range(50):
        if not alive(child):
            break
        time.sleep(0.1)
    assert not alive(child)


def test_timeout_kills_the_group_and_fails_unrun_tests(tmp_path):
    d = suite(tmp_path, sleeps=SLEEPS)
    r = run.run_file("sleeps.t", d, Path("/bin/false"), timeout=1)
    assert r.timed_out and r.status == "TIMEOUT"
    assert (r.plan, r.passed, r.failed) == (3, 1, 2)


def test_died_early_and_parallel_order(tmp_path):
    d = suite(tmp_path, dies=DIES, sleeps=SLEEPS)
    results = run.run_files(["sleeps.t", "dies.t"], d, Path("/bin/false"), timeout=1, jobs=2)
    assert [r.file for r in results] == ["sleeps.t", "dies.t"]
    assert (results[1].passed, results[1].failed, results[1].exit_code) == (1, 4, 255)


def test_error_log_cause_is_read_and_shortened(tmp_path):
    log = tmp_path / "nginx-test-abcDEF1234" / "error.log"
    log.parent.mkdir()
    log.write_text(
        "2026/12/06 08:00:00 [notice] 1#1: start\n"
        f'2026/12/06 08:00:00 [emerg] 7#7: unknown directive "geo" in {log.parent}/nginx.conf:12\n')
    assert run.first_cause(tmp_path) == '[emerg] unknown directive "geo" in nginx.conf:12'
    assert run.first_cause(tmp_path / "none") == ""


def test_wrapper_runs_the_checkouts_ngate(tmp_path):
    binary = run.write_wrapper(tmp_path)
    out = subprocess.run([str(binary), "-V"], capture_output=True, text=True, cwd="/",
                         timeout=60)
    assert out.returncode == 0
    assert "configure arguments:" in out.stderr


def test_as_root_the_workers_stay_root(tmp_path):
    env = run.harness_env(Path("/b"), tmp_path, base={"PATH": "/bin"}, root=True)
    assert env["TEST_NGINX_GLOBALS"] == "user root;"
    assert env["TEST_NGINX_BINARY"] == "/b" and env["TMPDIR"] == str(tmp_path)
    kept = run.harness_env(Path("/b"), tmp_path, base={"TEST_NGINX_GLOBALS": "user www;"},
                           root=True)
    assert kept["TEST_NGINX_GLOBALS"] == "user www;"
    assert "TEST_NGINX_GLOBALS" not in run.harness_env(Path("/b"), tmp_path, base={}, root=False)
