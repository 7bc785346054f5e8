"""scripts/conformance end to end on a small fake suite (perl files printing TAP): the table,
--update, --check and its exit status (conformance/cli.py)."""
import subprocess
import sys
from pathlib import Path

from conformance import cli, ratchet

REPO = Path(__file__).resolve().parents[2]
REFERENCE = """\
file    plan  pass  fail  todo  skip  status
a.t        3     3     0     0     0  ok
b.t        2     2     0     0     0  ok
"""


def fake_suite(tmp_path: Path, a_second: str = "ok") -> Path:
    d = tmp_path / "suite"
    (d / "lib" / "Test").mkdir(parents=True)
    (d / "lib" / "Test" / "Nginx.pm").write_text("1;\n")
    (d / "REFERENCE-nginx-1.22.1.txt").write_text(REFERENCE)
    (d / "a.t").write_text(
        f'print "1..3\\nok 1 - first on 127.0.0.1:8081\\n{a_second} 2 - second\\nok 3 - third\\n";\n')
    (d / "b.t").write_text('print "1..0 # SKIP no geo available\\n";\n')
    return d


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "conformance"), *args],
                          capture_output=True, text=True, timeout=120)


def test_update_then_check_then_a_lost_assertion_fails(tmp_path):
    suite, rfile = fake_suite(tmp_path), tmp_path / "ratchet.txt"
    out = run(["--tests", str(suite), "--ratchet", str(rfile), "--update", "-q"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ngate passes 3 assertions where nginx 1.22.1 passes 5" in out.stdout
    assert "SKIP_ALL: no geo available (-2)" in out.stdout
    assert ratchet.load(rfile) == {ratchet.Entry("a.t", "first on N.N.N.N:N", 1),
                                   ratchet.Entry("a.t", "second", 2),
                                   ratchet.Entry("a.t", "third", 3)}
    assert run(["--tests", str(suite), "--ratchet", str(rfile), "--check"]).returncode == 0

    fake_suite(tmp_path / "broken", a_second="not ok")
    broken = tmp_path / "broken" / "suite"
    out = run(["--tests", str(broken), "--ratchet", str(rfile), "--check", "-q"])
    assert out.returncode == 1
    assert "a.t\t2\tsecond" in out.stdout and "no longer pass" in out.stdout
    # --update refuses to drop it, --allow-drop drops it
    out = run(["--tests", str(broken), "--ratchet", str(rfile), "--update", "-q"])
    assert out.returncode == 1 and len(ratchet.load(rfile)) == 3
    out = run(["--tests", str(broken), "--ratchet", str(rfile), "--update", "--allow-drop", "-q"])
    assert out.returncode == 0 and len(ratchet.load(rfile)) == 2


def test_suite_location(tmp_path, monkeypatch):
    monkeypatch.delenv("NGINX_TESTS_DIR", raising=False)
    assert cli.tests_dir(None) == REPO.parent / "shared" / "nginx-tests"
    assert cli.tests_dir(None, {"NGINX_TESTS_DIR": "/x"}) == Path("/x")
    assert cli.tests_dir(Path("/y"), {"NGINX_TESTS_DIR": "/x"}) == Path("/y")
    out = run(["--tests", str(tmp_path)])
    assert out.returncode == 2 and "is not nginx-tests" in out.stderr
    out = run(["--tests", str(fake_suite(tmp_path)), "nope"])
    assert out.returncode != 0 and "no such test file" in out.stderr


def test_expected_differences_are_shown_apart_with_their_reason(tmp_path):
    suite = fake_suite(tmp_path, a_second="not ok")
    listed = tmp_path / "expected.txt"
    listed.write_text("a.t\tsec*\tngate says so on purpose\n")
    out = run(["--tests", str(suite), "--ratchet", str(tmp_path / "r.txt"),
               "--expected", str(listed), "-q", "a.t"])
    assert out.returncode == 0, out.stdout + out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("a.t"))
    assert row.split()[:8] == ["a.t", "3", "2", "0", "1", "0", "0", "3"]
    assert "expected [1] (-1)" in row
    assert "[1] a.t: ngate says so on purpose" in out.stdout
    listed.write_text("a.t sec* no tabs\n")
    out = run(["--tests", str(suite), "--expected", str(listed), "-q", "a.t"])
    assert out.returncode == 2 and "expected file<TAB>name pattern<TAB>reason" in out.stderr


def counting_file(path: Path, failing_runs: set[int]) -> None:
    """A test file whose assertion 2 fails on the given runs (1-based), counted in a file beside it."""
    count = path.with_suffix(".count")
    path.write_text(
        f'my $f = "{count}"; my $n = 0;\n'
        'if (open(my $h, "<", $f)) { $n = <$h>; close $h; }\n'
        '$n++; open(my $w, ">", $f) or die; print $w $n; close $w;\n'
        f'my $bad = grep {{ $_ == $n }} ({", ".join(map(str, sorted(failing_runs))) or "0"});\n'
        'print "1..3\\nok 1 - first on 127.0.0.1:8081\\n";\n'
        'print(($bad ? "not ok" : "ok") . " 2 - second\\nok 3 - third\\n");\n')
    count.unlink(missing_ok=True)


def test_check_counts_an_assertion_lost_when_it_fails_two_runs_of_three(tmp_path):
    suite, rfile = fake_suite(tmp_path), tmp_path / "ratchet.txt"
    assert run(["--tests", str(suite), "--ratchet", str(rfile), "--update", "-q"]).returncode == 0

    counting_file(suite / "a.t", {1})           # fails once, then passes both reruns
    out = run(["--tests", str(suite), "--ratchet", str(rfile), "--check", "-q"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "failed the first run, passed 2 reruns" in out.stdout and "a.t\t2\tsecond" in out.stdout
    assert (suite / "a.count").read_text() == "3"

    counting_file(suite / "a.t", {1, 3})        # passes the first rerun, fails the second
    out = run(["--tests", str(suite), "--ratchet", str(rfile), "--check", "-q"])
    assert out.returncode == 1, out.stdout + out.stderr
    assert "no longer pass" in out.stdout and "a.t\t2\tsecond" in out.stdout
