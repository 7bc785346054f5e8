"""The per-worker resolver of one `resolver` directive: nginx's name resolution state machine
(ngx_resolve_name_locked, ngx_resolver_process_a, the resend and timeout handlers).

A name's `Node` is, in order:
  pending    queries sent (A, and AAAA unless ipv6=off), `waiting` requests attached; every
             5 s (nginx's resend_timeout) the queries still unanswered go again, to the next
             name server; a node nobody waits for any more is dropped then;
  resolved   addresses (valid until now + `valid=` or the lowest TTL) or a CNAME (the waiting
             requests move on to the CNAME's name, at most 50 deep); answers kept 30 s past
             their last use (nginx's expire), two stale nodes dropped per finished request;
  failed     an error code (or no address at all: NXDOMAIN): the waiting requests get it and
             the node is dropped, so errors are never cached.
A truncated UDP answer is asked again over TCP to the same server. Each request (`Waiter`) has
its own resolver_timeout; when it passes the request gets 110 (Operation timed out) while the
query goes on for the others. One query per name is in flight, whoever asks.
"""
from __future__ import annotations

import random
import time

from ngate.observability import error_log
from ngate.resolver import wire
from ngate.resolver.transport import Channel

RESEND = 5.0            # r->resend_timeout
EXPIRE = 30.0           # r->expire
MAX_RECURSION = 50      # NGX_RESOLVER_MAX_RECURSION
OK = 0


def _log(message: str) -> None:
    """A dropped response: nginx logs it on the cycle's log, at error level, with no context."""
    error_log.error(message)


