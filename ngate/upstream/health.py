"""Passive health of upstream peers (nginx's max_fails and fail_timeout), per worker or in a
zone's shared memory (shared_state.py).

Passive health follows nginx, in whole seconds of wall-clock time (ngx_time()): a failure counts
(`fails`, `accessed = checked = now`); a peer with `fails >= max_fails` is skipped while
`now - checked <= fail_timeout`; selecting a peer whose `checked` is older than fail_timeout
moves `checked` to now, and a success after that (`accessed < checked`) forgets the failures.
A group with a single primary never tracks health (nginx's `peers->single`), nor does a group
nginx makes per request (proxy_pass with variables, Upstream.per_request): only the
configuration's groups hold peer state, so it does not grow with the addresses a resolver returns.
Peer state belongs to its group of one configuration (`Upstream.state.peers`, keyed by address
and position), as nginx's lives in the peers of one cycle: a reload, or another configuration
in the same process, starts afresh; with `zone` the entries are views of the zone's slots,
shared by the workers of that configuration (shared_state.py).

`take` counts a connection (least_conn, random two, max_conns) and `release` gives it back; with
`zone`, report_failure, report_success and release hold the zone's lock once.
"""
from __future__ import annotations

import time

from ngate.config.model import Upstream, UpstreamServer


class PeerHealth:
    __slots__ = ("fails", "accessed", "checked", "conns", "current_weight", "effective_weight")

    def __init__(self, weight: int = 1) -> None:
        self.fails = 0
        self.accessed = 0
        self.checked = 0
        self.conns = 0
        self.current_weight = 0
        self.effective_weight = weight


def peer_key(server: UpstreamServer) -> tuple:
    return (server.unix or server.host, server.port, server.slot)


def health(server: UpstreamServer, peers: dict) -> PeerHealth:
    """The state of `server` in its group's `peers` (Upstream.state.peers), made on first use."""
    key = peer_key(server)
    h = peers.get(key)
    if h is None:
        h = peers[key] = PeerHealth(server.weight)
    return h


def now_seconds() -> int:
    return int(time.time())


def usable(server: UpstreamServer, now: int, peers: dict) -> bool:
    if server.down:
        return False
    h = peers.get(peer_key(server))
    if h is None:
        return True
    if server.max_conns and h.conns >= server.max_conns:
        return False
    return server.max_fails == 0 or not (
        h.fails >= server.max_fails and now - h.checked <= server.fail_timeout)


def selected(h: PeerHealth, server: UpstreamServer, now: int) -> None:
    if now - h.checked > server.fail_timeout:
        h.checked = now


def _single(upstream: Upstream) -> bool:
    return len(upstream.servers) == 1


def report_failure(upstream: Upstream, server: UpstreamServer) -> bool:
    """Count a failure; True when the peer is now disabled (nginx then warns "upstream server
    temporarily disabled"). A per-request group's peer (max_fails 1) is disabled for its
    request only: the request's `tried` keeps it, nothing here does."""
    if _single(upstream):
        return False
    if upstream.per_request:
        return True
    zone = upstream.zone
    if zone is None:
        return _failed(upstream, server)
    zone.table.lock()
    try:
        return _failed(upstream, server)
    finally:
        zone.table.unlock()


def _failed(upstream: Upstream, server: UpstreamServer) -> bool:
    h = health(server, upstream.state.peers)
    now = now_seconds()
    h.fails += 1
    h.accessed = h.checked = now
    if server.max_fails:
        h.effective_weight = max(0, h.effective_weight - server.weight // server.max_fails)
        return h.fails >= server.max_fails
    return False


def report_success(upstream: Upstream, server: UpstreamServer) -> None:
    h = upstream.state.peers.get(peer_key(server))
    if h is None:
        return
    if h.accessed < h.checked:
        zone = upstream.zone
        if zone is None:
            h.fails = 0
            return
        # read without the lock first: most successes have nothing to forget
        zone.table.lock()
        try:
            if h.accessed < h.checked:
                h.fails = 0
        finally:
            zone.table.unlock()


def release(upstream: Upstream, server: UpstreamServer) -> None:
    """Give back the connection `take` counted (least_conn, random two, max_conns)."""
    h = health(server, upstream.state.peers)
    zone = upstream.zone
    if zone is None:
        h.conns -= 1
        return
    zone.table.lock()
    try:
        h.conns -= 1
    finally:
        zone.table.unlock()
