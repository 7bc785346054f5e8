"""TAP, as Test::More writes it, reduced to what the runner counts.

Lines at column 0 only (indented lines are subtests or diagnostics):
    1..N                     the plan; `1..0 # SKIP reason` skips the whole file
    ok N - name              a pass
    not ok N - name          a failure
    ... # TODO reason        a TODO test (a pass when ok, else counted apart)
    ok N # skip reason       a skipped test
    Bail out! reason         the file gave up
Test::More escapes a `#` inside a name as `\\#`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_PLAN = re.compile(r"1\.\.(\d+)(?:\s*#\s*(.*))?\s*$")
_TEST = re.compile(r"(not )?ok\b(?:\s+(\d+))?\s*(.*)$")
_DIRECTIVE = re.compile(r"(?<!\\)#\s*(todo|skip)\S*\s*(.*)$", re.IGNORECASE)
_BAIL = re.compile(r"Bail out!\s*(.*)$")


@dataclass(frozen=True, slots=True)
class Assertion:
    number: int
    ok: bool
    name: str
    todo: bool = False
    skip: bool = False

    @property
    def passed(self) -> bool:
        """ok and not skipped; a TODO test that passes counts, as in nginx's reference scores
        (Test::Harness's "todo_passed"), and a failing one is a TODO, not a failure."""
        return self.ok and not self.skip


@dataclass(slots=True)
class Tap:
    plan: int | None = None
    skip_all: str | None = None       # the reason of `1..0 # SKIP reason`
    bail_out: str | None = None
    assertions: list[Assertion] = field(default_factory=list)


def parse(text: str) -> Tap:
    tap = Tap()
    for line in text.splitlines():
        if m := _PLAN.match(line):
            tap.plan = int(m.group(1))
            if tap.plan == 0:
                reason = m.group(2) or ""
                tap.skip_all = re.sub(r"(?i)^skip\S*\s*", "", reason).strip() or "skipped"
        elif m := _TEST.match(line):
            tap.assertions.append(_assertion(m, len(tap.assertions) + 1))
        elif m := _BAIL.match(line):
            tap.bail_out = m.group(1).strip()
    return tap


def _assertion(m: re.Match, counter: int) -> Assertion:
    number = int(m.group(2)) if m.group(2) else counter
    rest = m.group(3)
    todo = skip = False
    if d := _DIRECTIVE.search(rest):
        todo = d.group(1).lower() == "todo"
        skip = not todo
        rest = rest[:d.start()]
    name = rest.strip()
    if name.startswith("-"):
        name = name[1:].strip()
    return Assertion(number, m.group(1) is None, name.replace("\\#", "#"), todo, skip)
