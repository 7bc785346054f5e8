"""PCRE patterns (as nginx's config uses them) compiled with Python's `re`.

Translated: `(?<name>...)` and `(?'name'...)` named groups, `\\k<name>` back-references, `\\z`.
Python 3.11 has possessive quantifiers and atomic groups; anything it cannot compile (\\Q..\\E,
\\K, recursion, verbs) is a ConfigError naming the pattern.
"""
from __future__ import annotations

import re

from ngate.errors import ConfigError

_TRANSLATIONS = (
    (re.compile(r"(?<!\\)\(\?<(?![=!])([A-Za-z_]\w*)>"), r"(?P<\1>"),
    (re.compile(r"(?<!\\)\(\?'([A-Za-z_]\w*)'"), r"(?P<\1>"),
    (re.compile(r"(?<!\\)\\k<([A-Za-z_]\w*)>"), r"(?P=\1)"),
    (re.compile(r"(?<!\\)\\z"), r"\\Z"),
)


def translate(pattern: str) -> str:
    for rx, repl in _TRANSLATIONS:
        pattern = rx.sub(repl, pattern)
    return pattern


def compile_regex(pattern: str, where, caseless: bool = False) -> re.Pattern:
    try:
        return re.compile(translate(pattern), re.IGNORECASE if caseless else 0)
    except re.error as e:
        raise ConfigError(f'invalid regex "{pattern}": {e}', where) from None
