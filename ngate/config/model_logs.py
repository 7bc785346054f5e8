"""The logs of the frozen model (model.py re-exports it): log_format, access_log and error_log
as observability/ writes them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LogFormat:
    name: str
    template: Any                 # Template (escape applied by the access log writer)
    escape: str = "default"       # default | json | none


@dataclass(frozen=True, slots=True)
class AccessLog:
    path: str                     # absolute path, or "off"
    format: LogFormat | None = None
    condition: Any = None         # Template for if=
    buffer: int = 0               # buffer=size: lines kept until it fills or flush= passes
    flush: float | None = None    # flush=time (seconds)
    path_template: Any = None     # Template when the path has variables (opened per line)


@dataclass(frozen=True, slots=True)
class ErrorLog:
    path: str                     # absolute path, "stderr"
    level: str = "error"
