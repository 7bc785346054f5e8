"""proxy_next_upstream's rule as a pure function: may a failed try be followed by another?

nginx (ngx_http_upstream_next): the failure's condition is listed in proxy_next_upstream, the
client has not had the response head, proxy_next_upstream_timeout has not passed since the first
try, a non-idempotent request (POST, LOCK, PATCH) already sent needs `non_idempotent`, the body
can be sent again, and tries remain: as many as the group has servers not marked `down`, capped
by proxy_next_upstream_tries. The same count makes the last peer's failing response (http_*)
go to the client instead of being retried.
"""
from __future__ import annotations

NON_IDEMPOTENT = frozenset({"POST", "LOCK", "PATCH"})


def may_retry(condition: str | None, conditions, *, tries: int, servers: int,
              tries_limit: int = 0, timeout: float = 0.0, elapsed: float = 0.0,
              head_sent: bool = False, method: str = "GET", sent: bool = False,
              replayable: bool = True) -> bool:
    """`condition`: the failure's (error, timeout, invalid_header, http_502, ...; None: never
    retried); `conditions`: proxy_next_upstream's set; `tries`: tries made so far; `servers`:
    the group's servers not `down`; `elapsed`: seconds since the first try; `sent`: request
    bytes went to the failed peer; `replayable`: the request body can be sent again."""
    if condition is None or condition not in conditions or head_sent:
        return False
    if timeout and elapsed >= timeout:
        return False
    if sent and method in NON_IDEMPOTENT and "non_idempotent" not in conditions:
        return False
    if not replayable:
        return False
    if tries_limit and tries_limit < servers:
        servers = tries_limit
    return tries < servers
