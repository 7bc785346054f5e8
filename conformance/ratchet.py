"""The ratchet: the assertions that pass today, one line each (`file<TAB>number<TAB>name`).

`check` lists the entries that no longer pass; `update` adds new passes and, unless allowed,
refuses to drop an entry. Names are normalised into a stable key: the harness's temp dirs and
every run of digits (ports the harness picks at random, sizes, times) become placeholders; an
occurrence index keeps equal names apart. The test number is not part of the key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from conformance.result import FileResult

HEADER = """\
# Assertions of nginx's test suite that ngate passes: CI fails when one of them stops passing.
# Raise it with `scripts/conformance --update` (see README, "nginx's test suite").
# file<TAB>test number<TAB>name (temp paths -> TESTDIR, digit runs -> N; " [k]": k-th of that name).
# An entry is matched by file and name; the number is for reading.
"""

_TEMP = re.compile(r"(/[\w.-]+)*/nginx-test-\w+")
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")


def normalise(name: str) -> str:
    name = _TEMP.sub("TESTDIR", name)
    name = _DIGITS.sub("N", name)
    return _SPACE.sub(" ", name).strip()


@dataclass(frozen=True, slots=True, order=True)
class Entry:
    """Compared by file and name: a file that starts where it did not shifts its numbers (the
    harness's "no alerts" moves from 1 to N-1). The k-th assertion of a file with the same name
    (k > 1, counting every assertion of the run) has " [k]" added to its name."""
    file: str
    name: str
    number: int = field(default=0, compare=False)

    def line(self) -> str:
        return f"{self.file}\t{self.number}\t{self.name}"


def passing(results: Iterable[FileResult]) -> set[Entry]:
    entries = set()
    for r in results:
        seen: dict[str, int] = {}
        for a in r.tap.assertions:
            name = normalise(a.name)
            seen[name] = seen.get(name, 0) + 1
            if a.passed and not a.todo:     # a TODO that passes counts in the score, but
                label = name if seen[name] == 1 else f"{name} [{seen[name]}]"
                entries.add(Entry(r.file, label, a.number))   # nginx does not promise it: not held
    return entries


def parse(text: str) -> set[Entry]:
    entries = set()
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        file, number, name = (line.split("\t", 2) + ["", ""])[:3]
        entries.add(Entry(file, name, int(number)))
    return entries


def render(entries: Iterable[Entry]) -> str:
    return HEADER + "".join(e.line() + "\n" for e in sorted(entries, key=_order))


def _order(e: Entry) -> tuple:
    return (e.file, e.number, e.name)


def load(path: Path) -> set[Entry]:
    return parse(path.read_text()) if path.exists() else set()


def save(path: Path, entries: Iterable[Entry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(entries))


def check(listed: set[Entry], passes: set[Entry], files_run: Iterable[str]) -> list[Entry]:
    """Entries of the files that ran which did not pass this time."""
    ran = set(files_run)
    return sorted((e for e in listed if e.file in ran and e not in passes), key=_order)


@dataclass(frozen=True, slots=True)
class Update:
    entries: set[Entry]
    added: list[Entry]
    dropped: list[Entry]     # entries (of the files that ran) that no longer pass
    refused: bool            # dropped entries without allow_drop: nothing changes


def update(listed: set[Entry], passes: set[Entry], files_run: Iterable[str],
           allow_drop: bool = False) -> Update:
    dropped = check(listed, passes, files_run)
    added = sorted(passes - listed, key=_order)
    if dropped and not allow_drop:
        return Update(set(listed), added, dropped, True)
    return Update((listed - set(dropped)) | passes, added, dropped, False)
