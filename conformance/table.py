"""The comparison table: one row per file (ngate's counts beside nginx's pass), then the total.

Failures that an expected difference explains (conformance/expected.py) are counted in their own
column, not in `fail` and never in `pass`; the status names the footnote that gives the reason.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from conformance import expected as exp
from conformance.reference import Score
from conformance.result import FileResult

HEADER = ("file", "plan", "pass", "fail", "expect", "todo", "skip", "nginx", "status")


class Notes:
    """The footnotes: one number per distinct reason, in order of first use."""

    def __init__(self) -> None:
        self.reasons: dict[str, int] = {}
        self.files: dict[str, list[str]] = {}

    def mark(self, file: str, reason: str) -> int:
        number = self.reasons.setdefault(reason, len(self.reasons) + 1)
        files = self.files.setdefault(reason, [])
        if file not in files:
            files.append(file)
        return number

    def render(self) -> list[str]:
        return [f"[{n}] {', '.join(self.files[reason])}: {reason}"
                for reason, n in self.reasons.items()]


def rows(results: Iterable[FileResult], reference: dict[str, Score],
         differences: Sequence[exp.Difference] = (), notes: Notes | None = None) -> list[tuple]:
    notes = notes if notes is not None else Notes()
    out = []
    for r in results:
        ref = reference.get(r.file)
        explained = exp.classify(r, differences)
        marks = sorted({notes.mark(r.file, d.reason) for _, d in explained})
        out.append((r.file, r.plan, r.passed, r.failed - len(explained), len(explained),
                    r.todo, r.skip, ref.passed if ref else "-",
                    _status(r, ref, len(explained), marks)))
    return out


def _status(r: FileResult, ref: Score | None, expected: int = 0, marks=()) -> str:
    status = r.status
    if status == "FAIL" and expected and expected == r.failed:
        status = "expected " + "".join(f"[{n}]" for n in marks)
    elif expected:
        status += f" ({expected} expected " + "".join(f"[{n}]" for n in marks) + ")"
    if ref is not None and r.passed < ref.passed:
        status += f" (-{ref.passed - r.passed})"
    if r.cause and r.status != "ok":
        status += f"  {r.cause}"
    return status


def totals(results: list[FileResult], reference: dict[str, Score],
           differences: Sequence[exp.Difference] = ()) -> dict:
    expected = sum(len(exp.classify(r, differences)) for r in results)
    return {
        "files": len(results),
        "plan": sum(r.plan for r in results),
        "pass": sum(r.passed for r in results),
        "fail": sum(r.failed for r in results) - expected,
        "expected": expected,
        "todo": sum(r.todo for r in results),
        "skip": sum(r.skip for r in results),
        "nginx": sum(reference[r.file].passed for r in results if r.file in reference),
        "at_least_nginx": sum(1 for r in results
                              if r.file in reference and r.passed >= reference[r.file].passed),
        "in_reference": sum(1 for r in results if r.file in reference),
    }


def render(results: list[FileResult], reference: dict[str, Score],
           differences: Sequence[exp.Difference] = ()) -> str:
    notes = Notes()
    body = rows(results, reference, differences, notes)
    width = max([len(HEADER[0])] + [len(row[0]) for row in body])
    lines = [_line(HEADER, width)] + [_line(row, width) for row in body]
    t = totals(results, reference, differences)
    lines.append(_line(("TOTAL", t["plan"], t["pass"], t["fail"], t["expected"], t["todo"],
                        t["skip"], t["nginx"], ""), width))
    lines.append(f"ngate passes {t['pass']} assertions where nginx 1.22.1 passes {t['nginx']}; "
                 f"{t['at_least_nginx']} of {t['in_reference']} reference files at least as "
                 f"many as nginx ({t['files']} files run)")
    if t["expected"]:
        lines.append(f"{t['expected']} failures are expected differences (not counted as "
                     "passes; tests/conformance/expected-differences.txt):")
        lines += notes.render()
    for d in exp.stale(results, differences):
        lines.append(f"stale expected difference (explains no failure): "
                     f"{d.file}\t{d.pattern}\t{d.reason}")
    return "\n".join(lines)


def _line(cells: tuple, width: int) -> str:
    file, *counts, status = cells
    return (f"{file:<{width}}" + "".join(f"{c!s:>7}" for c in counts) + f"  {status}").rstrip()
