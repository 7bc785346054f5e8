"""PCRE patterns (as nginx's config uses them) translated for Python's engines.

nginx compiles regexes with PCRE2 without UTF mode: a pattern and its subject are bytes, `\\w`,
`\\d`, `\\s` and caseless matching are ASCII-only. ngate's subjects are latin-1 decoded bytes, so a
pattern is re-read the same way (its UTF-8 bytes as latin-1 characters) and compiled ASCII-only.

`translate()` (pcre_translate.py) rewrites what Python's `re` spells differently or lacks; what
only the `regex` package expresses compiles with it.

`compile_regex()` first asks libpcre2 (ngate/config/pcre2.py) whether nginx would accept the pattern,
so a refused one gets nginx's own `pcre2_compile() failed: ...` message with file:line; a pattern
PCRE accepts but neither Python engine can express is a ConfigError saying so.
"""
from __future__ import annotations

import re

from ngate.config import pcre2
from ngate.config.pcre_translate import Unsupported, translate
from ngate.errors import ConfigError

try:
    import regex as _regex_pkg
except ImportError:  # pragma: no cover - a declared dependency
    _regex_pkg = None


def as_bytes_text(pattern: str) -> str:
    """A config pattern as PCRE sees it in non-UTF mode: its UTF-8 bytes, one character each."""
    return pattern.encode("utf-8", "surrogateescape").decode("latin-1")


def compile_regex(pattern: str, where, caseless: bool = False):
    """A compiled pattern (re.Pattern, or regex.Pattern when only that package expresses it)."""
    verdict = pcre2.check(pattern.encode("utf-8", "surrogateescape"), caseless)
    if verdict:
        raise ConfigError(verdict, where)
    try:
        text, needs_regex = translate(as_bytes_text(pattern))
    except Unsupported as e:
        raise ConfigError(f'regex "{pattern}" cannot be used: {e}', where) from None
    flags = re.ASCII | (re.IGNORECASE if caseless else 0)
    try:
        if not needs_regex:
            try:
                return re.compile(text, flags)
            except re.error:
                if _regex_pkg is None:
                    raise
        if _regex_pkg is None:
            raise ConfigError(f'regex "{pattern}" needs the "regex" package', where)
        flags = _regex_pkg.V0 | _regex_pkg.ASCII | (_regex_pkg.IGNORECASE if caseless else 0)
        return _regex_pkg.compile(text, flags)
    except (re.error, _regex_error()) as e:
        if verdict == "":
            raise ConfigError(f'regex "{pattern}" uses PCRE syntax ngate does not support: {e}',
                              where) from None
        raise ConfigError(f'invalid regex "{pattern}": {e}', where) from None


def _regex_error():
    return _regex_pkg.error if _regex_pkg is not None else re.error
