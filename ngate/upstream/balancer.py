"""Peer selection: one small class per balancer, chosen by name (rules are data).

The algorithms are nginx's (ngx_http_upstream_round_robin.c, _least_conn, _ip_hash, _hash), so the
same configuration sends the same sequence of requests to the same peers:

- round robin is smooth weighted, on each peer's `effective_weight` (lowered by a failure, raised
  back by one per selection); ties go to the first peer; backups only once every primary failed;
- least_conn takes the fewest connections per weight, round robin among ties;
- ip_hash hashes the first three octets of an IPv4 client (all 16 of IPv6) with nginx's
  `(hash * 113 + octet) % 6271` and rehashes on an unusable peer; after 20 misses, round robin;
- hash (not `consistent`) is Cache::Memcached's `((crc32([rehash] key) >> 16) & 0x7fff)` summed,
  modulo the total weight; an empty key or 20 misses fall back to round robin;
- hash ... consistent is nginx's ketama ring (ConsistentHash).

Passive health (health.py) decides which peers are usable; a request's hash sequence is replayed
from its start on each try: the peers it already tried are among the misses, so they add to the 20.

A group with `zone` keeps that state in shared memory (shared_state.py): its peers' entries
(Upstream.state.peers) are views of the zone's slots, and each pick (`take`: the selection and the connection it counts),
`release`, `report_failure` and `report_success` hold the zone's lock once.
"""
from __future__ import annotations

import bisect
import ipaddress
import random
import zlib

from ngate.config.model import Upstream, UpstreamServer
from ngate.upstream.health import health, now_seconds, peer_key, selected, usable
# where other modules import them from (proxy/http_proxy.py, cache/exchange.py, tests)
from ngate.upstream.health import release, report_failure, report_success  # noqa: F401

_HASH_TRIES = 20


class RoundRobin:
    """nginx's smooth weighted round robin; backup servers only when every primary is unusable."""
    __slots__ = ("primary", "backup", "peers", "counts", "single")

    def __init__(self, upstream: Upstream) -> None:
        self.peers = upstream.state.peers       # this group's, of this configuration
        self.primary = [s for s in upstream.servers if not s.backup]
        self.backup = [s for s in upstream.servers if s.backup]
        self.counts = upstream.counts_conns
        # a group of one server, not down, without max_conns nor counted connections: every
        # balancer's first pick is that server, without state (nginx's peers->single); the
        # exchange takes it without calling take() (proxy/exchange_peer.py)
        s = self.primary[0] if len(self.primary) == 1 and not self.backup else None
        self.single = s if s is not None and not s.down and not s.max_conns \
            and not self.counts else None

    def take(self, ctx, tried: set) -> UpstreamServer | None:
        """select, and count the connection to the peer when the group counts them."""
        peer = self.select(ctx, tried)
        if peer is not None and self.counts:
            health(peer, self.peers).conns += 1
        return peer

    def select(self, ctx, tried: set) -> UpstreamServer | None:
        if len(self.primary) == 1 and not self.backup:
            s = self.primary[0]
            # `tried` is empty on a first attempt: no hash of the server (a dataclass) then
            if s.down or (tried and s in tried) or (
                    s.max_conns and health(s, self.peers).conns >= s.max_conns):
                return None
            return s
        return self.select_rr(tried)

    def select_rr(self, tried: set) -> UpstreamServer | None:
        return self._pick(self.primary, tried) or self._pick(self.backup, tried)

    def candidates(self, servers, tried) -> list:
        """The servers not tried yet for this request and not marked down or failed."""
        now = now_seconds()
        return [s for s in servers if s not in tried and usable(s, now, self.peers)]

    def _pick(self, servers, tried) -> UpstreamServer | None:
        return self._smooth(self.candidates(servers, tried))

    def _smooth(self, cands) -> UpstreamServer | None:
        """One step of smooth weighted round robin over `cands` (nginx's get_peer)."""
        best = best_h = None
        total = 0
        for s in cands:
            h = health(s, self.peers)
            h.current_weight += h.effective_weight
            total += h.effective_weight
            if h.effective_weight < s.weight:
                h.effective_weight += 1
            if best is None or h.current_weight > best_h.current_weight:
                best, best_h = s, h
        if best is not None:
            best_h.current_weight -= total
            selected(best_h, best, now_seconds())
        return best


