"""The command line: nginx's option syntax and messages, -t/-T output, -s signalling."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ngate import cli
from ngate.cli import Options, UsageError, parse_args
from tests.harness.processes import NGINX_BIN, REPO_ROOT, require_kind

GOOD = """\
daemon off;
pid logs/nginx.pid;
events {}
http { server { listen 127.0.0.1:18099; location / { return 200 "hi"; } } }
"""
BAD = """\
daemon off;
events {}
http {
    server { listen 127.0.0.1:18099; foo; }
}
"""


@pytest.mark.parametrize("argv, expected", [
    (["-t"], Options(test=True)),
    (["-tq"], Options(test=True, quiet=True)),
    (["-T"], Options(test=True, dump=True)),
    (["-v"], Options(version=True)),
    (["-V"], Options(version=True, configure=True)),
    (["-?"], Options(help=True, version=True)),
    (["-h"], Options(help=True, version=True)),
    (["--help"], Options(help=True, version=True)),
    (["--version"], Options(version=True)),
    (["-c", "a.conf"], Options(conf_file="a.conf")),
    (["-ca.conf"], Options(conf_file="a.conf")),
    (["-tca.conf"], Options(test=True, conf_file="a.conf")),
    (["-p", "/x/", "-e", "stderr"], Options(prefix="/x/", error_log="stderr")),
    (["-g", "daemon off;"], Options(directives="daemon off;")),
    (["-s", "reload"], Options(signal="reload")),
    (["-sstop"], Options(signal="stop")),
    (["-c", "a", "-c", "b"], Options(conf_file="b")),
])
def test_parse_args(argv, expected):
    assert parse_args(argv) == expected


@pytest.mark.parametrize("argv, message", [
    (["foo"], 'invalid option: "foo"'),
    (["-x"], 'invalid option: "x"'),
    (["-tx"], 'invalid option: "x"'),
    (["-c"], 'option "-c" requires file name'),
    (["-e"], 'option "-e" requires file name'),
    (["-p"], 'option "-p" requires directory name'),
    (["-g"], 'option "-g" requires parameter'),
    (["-s"], 'option "-s" requires parameter'),
    (["-s", "foo"], 'invalid option: "-s foo"'),
])
def test_parse_errors_use_nginx_wording(argv, message, capsys):
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_args(argv)
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == f"ngate: {message}\n"


def test_version(capsys):
    assert cli.main(["-v"]) == 0
    out = capsys.readouterr()
    assert out.out == ""
    assert re.fullmatch(r"ngate version: ngate/\S+ \(nginx/1\.22\.1 compatible\)\n", out.err)


def test_version_with_build_info(capsys):
    assert cli.main(["-V"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("ngate version: ngate/")
    assert "uvloop" in err[1] and "httptools" in err[1] and "Python" in err[1]


def test_help_lists_options_and_verbs(capsys, monkeypatch):
    monkeypatch.setitem(cli.VERBS, "demo", cli.Verb(lambda argv: 0, "run a demo"))
    assert cli.main(["-h"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("ngate version: ngate/")
    assert "Usage: ngate [-?hvVtTq] [-s signal] [-p prefix]" in err
    for opt in ("-?,-h", "-v ", "-V ", "-t ", "-T ", "-q ", "-s signal", "-p prefix",
                "-e filename", "-c filename", "-g directives"):
        assert f"  {opt}" in err
    assert "  demo          : run a demo" in err


def test_verbs_are_dispatched(monkeypatch):
    seen = []
    monkeypatch.setitem(cli.VERBS, "demo", cli.Verb(lambda argv: seen.append(argv) or 7, "x"))
    assert cli.main(["demo", "-c", "x"]) == 7
    assert seen == [["-c", "x"]]


def test_verb_table_names_real_functions():
    """Each verb of the table resolves to its module's function (a typo fails here)."""
    assert sorted(cli.VERBS) == ["demo", "explain"]
    for name, verb in cli.VERBS.items():
        module = __import__(verb.run.module, fromlist=[verb.run.function])
        assert module.__name__ == f"ngate.{name}"
        assert callable(getattr(module, verb.run.function))


