"""nginx's score file (REFERENCE-nginx-1.22.1.txt): `file plan pass fail todo skip status`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NAME = "REFERENCE-nginx-1.22.1.txt"


@dataclass(frozen=True, slots=True)
class Score:
    file: str
    plan: int
    passed: int
    failed: int
    todo: int
    skipped: int
    status: str


def parse(text: str) -> dict[str, Score]:
    """Rows in file order (dicts keep it); the header line and blank lines are ignored."""
    scores: dict[str, Score] = {}
    for line in text.splitlines():
        parts = line.split(None, 6)
        if len(parts) < 7 or not parts[1].isdigit():
            continue
        plan, passed, failed, todo, skipped = (int(p) for p in parts[1:6])
        scores[parts[0]] = Score(parts[0], plan, passed, failed, todo, skipped, parts[6].strip())
    return scores


def load(tests_dir: Path) -> dict[str, Score]:
    path = tests_dir / NAME
    return parse(path.read_text()) if path.exists() else {}