class LeastConn(RoundRobin):
    __slots__ = ()

    def select(self, ctx, tried):
        if len(self.primary) == 1 and not self.backup:
            return super().select(ctx, tried)
        return self.select_rr(tried)

    def _pick(self, servers, tried):
        cands = self.candidates(servers, tried)
        if not cands:
            return None
        peers = self.peers
        ratio = {s: health(s, peers).conns / s.weight for s in cands}
        least = min(ratio.values())
        ties = [s for s in cands if ratio[s] == least]
        if len(ties) == 1:
            selected(health(ties[0], peers), ties[0], now_seconds())
            return ties[0]
        return self._smooth(ties)


class _HashBalancer(RoundRobin):
    """Shared loop of ip_hash and hash: rehash until a usable, untried primary; after
    _HASH_TRIES misses (or without a key), round robin."""
    __slots__ = ("total_weight",)

    def __init__(self, upstream: Upstream) -> None:
        super().__init__(upstream)
        self.total_weight = sum(s.weight for s in self.primary)

    def select(self, ctx, tried):
        if len(self.primary) == 1 and not self.backup:
            return super().select(ctx, tried)
        key = self.key_of(ctx)
        if key is None:
            return self.select_rr(tried)
        now = now_seconds()
        state = [None, 0]       # the running hash, the rehash count
        for _ in range(_HASH_TRIES + 1 + len(tried)):
            w = self.next_hash(state, key) % self.total_weight
            for s in self.primary:
                if w < s.weight:
                    break
                w -= s.weight
            if s not in tried and usable(s, now, self.peers):
                selected(health(s, self.peers), s, now)
                return s
        return self.select_rr(tried)

    def key_of(self, ctx):
        raise NotImplementedError

    def next_hash(self, state: list, key) -> int:
        raise NotImplementedError


class IpHash(_HashBalancer):
    __slots__ = ()

    def key_of(self, ctx) -> bytes:
        try:
            ip = ipaddress.ip_address(ctx.conn.remote_addr)
        except ValueError:
            return b"\0\0\0"            # not an IP client (unix socket): nginx's pseudo address
        return ip.packed[:3] if ip.version == 4 else ip.packed

    def next_hash(self, state: list, key: bytes) -> int:
        h = 89 if state[0] is None else state[0]
        for octet in key:
            h = (h * 113 + octet) % 6271
        state[0] = h
        return h


class Hash(_HashBalancer):
    __slots__ = ("key",)

    def __init__(self, upstream: Upstream) -> None:
        super().__init__(upstream)
        self.key = upstream.hash_key

    def key_of(self, ctx) -> bytes | None:
        k = self.key.render(ctx) if self.key is not None else ""
        return k.encode("latin-1", "replace") if k else None

    def next_hash(self, state: list, key: bytes) -> int:
        rehash = state[1]
        data = (b"%d" % rehash if rehash else b"") + key
        state[0] = (state[0] or 0) + ((zlib.crc32(data) >> 16) & 0x7fff)
        state[1] = rehash + 1
        return state[0]


