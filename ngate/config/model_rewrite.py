"""The rewrite module's compiled program (model.py re-exports it): the ops `set`, `return`,
`rewrite`, `break` and `if` compile into, run in order by http/rewrite.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ngate.config.model import LocConf, Where


@dataclass(frozen=True, slots=True)
class SetOp:
    var: str             # without "$"
    value: Any           # Template
    where: Where | None = None


_REDIRECT_CODES = (301, 302, 303, 307, 308)


@dataclass(frozen=True, slots=True)
class ReturnOp:
    code: int            # 444 closes the connection
    text: Any = None     # Template: body text, or URL for 301/302/303/307/308
    where: Where | None = None
    # the response body when it is a fixed text sent as it is (no variables; not 444 nor a
    # redirect code): http/driver.py start_request sends it without rendering or encoding
    body: bytes | None = field(init=False, default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        text = self.text
        if text is not None and text.static and self.code != 444 \
                and self.code not in _REDIRECT_CODES:
            object.__setattr__(self, "body", text_bytes(text.text))


def text_bytes(value: str) -> bytes:
    """return's text: the file's and the request's bytes (latin-1 view); a `set` value typed
    in UTF-8 in the file makes the whole text UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


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
