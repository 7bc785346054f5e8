"""stub_status (ngx_http_stub_status_module): connection and request counts of all workers.

Shared counters: the master maps one anonymous shared page before it forks the workers (nginx
keeps its ngx_stat_* counters in shared memory the same way). Each live worker owns one slot
and is its only writer, so no atomics are needed; readers sum the slots. A slot's totals
(accepts, handled, requests) outlive its worker (they are totals since start, across reloads);
its gauges (active, reading, writing) are zeroed by the master when the worker exits, and the
slot is then free for a new worker.

What a worker counts (only when the config uses stub_status or a $connections_* variable,
decided when the config is compiled; otherwise WorkerRuntime.stats is None and nothing runs):
  accepts, handled   a connection accepted (PROXY/TLS acceptors hand over without counting again)
  active             the worker's open client connections and tunnels
  requests, reading  the first byte of a request head; reading ends when the head is parsed
  writing            from when the request starts (a pipelined one: when its turn comes) until
                     it is logged or its connection is gone (a tunnel: until it ends)
  waiting            active - reading - writing, as nginx's idle keep-alive connections
"""
from __future__ import annotations

import mmap

from ngate.http import phases, respond

MAX_SLOTS = 256
FIELDS = 8
ACCEPTS, HANDLED, REQUESTS, ACTIVE, READING, WRITING = range(6)
_GAUGES = (ACTIVE, READING, WRITING)
TEXT_PLAIN = b"text/plain"


class SharedCounters:
    """The shared page: MAX_SLOTS slots of FIELDS signed 64-bit counters."""

    def __init__(self) -> None:
        self.map = mmap.mmap(-1, MAX_SLOTS * FIELDS * 8, flags=mmap.MAP_SHARED)
        self.values = memoryview(self.map).cast("q")

    def slot(self, index: int) -> "Stats":
        return Stats(self.values[index * FIELDS:(index + 1) * FIELDS])

    def clear_gauges(self, index: int) -> None:
        base = index * FIELDS
        for f in _GAUGES:
            self.values[base + f] = 0

    def totals(self) -> list:
        v = self.values
        out = [0] * FIELDS
        for base in range(0, MAX_SLOTS * FIELDS, FIELDS):
            if v[base]:             # a slot that never accepted has nothing
                for f in range(FIELDS):
                    out[f] += v[base + f]
        return out


class Stats:
    """One worker's slot."""
    __slots__ = ("v",)

    def __init__(self, values) -> None:
        self.v = values

    def accepted(self, active: int) -> None:
        v = self.v
        v[ACCEPTS] += 1
        v[HANDLED] += 1
        v[ACTIVE] = active

    def active(self, active: int) -> None:
        self.v[ACTIVE] = active

    def head_started(self) -> None:
        v = self.v
        v[REQUESTS] += 1
        v[READING] += 1

    def head_ended(self) -> None:
        self.v[READING] -= 1

    def request_started(self, ctx) -> None:
        ctx.stat_writing = True
        ctx.rare = True     # (http/context.py _GUARDED)
        self.v[WRITING] += 1

    def request_done(self, ctx) -> None:
        ctx.stat_writing = False
        self.v[WRITING] -= 1


SHARED: SharedCounters | None = None
SLOT = 0


def shared() -> SharedCounters:
    """The page (made here when there is no master: master_process off, tests)."""
    global SHARED
    if SHARED is None:
        SHARED = SharedCounters()
    return SHARED


def use_slot(index: int) -> None:
    """In a new worker: the slot the master gave it."""
    global SLOT
    SLOT = index


def worker_stats() -> Stats:
    return shared().slot(SLOT)


def totals() -> tuple:
    """(active, accepts, handled, requests, reading, writing, waiting) over all workers."""
    t = shared().totals()
    active, reading, writing = t[ACTIVE], t[READING], t[WRITING]
    return (active, t[ACCEPTS], t[HANDLED], t[REQUESTS], reading, writing,
            max(0, active - reading - writing))


def _connections(index: int):
    """$connections_*: the counts over all workers."""
    def get(ctx):
        return str(totals()[index])
    return get


VARIABLES = {"connections_" + name: _connections(index)
             for name, index in (("active", 0), ("reading", 4), ("writing", 5), ("waiting", 6))}


# ---------------------------------------------------------------- config and content

def directive(c, lv, st) -> None:
    """`stub_status;` (an argument is accepted and ignored, as nginx 1.7.5+)."""
    c.uses_stats = True
    lv.vals["stub_status"] = True


def stub_status_handler(ctx) -> None:
    if ctx.method not in ("GET", "HEAD"):
        return phases.finalize(ctx, 405)
    active, accepts, handled, requests, reading, writing, waiting = totals()
    body = (f"Active connections: {active} \n"
            "server accepts handled requests\n"
            f" {accepts} {handled} {requests} \n"
            f"Reading: {reading} Writing: {writing} Waiting: {waiting} \n").encode("ascii")
    respond.send_response(ctx, 200, body, TEXT_PLAIN)

