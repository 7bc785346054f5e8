"""Groups nginx makes per request (proxy_pass with variables: a resolved name's addresses, an IP
literal): their peers keep no state in the worker, so no peer state grows with the
addresses a resolver returns over time (churning pod IPs), while the configuration's groups
keep max_fails/fail_timeout."""
from __future__ import annotations

import time
from types import SimpleNamespace

from ngate.config.model import Upstream, UpstreamServer
from ngate.proxy.resolve import resolve_proxy_url
from ngate.resolver import hook
from ngate.upstream.balancer import balancer_for, report_failure, report_success
from ngate.upstream.health import usable


def _pick_all(up: Upstream) -> list:
    """One request: take a peer, fail it, take the next, ..., until none is left."""
    tried, order = set(), []
    b = balancer_for(up)
    while (peer := b.take(None, tried)) is not None:
        order.append(peer.host)
        report_failure(up, peer)
        tried.add(peer)
    return order


def test_churning_resolved_addresses_leave_no_peer_state():
    groups = []
    for n in range(3000):
        addrs = (f"10.{n // 250}.{n % 250}.1", f"10.{n // 250}.{n % 250}.2")
        up = hook.group("svc.test", 8080, addrs)
        groups.append(up)
        assert _pick_all(up) == list(addrs)        # each request in the resolver's order
        report_success(up, up.servers[1])
        assert report_failure(up, up.servers[0]) is True    # nginx warns "temporarily disabled"
    assert not any(up.state.peers for up in groups)
    assert len(hook._GROUPS) <= 1024


def test_every_request_starts_at_the_first_address():
    up = hook.group("rr.test", 80, ("10.0.0.1", "10.0.0.2"))
    b = balancer_for(up)
    assert [b.take(None, set()).host for _ in range(3)] == ["10.0.0.1"] * 3


def test_address_literals_in_variables_are_bounded_too():
    config = SimpleNamespace(upstreams={}, implicit={})
    groups = {resolve_proxy_url(config, f"http://10.1.{n // 250}.{n % 250}:81/")[0]
              for n in range(3000)}
    assert all(up.per_request for up in groups)
    from ngate.proxy import resolve
    assert len(resolve._IMPLICIT) <= 1024


def test_a_configured_group_still_counts_failures():
    servers = (UpstreamServer(host="10.9.0.1", port=80, max_fails=1, name="a"),
               UpstreamServer(host="10.9.0.2", port=80, slot=1, name="b"))
    up = Upstream(name="static-per-request-test", servers=servers)
    assert report_failure(up, servers[0]) is True
    assert not usable(servers[0], int(time.time()), up.state.peers)
    assert balancer_for(up).take(None, set()) is servers[1]
