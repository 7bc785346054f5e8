"""Running test files: `perl file.t` from the suite's folder against a wrapper that starts the
checkout's ngate, each file in a process group of its own with a time limit.

Output goes to files, not pipes: a child left behind (ssl_password_file.t's FIFO writer, a server
that did not stop) cannot hold the runner's reads open. When the file returns or its time is up,
the whole group is killed, then any process still naming the file's private TMPDIR (a daemonized
server leaves the group). The harness keeps its temp dirs (TEST_NGINX_LEAVE=1) inside that TMPDIR
so the runner can read the servers' error logs for the cause of a failure, then removes it all.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

from conformance import tap
from conformance.result import FileResult

REPO = Path(__file__).resolve().parent.parent


def write_wrapper(directory: Path, repo: Path = REPO, python: str = sys.executable) -> Path:
    """An executable that runs `python -m ngate` from `repo`: the harness's TEST_NGINX_BINARY."""
    path = directory / "ngate"
    path.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH='{repo}'${{PYTHONPATH:+:$PYTHONPATH}} exec '{python}' -m ngate \"$@\"\n")
    path.chmod(0o755)
    return path


def harness_env(binary: Path, tmpdir: Path, base: dict | None = None,
                root: bool | None = None) -> dict:
    """The harness's environment. As root, `user root;` joins TEST_NGINX_GLOBALS: a root master
    (nginx's or ngate's) otherwise runs its workers as nobody, who cannot read the harness's
    0700 temp dirs. TEST_NGINX_UNSAFE=1 runs the "long" and "unsafe" tests too: nginx's
    reference scores count them (sub_filter_multi.t 44 of 44, proxy_cache_manager.t, h2.t)."""
    env = dict(os.environ if base is None else base)
    env.update(TEST_NGINX_BINARY=str(binary), TMPDIR=str(tmpdir), TEST_NGINX_LEAVE="1")
    env.setdefault("TEST_NGINX_UNSAFE", "1")
    env.pop("TEST_NGINX_CATLOG", None)
    if (os.geteuid() == 0 if root is None else root):
        globals_ = env.get("TEST_NGINX_GLOBALS", "")
        if not re.search(r"(^|[;\s])user\s", globals_):
            env["TEST_NGINX_GLOBALS"] = (globals_ + " user root;").strip()
    return env


def run_file(name: str, tests_dir: Path, binary: Path, timeout: float,
             fallback_plan: int | None = None) -> FileResult:
    work = Path(tempfile.mkdtemp(prefix=f"conformance-{name}-"))
    try:
        tmp = work / "tmp"
        tmp.mkdir()
        out_path, err_path = work / "stdout", work / "stderr"
        started = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(["perl", name], cwd=tests_dir, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True,
                                    env=harness_env(binary, tmp))
            try:
                exit_code: int | None = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                exit_code = None
            kill_group(proc.pid)
            if exit_code is None:
                proc.wait()
            kill_leftovers(str(tmp))
        seconds = time.monotonic() - started
        text = out_path.read_text(errors="replace")
        return FileResult(name, tap.parse(text), exit_code, seconds, first_cause(tmp),
                          fallback_plan)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_leftovers(marker: str) -> None:
    """SIGKILL every process of ours whose command line names `marker` (our private TMPDIR)."""
    needle = marker.encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                if needle in f.read():
                    os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


_CAUSE = re.compile(r"\[(emerg|alert|crit)\] (?:\d+#\d+: )?(.*)$")
_TESTDIR = re.compile(r"/\S*/nginx-test-\w+/")


def first_cause(tmp: Path) -> str:
    """The first [emerg] (else [alert]/[crit]) line of the servers' error logs under tmp."""
    best: dict[str, str] = {}
    for log in sorted(tmp.glob("*/*.log")):
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if m := _CAUSE.search(line):
                best.setdefault(m.group(1), _TESTDIR.sub("", m.group(2).strip()))
    for level in ("emerg", "crit", "alert"):
        if level in best:
            return f"[{level}] {best[level]}"
    return ""


def run_files(names: Iterable[str], tests_dir: Path, binary: Path, timeout: float, jobs: int,
              fallback_plans: dict[str, int] | None = None,
              progress: Callable[[FileResult], None] | None = None) -> list[FileResult]:
    """Results in the order of `names`; the slowest files are best listed first."""
    names = list(names)
    plans = fallback_plans or {}

    def one(name: str) -> FileResult:
        result = run_file(name, tests_dir, binary, timeout, plans.get(name))
        if progress:
            progress(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, names))
