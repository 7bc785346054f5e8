"""The comparison table: one row per file (ngate's counts beside nginx's pass), then the total."""
from __future__ import annotations

from typing import Iterable

from conformance.reference import Score
from conformance.result import FileResult

HEADER = ("file", "plan", "pass", "fail", "todo", "skip", "nginx", "status")


def rows(results: Iterable[FileResult], reference: dict[str, Score]) -> list[tuple]:
    out = []
    for r in results:
        ref = reference.get(r.file)
        out.append((r.file, r.plan, r.passed, r.failed, r.todo, r.skip,
                    ref.passed if ref else "-", _status(r, ref)))
    return out


def _status(r: FileResult, ref: Score | None) -> str:
    status = r.status
    if ref is not None and r.passed < ref.passed:
        status += f" (-{ref.passed - r.passed})"
    if r.cause and status != "ok":
        status += f"  {r.cause}"
    return status


def totals(results: list[FileResult], reference: dict[str, Score]) -> dict:
    return {
        "files": len(results),
        "plan": sum(r.plan for r in results),
        "pass": sum(r.passed for r in results),
        "fail": sum(r.failed for r in results),
        "todo": sum(r.todo for r in results),
        "skip": sum(r.skip for r in results),
        "nginx": sum(reference[r.file].passed for r in results if r.file in reference),
        "at_least_nginx": sum(1 for r in results
                              if r.file in reference and r.passed >= reference[r.file].passed),
        "in_reference": sum(1 for r in results if r.file in reference),
    }


def render(results: list[FileResult], reference: dict[str, Score]) -> str:
    body = rows(results, reference)
    width = max([len(HEADER[0])] + [len(row[0]) for row in body])
    lines = [_line(HEADER, width)] + [_line(row, width) for row in body]
    t = totals(results, reference)
    lines.append(_line(("TOTAL", t["plan"], t["pass"], t["fail"], t["todo"], t["skip"],
                        t["nginx"], ""), width))
    lines.append(f"ngate passes {t['pass']} assertions where nginx 1.22.1 passes {t['nginx']}; "
                 f"{t['at_least_nginx']} of {t['in_reference']} reference files at least as "
                 f"many as nginx ({t['files']} files run)")
    return "\n".join(lines)


def _line(cells: tuple, width: int) -> str:
    file, *counts, status = cells
    return (f"{file:<{width}}" + "".join(f"{c!s:>6}" for c in counts) + f"  {status}").rstrip()
