"""A bounded body filter's held output (gunzip: filters/gzip.py Inflate) through an upstream
exchange (proxy/exchange.py).

One upstream read may inflate to its size times the compression ratio; the filter gives at most
gunzip_buffers' worth per call and says `pending` while it holds more. The exchange calls
`step` after each read and when the client's connection drains (downstream_resumed).

States (ex.drain):

    None          nothing held
    "draining"    output held: the upstream is not read until the client took it
    "complete"    the upstream response also ended: the exchange's end waits for the output

`step(ex)` writes steps while the client's connection takes them without pausing; it returns
True while output is still held (or the response was just completed), False once everything
went out and the upstream may be read again.

With SSI or addition (filters/postpone.py PostponeChain) the output may wait behind a running
subrequest instead of the client: step stops then (the upstream stays paused) and the chain's
root wakes it once that queue went out.
"""
from __future__ import annotations

from ngate.filters.postpone import PostponeChain
from ngate.proxy.exchange_state import STREAMING
from ngate.server import flow


def _wake(ex) -> None:
    """A postponed response's queue went out while gunzip waited: drain on, as when the
    client's connection drains (the exchange's downstream_resumed)."""
    if ex.drain is not None and ex.filter is not None:
        ex.downstream_resumed()


def step(ex) -> bool:
    f = ex.filter
    conn = ex.conn
    while f.pending and ex.state is STREAMING and not conn.write_paused and not conn.closing:
        if f.__class__ is PostponeChain and f.blocked:
            f.root.wake = lambda: _wake(ex)     # the queue went out: go on (postpone.py)
            break
        ex._filter_out(f.more())
    if f.pending and ex.state is STREAMING and not conn.closing:
        if ex.drain is None:
            ex.drain = "draining"
        flow.pause(ex.uconn)
        return True
    complete = ex.drain == "complete"
    ex.drain = None
    if complete:
        ex.response_end()
        return True
    return False
