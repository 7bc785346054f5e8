"""One test file's outcome: its TAP, how the process ended, and the counts the table shows."""
from __future__ import annotations

from dataclasses import dataclass

from conformance.tap import Tap


@dataclass(slots=True)
class FileResult:
    file: str
    tap: Tap
    exit_code: int | None = 0      # None: killed after its time limit
    seconds: float = 0.0
    cause: str = ""                # the first [emerg]/[alert] of the server's error logs, if any
    fallback_plan: int | None = None   # nginx's plan, for a file that died before its own

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None

    @property
    def skipped_all(self) -> bool:
        return self.tap.skip_all is not None

    @property
    def plan(self) -> int:
        if self.tap.plan is not None:
            return self.tap.plan
        return max(self.fallback_plan or 0, len(self.tap.assertions))

    @property
    def passed(self) -> int:
        return sum(a.passed for a in self.tap.assertions)

    @property
    def todo(self) -> int:
        """TODO tests that failed (a passing one is a pass, as in the reference)."""
        return sum(a.todo and not a.ok for a in self.tap.assertions)

    @property
    def skip(self) -> int:
        return sum(a.skip for a in self.tap.assertions)

    @property
    def unrun(self) -> int:
        return max(0, self.plan - len(self.tap.assertions))

    @property
    def failed(self) -> int:
        """Failures, plus the planned tests that never ran (the file died or was killed)."""
        return sum(not a.ok and not a.todo and not a.skip for a in self.tap.assertions) + self.unrun

    @property
    def status(self) -> str:
        if self.skipped_all:
            return f"SKIP_ALL: {self.tap.skip_all}"
        if self.timed_out:
            return "TIMEOUT"
        if self.tap.bail_out is not None:
            return f"BAIL_OUT: {self.tap.bail_out}"
        if self.failed:
            return "FAIL"
        if self.exit_code:
            return f"exit {self.exit_code}"
        return "ok"

    def passing(self) -> list:
        return [a for a in self.tap.assertions if a.passed]
