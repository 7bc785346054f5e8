"""The rewrite module's compiled program (model.py re-exports it): the ops `set`, `return`,
`rewrite`, `break` and `if` compile into, run in order by http/rewrite.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ngate.config.model import LocConf, Where


@dataclass(frozen=True, slots=True)
class SetOp:
    var: str             # without "$"
    value: Any           # Template
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class ReturnOp:
    code: int            # 444 closes the connection
    text: Any = None     # Template: body text, or URL for 301/302/303/307/308
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class RewriteOp:
    regex: re.Pattern
    replacement: Any     # Template (may reference $1..$9)
    flag: str = ""       # "" | last | break | redirect | permanent
    where: Where | None = None
    parts: Any = None    # (path Template, args Template) when the replacement has "?args"


@dataclass(frozen=True, slots=True)
class BreakOp:
    where: Where | None = None


@dataclass(frozen=True, slots=True)
class IfCondition:
    kind: str            # "var" | "=" | "!=" | "~" | "~*" | "!~" | "!~*" | "-f" | "!-f" | "-d" | "-e" | "-x" ...
    left: Any            # Template
    right: Any = None    # Template (for = !=) or re.Pattern (for regex)


@dataclass(frozen=True, slots=True)
class IfOp:
    condition: IfCondition
    ops: tuple           # ops inside the if block
    conf: "LocConf | None" = None   # the if block's own merged LocConf (proxy_pass inside if ...)
    where: Where | None = None
    # an if without a handler run after one with proxy_pass/fastcgi_pass: nginx keeps the earlier
    # content handler with this if's configuration, which has no upstream ([alert] "no upstream
    # configuration", 500): `conf` with no_upstream set, made when the config compiles
    kept: "LocConf | None" = None


@dataclass(frozen=True, slots=True)
class RewriteConf:
    """The rewrite module's section of a LocConf (`conf.rewrite`). `ops` are this level's own
    (not inherited: nginx runs server-level ops in the server rewrite phase and location ops in
    the location phase)."""
    ops: tuple = ()
    log: bool = False                # rewrite_log
