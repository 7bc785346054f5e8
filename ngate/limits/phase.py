"""nginx's PREACCESS phase: limit_req, then limit_conn (the order nginx 1.22 runs them), after
the location's rewrite phase and before access (allow/deny) and the content handler.

Both act once per request (r->main in nginx): once a module has decided (`$limit_req_status`,
`$limit_conn_status` set), an internal redirect or a resumed delay does not count the request
again.

limit_req (ngx_http_limit_req_handler): each limit's key is looked up in its zone in order; all
but the last only hold their slot (AGAIN), the last one charges it; a limit whose excess is above
its burst rejects (503 or limit_req_status; "limiting requests, excess: 1.000 by zone" at
limit_req_log_level) and releases the held ones. Then the held slots are charged and the request
waits for the largest delay over `delay=` (nodelay: never), "delaying request" one level below:
the delay is a timer, the request then goes on. A request is not charged when a zone is full and
nothing can be evicted ("could not allocate node", alert): 503 too. `limit_req_dry_run` logs and
sets the status, and lets the request through undelayed.

limit_conn (ngx_http_limit_conn_handler): each limit's key takes a slot in its zone until the
request ends (its access log line); a WebSocket tunnel keeps it until the tunnel closes. At the
limit, "limiting connections by zone" and 503 (limit_conn_status); the slots this request took
are given back at once.

An empty key is not counted (nginx); a key above 65535 bytes (limit_req) or 255 (limit_conn) is
logged and skipped.
"""
from __future__ import annotations

from time import monotonic_ns
from zlib import crc32

from ngate.http import phases
from ngate.limits.req_table import AGAIN, BUSY, ERROR, OK
from ngate.observability import error_log

DELAYED = -1                  # preaccess(): the request waits on a timer

# $limit_req_status / $limit_conn_status values (index 0: not set)
REQ_STATUS = (None, "PASSED", "DELAYED", "REJECTED", "DELAYED_DRY_RUN", "REJECTED_DRY_RUN")
REQ_PASSED, REQ_DELAYED, REQ_REJECTED, REQ_DELAYED_DRY, REQ_REJECTED_DRY = 1, 2, 3, 4, 5
CONN_STATUS = (None, "PASSED", "REJECTED", "REJECTED_DRY_RUN")
CONN_PASSED, CONN_REJECTED, CONN_REJECTED_DRY = 1, 2, 3

# every LimitState of this process that holds limit_conn slots (given back at worker exit)
_HOLDING: set = set()


class LimitState:
    """What the limit modules decided for one request (ctx.limits), and the limit_conn slots
    it holds."""
    __slots__ = ("req_status", "conn_status", "held")

    def __init__(self) -> None:
        self.req_status = 0
        self.conn_status = 0
        self.held = None          # [(ConnTable, slot), ...]

    def hold(self, table, idx: int) -> None:
        if self.held is None:
            self.held = []
            _HOLDING.add(self)
        self.held.append((table, idx))

    def release(self) -> None:
        """Give back the limit_conn slots (the request or its tunnel ended)."""
        held = self.held
        if held:
            self.held = None
            _HOLDING.discard(self)
            for table, idx in reversed(held):
                table.release(idx)


def release_all() -> None:
    """Worker exit: whatever requests still hold is given back (an aborted connection may never
    reach its log phase)."""
    for state in list(_HOLDING):
        state.release()


def state_of(ctx) -> LimitState:
    st = ctx.limits
    if st is None:
        st = ctx.limits = LimitState()
        ctx.rare = True     # (http/context.py _GUARDED)
    return st


def key_bytes(key: str) -> bytes:
    try:
        return key.encode("latin-1")
    except UnicodeEncodeError:
        return key.encode("utf-8", "surrogateescape")


def _milli(excess: int) -> str:
    return f"{excess // 1000}.{excess % 1000:03d}"


# ---------------------------------------------------------------- the phase

def preaccess(ctx, lim) -> int:
    """0: go on; a status: reject with it; DELAYED: the request resumes later by itself."""
    if lim.req:
        rc = limit_req(ctx, lim)
        if rc:
            return rc
    if lim.conn:
        return limit_conn(ctx, lim)
    return 0


def limit_req(ctx, lim, now: int | None = None) -> int:
    st = ctx.limits
    if st is not None and st.req_status:
        return 0
    limits = lim.req
    if now is None:
        now = monotonic_ns() // 1_000_000
    if len(limits) == 1:                      # the common case, without the bookkeeping
        limit = limits[0]
        zone = limit.zone
        key = zone.key.render(ctx)
        if not key:
            return 0
        try:
            kb = key.encode("latin-1")
        except UnicodeEncodeError:
            kb = key.encode("utf-8", "surrogateescape")
        if len(kb) > 65535:
            return _too_long(ctx, zone, key)
        rc, excess, _ = zone.table.lookup(kb, crc32(kb), zone.rate, limit.burst, True, now)
        if st is None:
            st = ctx.limits = LimitState()
            ctx.rare = True     # (http/context.py _GUARDED)
        if rc == OK and excess <= limit.delay:
            st.req_status = REQ_PASSED
            return 0
        return _decide(ctx, lim, st, rc, excess, limit, (), now)
    rc = None
    excess = 0
    held = []                   # (limit, slot) of the limits that only held their slot
    n = 0
    count = len(limits)
    limit = None
    while n < count:
        limit = limits[n]
        zone = limit.zone
        key = zone.key.render(ctx)
        if key:
            kb = key_bytes(key)
            if len(kb) > 65535:
                _too_long(ctx, zone, key)
            else:
                rc, excess, idx = zone.table.lookup(kb, crc32(kb), zone.rate, limit.burst,
                                                    n == count - 1, now)
                if rc != AGAIN:
                    break
                held.append((limit, idx))
        n += 1
    if rc is None:
        return 0
    return _decide(ctx, lim, state_of(ctx), rc, excess, limit, held, now)


