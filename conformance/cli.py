"""scripts/conformance: run nginx's test files against this checkout's ngate and compare."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from conformance import expected, ratchet, reference, run, table
from conformance.result import FileResult

DEFAULT_TESTS = run.REPO.parent / "shared" / "nginx-tests"
DEFAULT_RATCHET = run.REPO / "tests" / "conformance" / "ratchet.txt"
DEFAULT_EXPECTED = run.REPO / "tests" / "conformance" / "expected-differences.txt"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/conformance",
        description="Run nginx's test suite (nginx-tests) against the ngate of this checkout.")
    p.add_argument("files", nargs="*",
                   help="test files (default: every file of the suite's REFERENCE file)")
    p.add_argument("--tests", type=Path, default=None,
                   help="the suite's folder (default: $NGINX_TESTS_DIR, else ../shared/nginx-tests)")
    p.add_argument("-j", "--jobs", type=int, default=4, help="files run at once (default 4)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds a file may take before its process group is killed (default 120)")
    p.add_argument("--ratchet", type=Path, default=DEFAULT_RATCHET,
                   help="the ratchet file (default tests/conformance/ratchet.txt)")
    p.add_argument("--expected", type=Path, default=DEFAULT_EXPECTED,
                   help="the expected differences: failures ngate keeps on purpose, with the "
                        "reason (default tests/conformance/expected-differences.txt)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="exit 1 when an assertion of the ratchet no longer passes")
    mode.add_argument("--update", action="store_true",
                      help="add today's passes to the ratchet (refuses to drop entries)")
    p.add_argument("--allow-drop", action="store_true",
                   help="with --update: also remove entries that no longer pass")
    p.add_argument("--json", type=Path, help="also write every file's result here")
    p.add_argument("--needs", type=int, metavar="N", default=0,
                   help="also rank the N needs (missing modules, unknown directives and "
                        "variables, directives without effect) by the assertions they block")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return p.parse_args(argv)


def tests_dir(opt: Path | None, env: dict = os.environ) -> Path:
    if opt is not None:
        return opt
    if env.get("NGINX_TESTS_DIR"):
        return Path(env["NGINX_TESTS_DIR"])
    return DEFAULT_TESTS


def choose_files(args_files: list[str], scores: dict, directory: Path) -> list[str]:
    names = [f if f.endswith(".t") else f + ".t" for f in args_files] or list(scores)
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise SystemExit(f"conformance: no such test file in {directory}: {', '.join(missing)}")
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    directory = tests_dir(args.tests).resolve()
    if not (directory / "lib" / "Test" / "Nginx.pm").is_file():
        print(f"conformance: {directory} is not nginx-tests (no lib/Test/Nginx.pm); "
              "give --tests DIR or NGINX_TESTS_DIR", file=sys.stderr)
        return 2
    scores = reference.load(directory)
    try:
        differences = expected.load(args.expected)
    except expected.FormatError as err:
        print(f"conformance: {err}", file=sys.stderr)
        return 2
    names = choose_files(args.files, scores, directory)
    if args.check and not args.files:       # files held by the ratchet outside the reference too
        names += sorted({e.file for e in ratchet.load(args.ratchet)} - set(names))
    started = time.monotonic()
    results = execute(names, directory, scores, args)
    wall = time.monotonic() - started
    print(table.render(results, scores, differences))
    print(f"wall time {wall:.0f}s, -j{args.jobs}")
    if args.json:
        write_json(args.json, results, wall, differences)
    if args.needs:
        print(render_needs(results, directory, scores, args.needs))
    if args.check:
        return check(results, names, directory, scores, args)
    if args.update:
        return update(results, names, args)
    return 0


def execute(names: list[str], directory: Path, scores: dict, args) -> list[FileResult]:
    total = len(names)
    done = [0]

    def progress(r: FileResult) -> None:
        done[0] += 1
        if not args.quiet:
            print(f"[{done[0]}/{total}] {r.file}: {r.passed}/{r.plan} {r.status} "
                  f"({r.seconds:.1f}s)", file=sys.stderr, flush=True)

    plans = {name: score.plan for name, score in scores.items()}
    with tempfile.TemporaryDirectory(prefix="conformance-bin-") as bindir:
        binary = run.write_wrapper(Path(bindir))
        return run.run_files(names, directory, binary, args.timeout, args.jobs, plans, progress)


def check(results, names, directory, scores, args) -> int:
    listed = ratchet.load(args.ratchet)
    if not listed:
        print(f"conformance: no ratchet at {args.ratchet}", file=sys.stderr)
        return 1
    lost = ratchet.check(listed, ratchet.passing(results), names)
    if lost:
        lost = second_chances(lost, directory, scores, args)
    if lost:
        print(f"conformance: {len(lost)} assertion(s) of the ratchet no longer pass:")
        for e in lost:
            print(f"  {e.line()}")
        return 1
    print(f"conformance: ratchet ok ({sum(e.file in set(names) for e in listed)} assertions)")
    return 0


RERUNS = 2


def second_chances(lost: list, directory: Path, scores: dict, args) -> list:
    """The ratchet assertions of `lost` that fail again when their files run RERUNS more times.

    A loaded machine can fail a timing-sensitive assertion once, so an assertion counts as lost
    only when it fails in two runs of three. One rerun was not enough: the rerun runs a few files
    on an idle machine, and a real defect that shows only with some load (limit_rate.t, session
    11: the access log line written after the close) passed it and hid. The assertions that
    passed every rerun are printed on stdout (flaky or a defect that needs load to show)."""
    again = sorted({e.file for e in lost})
    print(f"conformance: {len(lost)} ratchet assertion(s) failed; running "
          f"{', '.join(again)} {RERUNS} more times", file=sys.stderr)
    failing = set()
    for _ in range(RERUNS):
        passing = ratchet.passing(execute(again, directory, scores, args))
        failing |= {e for e in lost if e not in passing}
    for e in lost:
        if e not in failing:
            print(f"conformance: failed the first run, passed {RERUNS} reruns (flaky, or a "
                  f"defect that shows under load; run the file alone): {e.line()}")
    return [e for e in lost if e in failing]


def update(results, names, args) -> int:
    listed = ratchet.load(args.ratchet)
    outcome = ratchet.update(listed, ratchet.passing(results), names, args.allow_drop)
    for e in outcome.dropped:
        print(f"  {'dropped' if not outcome.refused else 'no longer passes'}: {e.line()}")
    if outcome.refused:
        print(f"conformance: {len(outcome.dropped)} ratchet assertion(s) no longer pass; "
              "not updating (fix them, or --allow-drop)")
        return 1
    ratchet.save(args.ratchet, outcome.entries)
    print(f"conformance: ratchet {args.ratchet}: {len(outcome.entries)} assertions "
          f"(+{len(outcome.added)}, -{len(outcome.dropped)})")
    return 0


def render_needs(results: list[FileResult], directory: Path, scores: dict, top: int) -> str:
    from conformance import needs
    from ngate import cli as ngate_cli
    dash_v = ngate_cli.version_line() + "\n" + ngate_cli.build_info()
    regexes = needs.harness_regexes(directory)
    blockers = {r.file: needs.file_needs(directory / r.file, dash_v, regexes).blockers(
        r.file, r.skipped_all, startup_error(r)) for r in results}
    deficit = {r.file: scores[r.file].passed - r.passed for r in results if r.file in scores}
    ranked = needs.rank(blockers, deficit)[:top]
    lines = ["what the files below nginx need: the assertions nginx passes and ngate does not, "
             "by cause (a file with several counts for each)", f"{'blocked':>7} {'files':>5}  cause"]
    for cause, blocked, files in ranked:
        shown = " ".join(files[:6]) + (" ..." if len(files) > 6 else "")
        lines.append(f"{blocked:>7} {len(files):>5}  {cause:<42} {shown}")
    return "\n".join(lines)


def startup_error(r: FileResult) -> str:
    """The [emerg] that kept a file's server from starting (it then passes at most the two
    log checks), or ""."""
    return r.cause if r.cause.startswith("[emerg]") and r.passed <= 2 else ""


def write_json(path: Path, results: list[FileResult], wall: float, differences=()) -> None:
    data = {"wall_seconds": round(wall, 1), "files": [{
        "file": r.file, "plan": r.plan, "pass": r.passed, "fail": r.failed,
        "expected": [[a.number, a.name, d.reason] for a, d in expected.classify(r, differences)],
        "todo": r.todo,
        "skip": r.skip, "status": r.status, "cause": r.cause, "seconds": round(r.seconds, 1),
        "assertions": [[a.number, a.ok, a.name, a.todo, a.skip] for a in r.tap.assertions],
    } for r in results]}
    path.write_text(json.dumps(data, indent=1))