class Waiter:
    """One request's resolution (ngx_resolver_ctx_t): handler(waiter, code, addrs)."""
    __slots__ = ("name", "handler", "timer", "node", "recursion", "data")

    def __init__(self, name: str, handler, data=None) -> None:
        self.name = name
        self.handler = handler
        self.timer = None
        self.node = None
        self.recursion = 0
        self.data = data

    def finish(self, code: int, addrs) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.node = None
        self.handler(self, code, addrs)

    def cancel(self) -> None:
        """ngx_resolve_name_done for a request that no longer waits (client gone)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        node = self.node
        self.node = None
        if node is not None and self in node.waiting:
            node.waiting.remove(self)


class Node:
    __slots__ = ("name", "query", "query6", "ident", "ident6", "addrs", "addrs6", "tcp", "tcp6",
                 "code", "ttl", "cname", "valid", "expire", "waiting", "last", "resend")

    def __init__(self, name: str) -> None:
        self.name = name
        self.query = self.query6 = None
        self.ident = self.ident6 = -1
        self.addrs = self.addrs6 = None      # None: asked, not answered (nginx's naddrs -1)
        self.tcp = self.tcp6 = False
        self.code = 0
        self.ttl = None
        self.cname = None
        self.valid = 0.0
        self.expire = 0.0
        self.waiting: list[Waiter] = []
        self.last = 0
        self.resend = None


class Resolver:
    def __init__(self, conf, loop) -> None:
        self.conf = conf
        self.loop = loop
        self.names: dict[str, Node] = {}
        self.cached: dict[str, Node] = {}   # resolved nodes, least recently used first
        self.channels = [Channel(self, family, addr, text)
                         for family, addr, text in conf.servers]
        self.last = 0

    # ------------------------------------------------------------ asking

    def resolve(self, waiter: Waiter, timeout: float) -> None:
        """Resolve waiter.name; its handler may run before this returns (cached answers)."""
        name = waiter.name
        if name.endswith("."):
            name = name[:-1]
        waiter.name = name = name.lower()
        self._resolve([waiter], name)
        if timeout and waiter.node is not None:     # not answered from the cache: it waits
            waiter.timer = self.loop.call_later(timeout, self._timed_out, waiter)

    def done(self) -> None:
        """After a request's resolution: drop up to two nodes unused for 30 s (ngx_resolver_expire)."""
        now = time.monotonic()
        for _ in range(2):
            if not self.cached:
                return
            name = next(iter(self.cached))
            node = self.cached[name]
            if now <= node.expire or node.waiting:
                return
            del self.cached[name]
            if self.names.get(name) is node:
                del self.names[name]

    def _resolve(self, waiters: list, name: str) -> None:
        now = time.monotonic()
        node = self.names.get(name)
        if node is not None:
            if node.valid >= now:
                self._touch(node, now)
                waiters = waiters + node.waiting
                node.waiting = []
                if node.addrs or node.addrs6:
                    addrs = export(node, True)
                    for w in waiters:
                        w.finish(OK, addrs)
                    return
                return self._follow(waiters, node.cname)
            if node.waiting:
                self._attach(node, waiters)
                return
            self.cached.pop(name, None)
        else:
            node = self.names[name] = Node(name)
        qname = wire.encode_name(name)
        if qname is None:
            del self.names[name]
            for w in waiters:
                w.finish(wire.NXDOMAIN, None)
            return
        self._ask(node, qname)
        self._attach(node, waiters)

    def _ask(self, node: Node, qname: bytes) -> None:
        node.ident = wire.new_ident()
        node.query = wire.query(node.ident, qname, wire.A)
        node.addrs = None
        if self.conf.ipv6:
            node.ident6 = wire.new_ident()
            node.query6 = wire.query(node.ident6, qname, wire.AAAA)
            node.addrs6 = None
        else:
            node.query6 = None
            node.addrs6 = []
        node.tcp = node.tcp6 = False
        node.code = 0
        node.cname = None
        node.valid = 0.0
        node.ttl = None
        n = len(self.channels)
        node.last = self.last
        self.last = (self.last + 1) % n
        if not self._send(node):            # immediately retry once on failure
            node.last = (node.last + 1) % n
            self._send(node)
        self._arm_resend(node)

    def _attach(self, node: Node, waiters: list) -> None:
        for w in waiters:
            w.node = node
        node.waiting = waiters + node.waiting

    def _send(self, node: Node) -> bool:
        ch = self.channels[node.last]
        ok = True
        if node.addrs is None:
            ok = ch.send(node.query, node.tcp)
        if ok and node.query6 is not None and node.addrs6 is None:
            ok = ch.send(node.query6, node.tcp6)
        return ok

    def _arm_resend(self, node: Node) -> None:
        if node.resend is not None:
            node.resend.cancel()
        node.resend = self.loop.call_later(RESEND, self._resend, node)

    def _resend(self, node: Node) -> None:
        node.resend = None
        if node.query is None or self.names.get(node.name) is not node:
            return
        if not node.waiting:
            del self.names[node.name]
            return
        node.last = (node.last + 1) % len(self.channels)
        self._send(node)
        self._arm_resend(node)

    def _timed_out(self, waiter: Waiter) -> None:
        waiter.timer = None
        waiter.cancel()
        waiter.handler(waiter, wire.TIMEDOUT, None)

    def _touch(self, node: Node, now: float) -> None:
        node.expire = now + EXPIRE
        self.cached.pop(node.name, None)
        self.cached[node.name] = node

    def _follow(self, waiters: list, cname: str | None) -> None:
        """A CNAME: the waiting requests resolve its target (NXDOMAIN past 50 levels)."""
        deep = [w for w in waiters if w.recursion >= MAX_RECURSION]
        for w in waiters:
            w.recursion += 1
            w.node = None
        for w in deep:
            w.finish(wire.NXDOMAIN, None)
        rest = [w for w in waiters if w not in deep]
        if rest:
            self._resolve(rest, cname or "")

    # ------------------------------------------------------------ answers

    def received(self, buf: bytes, tcp: bool, channel: Channel) -> None:
        try:
            r = wire.check_response(buf, tcp)
        except wire.DnsProblem as p:
            return _log(str(p))
        except wire.DnsError as e:
            return self._dns_error(*e.args)
        node = self.names.get(r.qname)
        aaaa = r.qtype == wire.AAAA
        if node is None or (node.query6 is None or node.addrs6 is not None if aaaa
                            else node.query is None or node.addrs is not None):
            return _log(f"unexpected DNS response for {r.qname}")
        if r.trunc and (node.tcp6 if aaaa else node.tcp):
            return
        qident = node.ident6 if aaaa else node.ident
        if r.ident != qident:
            return _log(f"wrong ident {r.ident} in DNS response for {r.qname}, "
                                 f"expect {qident}")
        if r.trunc:
            return self._truncated(node, aaaa)
        self._answer(node, r, buf, aaaa)

    def _dns_error(self, code: int, ident: int) -> None:
        text = f"DNS error ({code}: {wire.strerror(code)}), query id:{ident}"
        if code == wire.FORMERR:
            for node in self.names.values():
                if node.query is not None and ident in (node.ident, node.ident6):
                    text += f', name:"{node.name}"'
                    break
        _log(text)

    def _truncated(self, node: Node, aaaa: bool) -> None:
        if not node.waiting:
            self._drop(node)
            return
        ch = self.channels[node.last]
        if aaaa:
            node.tcp6 = True
            ch.send(node.query6, True)
        else:
            node.tcp = True
            ch.send(node.query, True)
        self._arm_resend(node)

    def _drop(self, node: Node) -> None:
        if node.resend is not None:
            node.resend.cancel()
            node.resend = None
        if self.names.get(node.name) is node:
            del self.names[node.name]
        self.cached.pop(node.name, None)

    def _set(self, node: Node, aaaa: bool, addrs: list) -> None:
        if aaaa:
            node.addrs6 = addrs
        else:
            node.addrs = addrs

    def _answer(self, node: Node, r, buf: bytes, aaaa: bool) -> None:
        other = node.addrs if aaaa else node.addrs6
        code = r.code or node.code
        if code == 0 and r.nan == 0:
            self._set(node, aaaa, [])
            if other is None:
                return
            if other:
                return self._resolved(node)
            code = wire.NXDOMAIN
        if code:
            self._set(node, aaaa, [])
            if other is None:
                node.code = code
                return
            waiters, node.waiting = node.waiting, []
            self._drop(node)
            node.query = None
            for w in waiters:
                w.finish(code, None)
            return
        try:
            addrs, cname_at, ttl, others = wire.read_answers(buf, r)
        except wire.DnsProblem as p:
            return _log(str(p))
        for rtype in others:
            _log(f"unexpected RR type {rtype} in DNS response")
        if ttl is not None:
            node.ttl = ttl if node.ttl is None else min(node.ttl, ttl)
        self._set(node, aaaa, addrs)
        if addrs and other is None:
            return
        if node.addrs is not None and node.addrs6 is not None and (node.addrs or node.addrs6):
            return self._resolved(node)
        if cname_at is None:
            return _log("no A or CNAME types in DNS response")
        if other is None:
            return
        try:
            cname = wire.copy_name(buf, cname_at)
        except wire.DnsProblem as p:
            return _log(str(p))
        self._cache(node)
        node.cname = cname
        waiters, node.waiting = node.waiting, []
        if waiters:
            self._follow(waiters, cname)

    def _cache(self, node: Node) -> None:
        now = time.monotonic()
        node.valid = now + (self.conf.valid or (node.ttl or 0))
        node.query = node.query6 = None
        if node.resend is not None:
            node.resend.cancel()
            node.resend = None
        self._touch(node, now)

    def _resolved(self, node: Node) -> None:
        self._cache(node)
        addrs = export(node, False)
        waiters, node.waiting = node.waiting, []
        for w in waiters:
            w.finish(OK, addrs)

    def close(self) -> None:
        for ch in self.channels:
            ch.close()


def export(node: Node, rotate: bool) -> tuple[str, ...]:
    """ngx_resolver_export: the IPv4 addresses then the IPv6 ones, a cached answer rotated
    (each family from a random start, the whole from a random position)."""
    v4, v6 = node.addrs or [], node.addrs6 or []
    n = len(v4) + len(v6)
    if not rotate or n == 1:
        return tuple(v4) + tuple(v6)
    out: list = [None] * n
    d = random.randrange(n)
    for family in (v4, v6):
        if family:
            j = random.randrange(len(family))
            for _ in family:
                out[d] = family[j]
                d = (d + 1) % n
                j = (j + 1) % len(family)
    return tuple(out)