def test_verbs_load_only_when_used():
    """Plain `ngate -v` imports neither verb's module; `ngate explain` imports explain alone."""
    code = ("import sys\nfrom ngate import cli\ntry:\n    cli.main(sys.argv[1:])\n"
            "finally:\n    print(sorted(m for m in ('ngate.demo', 'ngate.explain')"
            " if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code, "-v"], capture_output=True, text=True,
                         env=env, cwd=REPO_ROOT, check=True).stdout
    assert out == "[]\n"
    out = subprocess.run([sys.executable, "-c", code, "explain", "-h"], capture_output=True,
                         text=True, env=env, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "['ngate.explain']"


def test_relative_conf_is_relative_to_prefix(tmp_path):
    opts = parse_args(["-p", f"{tmp_path}/", "-c", "conf/nginx.conf"])
    assert cli.resolve_paths(opts) == (str(tmp_path), str(tmp_path / "conf" / "nginx.conf"))


# ---------------------------------------------------------------- running the program

def run(*args, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "ngate", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=60)


def write_conf(prefix: Path, text: str) -> Path:
    (prefix / "logs").mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


def test_t_good(tmp_path):
    conf = write_conf(tmp_path, GOOD)
    res = run("-t", "-p", str(tmp_path), "-c", "nginx.conf")
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    assert res.stderr == (f"ngate: the configuration file {conf} syntax is ok\n"
                          f"ngate: configuration file {conf} test is successful\n")


def test_t_quiet(tmp_path):
    conf = write_conf(tmp_path, GOOD)
    res = run("-tq", "-p", str(tmp_path), "-c", str(conf))
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_t_bad(tmp_path):
    conf = write_conf(tmp_path, BAD)
    res = run("-t", "-q", "-p", str(tmp_path), "-c", str(conf))
    assert res.returncode == 1
    assert res.stderr == (f'ngate: [emerg] unknown directive "foo" in {conf}:4\n'
                          f"ngate: configuration file {conf} test failed\n")


def test_t_matches_nginx_wording(tmp_path):
    """Same messages as `nginx -t` for a good and a bad file, modulo the program name and
    Debian's build logging to stderr with a time stamp."""
    require_kind("nginx")
    for text in (GOOD, BAD):
        conf = write_conf(tmp_path, text)
        args = ["-t", "-p", str(tmp_path), "-c", str(conf)]
        ours = run(*args)
        theirs = subprocess.run([NGINX_BIN, *args], capture_output=True, text=True, timeout=30)
        assert ours.returncode == theirs.returncode
        nginx_lines = [re.sub(r"^\S+ \S+ \[(\w+)\] \d+#\d+: ", r"nginx: [\1] ", line)
                       for line in theirs.stderr.splitlines()]
        assert ours.stderr.splitlines() == [line.replace("nginx:", "ngate:", 1)
                                            for line in nginx_lines]


def test_t_missing_file(tmp_path):
    conf = tmp_path / "missing.conf"
    res = run("-t", "-c", str(conf))
    assert res.returncode == 1
    assert res.stderr == (f'ngate: [emerg] open() "{conf}" failed (2: No such file or directory)\n'
                          f"ngate: configuration file {conf} test failed\n")


def test_T_dumps_to_stdout(tmp_path):
    conf = write_conf(tmp_path, GOOD)
    res = run("-T", "-q", "-p", str(tmp_path), "-c", str(conf))
    assert res.returncode == 0, res.stderr
    assert f"# configuration file {conf}:" in res.stdout
    assert 'return 200 "hi";' in res.stdout


def test_e_file_gets_the_error_with_time_stamp(tmp_path):
    conf = write_conf(tmp_path, BAD)
    res = run("-t", "-p", str(tmp_path), "-c", str(conf), "-e", "logs/startup.log")
    assert res.returncode == 1
    assert f'ngate: [emerg] unknown directive "foo" in {conf}:4' in res.stderr
    logged = (tmp_path / "logs" / "startup.log").read_text()
    assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[emerg\] \d+#\d+: unknown directive "
                        rf'"foo" in {re.escape(str(conf))}:4\n', logged)


# ---------------------------------------------------------------- -s

def test_s_without_pid_file(tmp_path):
    write_conf(tmp_path, GOOD)
    res = run("-s", "reload", "-p", str(tmp_path), "-c", "nginx.conf")
    assert res.returncode == 1
    pid = tmp_path / "logs" / "nginx.pid"
    assert res.stderr == f'ngate: [error] open() "{pid}" failed (2: No such file or directory)\n'


@pytest.mark.parametrize("content, shown", [("", ""), ("abc\n", "abc")])
def test_s_invalid_pid(tmp_path, content, shown):
    write_conf(tmp_path, GOOD)
    pid = tmp_path / "logs" / "nginx.pid"
    pid.write_text(content)
    res = run("-s", "quit", "-p", str(tmp_path), "-c", "nginx.conf")
    assert res.returncode == 1
    assert res.stderr == f'ngate: [error] invalid PID number "{shown}" in "{pid}"\n'


def test_s_no_such_process(tmp_path):
    write_conf(tmp_path, GOOD)
    (tmp_path / "logs" / "nginx.pid").write_text("999999\n")
    res = run("-s", "reload", "-p", str(tmp_path), "-c", "nginx.conf")
    assert res.returncode == 1
    assert res.stderr == "ngate: [alert] kill(999999, 1) failed (3: No such process)\n"


def test_s_stop_sends_term(tmp_path):
    write_conf(tmp_path, GOOD)
    target = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "logs" / "nginx.pid").write_text(f"{target.pid}\n")
        res = run("-s", "stop", "-p", str(tmp_path), "-c", "nginx.conf")
        assert (res.returncode, res.stderr) == (0, "")
        assert target.wait(10) == -signal.SIGTERM
    finally:
        target.kill()
        target.wait()