def _too_long(ctx, zone, key: str) -> int:
    error_log.error(f'the value of the "{zone.key.text}" key is more than 65535 bytes: "{key}"'
                    + error_log.request_suffix(ctx), ctx.conn.number)
    return 0


def _decide(ctx, lim, st, rc, excess, limit, held, now) -> int:
    """The rest of ngx_http_limit_req_handler once the lookups are done."""
    dry = lim.req_dry_run
    if rc == BUSY or rc == ERROR:
        if rc == BUSY:
            error_log.log(lim.req_log_level,
                          f"limiting requests{', dry run' if dry else ''}, excess: "
                          f'{_milli(excess)} by zone "{limit.zone.name}"'
                          + error_log.request_suffix(ctx), ctx.conn.number)
        else:
            error_log.alert(f'could not allocate node in limit_req zone "{limit.zone.name}"')
        for lm, idx in held:
            lm.zone.table.unhold(idx)
        st.req_status = REQ_REJECTED_DRY if dry else REQ_REJECTED
        return 0 if dry else lim.req_status
    if rc == AGAIN:
        excess = 0
    delay, excess, limit = _account(held, excess, limit, now)
    if not delay:
        st.req_status = REQ_PASSED
        return 0
    error_log.log(lim.req_delay_level,
                  f"delaying request{', dry run' if dry else ''}, excess: {_milli(excess)}, "
                  f'by zone "{limit.zone.name}"' + error_log.request_suffix(ctx), ctx.conn.number)
    if dry:
        st.req_status = REQ_DELAYED_DRY
        return 0
    st.req_status = REQ_DELAYED
    ctx.conn.runtime.loop.call_later(delay / 1000, _resume, ctx)
    return DELAYED


def _account(held, excess: int, limit, now: int):
    """ngx_http_limit_req_account: charge the held slots; (delay ms, its excess, its limit)."""
    if excess <= limit.delay:
        max_delay = 0
    else:
        max_delay = (excess - limit.delay) * 1000 // limit.zone.rate
    for lm, idx in reversed(held):
        zone = lm.zone
        ex = zone.table.account(idx, zone.rate, now)
        if ex <= lm.delay:
            continue
        delay = (ex - lm.delay) * 1000 // zone.rate
        if delay > max_delay:
            max_delay, excess, limit = delay, ex, lm
    return max_delay, excess, limit


def _resume(ctx) -> None:
    """A delayed request goes on (unless its client left meanwhile: already logged as 499)."""
    if ctx.logged or ctx.conn.closing:
        return
    phases.guarded(phases.access_phase, ctx)


def limit_conn(ctx, lim) -> int:
    st = ctx.limits
    if st is not None and st.conn_status:
        return 0
    for limit in lim.conn:
        zone = limit.zone
        key = zone.key.render(ctx)
        if not key:
            continue
        kb = key_bytes(key)
        if len(kb) > 255:
            error_log.error(f'the value of the "{zone.key.text}" key is more than 255 bytes: '
                            f'"{key}"' + error_log.request_suffix(ctx), ctx.conn.number)
            continue
        st = state_of(ctx)
        st.conn_status = CONN_PASSED
        rc, idx = zone.table.acquire(kb, crc32(kb), limit.conn)
        if rc == OK:
            st.hold(zone.table, idx)
            continue
        dry = lim.conn_dry_run
        if rc == ERROR:
            error_log.crit(f'ngx_slab_alloc() failed: no memory in limit_conn_zone "{zone.name}"')
        else:
            error_log.log(lim.conn_log_level,
                          f"limiting connections{', dry run,' if dry else ''} by zone "
                          f'"{zone.name}"' + error_log.request_suffix(ctx), ctx.conn.number)
        st.release()
        st.conn_status = CONN_REJECTED_DRY if dry else CONN_REJECTED
        return 0 if dry else lim.conn_status
    return 0


# ---------------------------------------------------------------- variables

def req_status_variable(ctx):
    st = ctx.limits
    return None if st is None else REQ_STATUS[st.req_status]


def conn_status_variable(ctx):
    st = ctx.limits
    return None if st is None else CONN_STATUS[st.conn_status]


VARIABLES = {"limit_req_status": req_status_variable, "limit_conn_status": conn_status_variable}