class ConsistentHash(RoundRobin):
    """`hash KEY consistent`: nginx's ketama ring. Each server (by its address text) gets
    160 points per weight, `crc32(host "\\0" port, previous point as 4 little-endian bytes)`; a
    key's crc32 finds the first point at or above it; an unusable server moves to the next point
    (round robin among the peers sharing the server); 20 misses fall back to round robin."""
    __slots__ = ("key", "points")

    def __init__(self, upstream: Upstream) -> None:
        super().__init__(upstream)
        self.key = upstream.hash_key
        points = {}
        for s in self.primary:
            host, _, port = s.name.rpartition(":") if not s.unix else (s.name[5:], "", "")
            base = zlib.crc32(host.encode() + b"\0" + port.encode())
            prev = 0
            for _ in range(160 * s.weight):
                prev = zlib.crc32(prev.to_bytes(4, "little"), base)
                points.setdefault(prev, s.name)
        self.points = sorted(points.items())

    def select(self, ctx, tried):
        if len(self.primary) == 1 and not self.backup:
            return super().select(ctx, tried)
        k = self.key.render(ctx) if self.key is not None else ""
        if not k:
            return self.select_rr(tried)
        points = self.points
        h = bisect.bisect_left(points, (zlib.crc32(k.encode("latin-1", "replace")),))
        now = now_seconds()
        for _ in range(_HASH_TRIES + 1 + len(tried)):
            name = points[h % len(points)][1]
            cands = [s for s in self.primary
                     if s.name == name and s not in tried and usable(s, now, self.peers)]
            if cands:
                return self._smooth(cands)
            h += 1
        return self.select_rr(tried)


class Random(RoundRobin):
    __slots__ = ()

    def _pick(self, servers, tried):
        cands = self.candidates(servers, tried)
        if not cands:
            return None
        return random.choices(cands, weights=[s.weight for s in cands])[0]


class RandomTwo(RoundRobin):
    """`random two [least_conn]`: two distinct random peers (by weight), the one with fewer
    connections per weight (ngx_http_upstream_get_random2_peer)."""
    __slots__ = ()

    def _pick(self, servers, tried):
        cands = self.candidates(servers, tried)
        if len(cands) < 2:
            return cands[0] if cands else None
        first = random.choices(cands, weights=[s.weight for s in cands])[0]
        rest = [s for s in cands if s is not first]
        second = random.choices(rest, weights=[s.weight for s in rest])[0]
        c1 = health(first, self.peers).conns
        c2 = health(second, self.peers).conns
        return first if c2 * first.weight > c1 * second.weight else second


BALANCERS = {
    "round_robin": RoundRobin,
    "least_conn": LeastConn,
    "ip_hash": IpHash,
    "hash": Hash,
    "hash_consistent": ConsistentHash,
    "random": Random,
    "random_two": RandomTwo,
}

class PerRequest:
    """A group nginx makes per request (proxy_pass with variables: a resolved name's addresses
    or an address; ngx_http_upstream_create_round_robin_peer, in the request's pool). Fresh
    peers of weight 1 make nginx's smooth round robin pick the first untried address, so the
    order is the resolver's (which rotates a cached answer); no state outlives the request."""
    __slots__ = ("servers", "single")

    def __init__(self, upstream: Upstream) -> None:
        self.servers = upstream.servers
        self.single = None          # (take() is the pick: RoundRobin.single)

    def take(self, ctx, tried: set) -> UpstreamServer | None:
        for s in self.servers:
            if not tried or s not in tried:
                return s
        return None


class Zoned:
    """A balancer of a group with `zone`: each pick under the zone's lock."""
    __slots__ = ("inner", "table", "single")

    def __init__(self, inner: RoundRobin, zone) -> None:
        self.inner = inner
        self.table = zone.table
        self.single = None

    def take(self, ctx, tried: set) -> UpstreamServer | None:
        table = self.table
        table.lock()
        try:
            return self.inner.take(ctx, tried)
        finally:
            table.unlock()


def _make(upstream: Upstream):
    if upstream.per_request:
        return PerRequest(upstream)
    b = BALANCERS[upstream.balancer](upstream)
    zone = upstream.zone
    if zone is None:
        return b
    peers = upstream.state.peers
    for server, h in zone.healths(upstream):
        peers[peer_key(server)] = h
    return Zoned(b, zone)


def balancer_for(upstream: Upstream):
    """The worker's balancer for an upstream group, kept on the group (Upstream.state)."""
    state = upstream.state
    b = state.value
    if b is None:
        b = state.value = _make(upstream)
    return b
