"""Peer selection: one small class per balancer, chosen by name (rules are data).

Passive health follows nginx: a peer that failed `max_fails` times within `fail_timeout` is
skipped for `fail_timeout`; a group with a single server never marks it down (nginx's
`peers->single`). Health is keyed by (group name, address).
"""
from __future__ import annotations

import random
import time
import zlib

from ngate.config.model import Upstream, UpstreamServer


class PeerHealth:
    __slots__ = ("fails", "checked", "conns")

    def __init__(self) -> None:
        self.fails = 0
        self.checked = 0.0
        self.conns = 0


PEER_HEALTH: dict[tuple, PeerHealth] = {}


def health(server: UpstreamServer, group: str = "") -> PeerHealth:
    key = (group, server.unix or server.host, server.port)
    h = PEER_HEALTH.get(key)
    if h is None:
        h = PEER_HEALTH[key] = PeerHealth()
    return h


def usable(server: UpstreamServer, now: float, group: str = "") -> bool:
    if server.down:
        return False
    if server.max_fails == 0:
        return True
    h = PEER_HEALTH.get((group, server.unix or server.host, server.port))
    if h is None:
        return True
    if h.fails >= server.max_fails and now - h.checked <= server.fail_timeout:
        return False
    return True


def report_failure(upstream: Upstream, server: UpstreamServer) -> bool:
    """Count a failure; True when the peer is now disabled (nginx then warns "upstream server
    temporarily disabled")."""
    if len(upstream.servers) == 1:
        return False
    h = health(server, upstream.name)
    now = time.monotonic()
    if now - h.checked > server.fail_timeout:
        h.fails = 0
    h.fails += 1
    h.checked = now
    return server.max_fails != 0 and h.fails >= server.max_fails


def report_success(upstream: Upstream, server: UpstreamServer) -> None:
    h = PEER_HEALTH.get((upstream.name, server.unix or server.host, server.port))
    if h is not None and h.fails:
        h.fails = 0


class RoundRobin:
    """nginx's smooth weighted round robin; backup servers only when every primary is unusable."""
    __slots__ = ("primary", "backup", "current", "group")

    def __init__(self, upstream: Upstream) -> None:
        self.group = upstream.name
        self.primary = [s for s in upstream.servers if not s.backup]
        self.backup = [s for s in upstream.servers if s.backup]
        self.current = {}

    def select(self, ctx, tried: set) -> UpstreamServer | None:
        if len(self.primary) == 1 and not self.backup:
            s = self.primary[0]
            return None if (s.down or s in tried) else s
        return self._pick(self.primary, tried) or self._pick(self.backup, tried)

    def _pick(self, servers, tried) -> UpstreamServer | None:
        now = time.monotonic()
        best = None
        total = 0
        cur = self.current
        for s in servers:
            if s in tried or not usable(s, now, self.group):
                continue
            w = cur.get(s, 0) + s.weight
            cur[s] = w
            total += s.weight
            if best is None or w > cur[best]:
                best = s
        if best is not None:
            cur[best] -= total
        return best


    def candidates(self, servers, tried) -> list:
        """The servers not tried yet for this request and not marked down or failed."""
        now = time.monotonic()
        return [s for s in servers if s not in tried and usable(s, now, self.group)]


class LeastConn(RoundRobin):
    __slots__ = ()

    def _pick(self, servers, tried):
        cands = self.candidates(servers, tried)
        if not cands:
            return None
        return min(cands, key=lambda s: health(s, self.group).conns / s.weight)


class IpHash(RoundRobin):
    """nginx hashes the first three octets of an IPv4 client address."""
    __slots__ = ()

    def select(self, ctx, tried):
        addr = ".".join(ctx.conn.remote_addr.split(".")[:3])
        for group in (self.primary, self.backup):
            cands = self.candidates(group, tried)
            if cands:
                return cands[zlib.crc32(addr.encode()) % len(cands)]
        return None


class Hash(RoundRobin):
    __slots__ = ("key",)

    def __init__(self, upstream: Upstream) -> None:
        super().__init__(upstream)
        self.key = upstream.hash_key

    def select(self, ctx, tried):
        cands = self.candidates(self.primary, tried)
        if not cands:
            return None
        k = self.key.render(ctx) if self.key is not None else ""
        return cands[zlib.crc32(k.encode("latin-1", "replace")) % len(cands)]


class Random(RoundRobin):
    __slots__ = ()

    def _pick(self, servers, tried):
        cands = self.candidates(servers, tried)
        if not cands:
            return None
        return random.choices(cands, weights=[s.weight for s in cands])[0]


BALANCERS = {
    "round_robin": RoundRobin,
    "least_conn": LeastConn,
    "ip_hash": IpHash,
    "hash": Hash,
    "random": Random,
}

_INSTANCES: dict[int, RoundRobin] = {}


def balancer_for(upstream: Upstream) -> RoundRobin:
    """The worker's balancer for an upstream group (state kept per group object)."""
    b = _INSTANCES.get(id(upstream))
    if b is None:
        b = _INSTANCES[id(upstream)] = BALANCERS[upstream.balancer](upstream)
    return b
