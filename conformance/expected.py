"""Expected differences: assertions of nginx's suite that ngate fails on purpose, with the reason.

The list lives in the repository (tests/conformance/expected-differences.txt), one line each:

    file<TAB>name pattern<TAB>reason

The pattern is a shell glob (fnmatch, case-sensitive) matched against the assertion's name as it
is, or as the ratchet normalises it (temp paths -> TESTDIR, digit runs -> N: a port or a size in
a name is written N). Only failures are classified: a
matching assertion that passes stays a pass, and an expected failure is never counted as one.
The table shows them in a column of their own, with the reason as a footnote; an entry that
matched no failure of a file that ran is reported as stale, so the list stays short.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from conformance.ratchet import normalise
from conformance.result import FileResult
from conformance.tap import Assertion


@dataclass(frozen=True, slots=True)
class Difference:
    file: str
    pattern: str
    reason: str

    def matches(self, file: str, a: Assertion) -> bool:
        return file == self.file and (fnmatch.fnmatchcase(a.name, self.pattern)
                                      or fnmatch.fnmatchcase(normalise(a.name), self.pattern))


class FormatError(ValueError):
    pass


def parse(text: str, source: str = "expected-differences") -> tuple[Difference, ...]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) != 3 or not all(parts):
            raise FormatError(f"{source}:{number}: expected file<TAB>name pattern<TAB>reason")
        file, pattern, reason = parts
        if not file.endswith(".t"):
            raise FormatError(f'{source}:{number}: "{file}" is not a test file (.t)')
        out.append(Difference(file, pattern, reason))
    return tuple(out)


def load(path: Path) -> tuple[Difference, ...]:
    return parse(path.read_text(), str(path)) if path.exists() else ()


def failing(a: Assertion) -> bool:
    return not a.ok and not a.todo and not a.skip


def classify(result: FileResult, differences: Iterable[Difference]
             ) -> list[tuple[Assertion, Difference]]:
    """The failures of `result` that an expected difference explains (the first that matches)."""
    mine = [d for d in differences if d.file == result.file]
    out = []
    if not mine:
        return out
    for a in result.tap.assertions:
        if failing(a):
            d = next((d for d in mine if d.matches(result.file, a)), None)
            if d is not None:
                out.append((a, d))
    return out


def stale(results: Iterable[FileResult], differences: Iterable[Difference]) -> list[Difference]:
    """Entries for files that ran (and were not skipped whole) that explained no failure."""
    ran = {r.file: r for r in results if not r.skipped_all}
    used = {d for r in ran.values() for _, d in classify(r, differences)}
    return [d for d in differences if d.file in ran and d not in used]
