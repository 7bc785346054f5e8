"""UpstreamError: the one type of an upstream failure (nginx's ngx_http_upstream_next ft_type).

An error says what happened (`kind`, a Failure), where (`phase`: nginx's log action, `while
connecting to upstream`, ...), what it maps to (`status`: 502, 504) and whether trying another
peer is safe for it (`retry_safe`: a failure listed by a proxy_next_upstream condition, before
the response head reached the client). Whether a retry then happens is upstream/retry.py's
decision, which adds the configuration and the request to it.

The exchange logs an error itself (it knows the upstream URI of nginx's `upstream: "..."`) and
hands it to http/phases.fail marked `logged`; fail reads status, level and log_message.
"""
from __future__ import annotations

from enum import Enum


class Phase(Enum):
    """Where the exchange was: nginx's log action (`... while <action>`)."""
    CONNECT = "connecting to upstream"
    HEADER = "reading response header from upstream"
    BODY = "reading upstream"


class Failure(Enum):
    """A kind of upstream failure: (its proxy_next_upstream condition or None, status)."""

    def __new__(cls, condition, status: int):
        obj = object.__new__(cls)
        obj._value_ = len(cls.__members__)
        obj.condition = condition
        obj.status = status
        return obj

    CONNECT_REFUSED = ("error", 502)        # connect() failed (111: Connection refused), ...
    TLS_FAILED = ("error", 502)             # SSL_do_handshake() failed
    CONNECT_TIMEOUT = ("timeout", 504)      # proxy_connect_timeout
    READ_TIMEOUT = ("timeout", 504)         # proxy_read_timeout (head or body)
    CLOSED_PREMATURELY = ("error", 502)     # the peer closed before the response's end
    RESET = ("error", 502)                  # recv() failed (104: Connection reset by peer)
    INVALID_HEADER = ("invalid_header", 502)  # unparsable head, too big, FastCGI protocol
    INVALID_BODY = ("error", 502)           # invalid chunked body / FastCGI records mid-body
    NO_LIVE = (None, 502)                   # no live upstreams
    TOO_MANY_TRIES = (None, 502)            # the exchange's own cap on tries
    TOO_LARGE = (None, 502)                 # a response too large to cache (cache/ending.py)


TIMED_OUT = "upstream timed out (110: Connection timed out)"
CLOSED = "upstream prematurely closed connection"


class UpstreamError(Exception):
    __slots__ = ("kind", "phase", "detail", "logged")
    level = "error"

    def __init__(self, kind: Failure, phase: Phase, detail: str = "",
                 logged: bool = False) -> None:
        super().__init__(detail)
        self.kind = kind
        self.phase = phase
        self.detail = detail            # nginx's message before ` while <action>`
        self.logged = logged            # the error log has it already (or must not)

    @property
    def status(self) -> int:
        return self.kind.status

    @property
    def retry_safe(self) -> bool:
        """Another peer may be tried for it: a proxy_next_upstream condition, and the client
        has not had the response head (which is sent in the body phase only)."""
        return self.kind.condition is not None and self.phase is not Phase.BODY

    @property
    def message(self) -> str:
        return f"{self.detail} while {self.phase.value}" if self.detail else ""

    @property
    def log_message(self) -> str:
        """For phases.fail: what is still to be logged."""
        return "" if self.logged else self.message

    def __repr__(self) -> str:
        return f"UpstreamError({self.kind.name}, {self.phase.name}, {self.detail!r})"


def connect_failed(exc: OSError) -> UpstreamError:
    return UpstreamError(Failure.CONNECT_REFUSED, Phase.CONNECT,
                         f"connect() failed ({exc.errno}: {exc.strerror})")


def timed_out(phase: Phase) -> UpstreamError:
    kind = Failure.CONNECT_TIMEOUT if phase is Phase.CONNECT else Failure.READ_TIMEOUT
    return UpstreamError(kind, phase, TIMED_OUT)


def closed(phase: Phase, exc=None) -> UpstreamError:
    """The peer closed (exc None) or reset the connection."""
    if exc is None:
        return UpstreamError(Failure.CLOSED_PREMATURELY, phase, CLOSED)
    errno = getattr(exc, "errno", None) or 104
    strerror = getattr(exc, "strerror", None) or "Connection reset by peer"
    return UpstreamError(Failure.RESET, phase, f"recv() failed ({errno}: {strerror})")


def invalid_header(detail: str, logged: bool = False) -> UpstreamError:
    return UpstreamError(Failure.INVALID_HEADER, Phase.HEADER, detail, logged)
