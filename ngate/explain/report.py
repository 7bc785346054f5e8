"""What `ngate explain` prints: labelled lines, indented details, then the warnings."""
from __future__ import annotations

from ngate.http1.response import REASONS

LABEL = 10


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []
        self.outcome: str | None = None      # what the client gets, when it is known

    def add(self, label: str, text: str) -> None:
        self.lines.append(f"{label:<{LABEL - 1}} {text}")

    def more(self, text: str, depth: int = 0) -> None:
        self.lines.append(" " * (LABEL + 2 * depth) + text)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def answer(self, text: str) -> None:
        """The response the client gets (set once: the first answer ends the request)."""
        if self.outcome is None:
            self.outcome = text

    def text(self) -> str:
        out = list(self.lines)
        if self.outcome is not None:
            out.append(f"{'response':<{LABEL - 1}} {self.outcome}")
        if self.warnings:
            out.append("")
            out.append("warnings:")
            out.extend(_wrap("- ", w) for w in self.warnings)
        return "\n".join(out) + "\n"


def _wrap(bullet: str, text: str) -> str:
    return bullet + text.replace("\n", "\n" + " " * len(bullet))


def status(code: int) -> str:
    reason = REASONS.get(code)
    return f"{code} {reason}" if reason else str(code)


def seconds(value: float) -> str:
    return f"{value:g}s"
