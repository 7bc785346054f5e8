"""upstream `zone`: the peers' state in shared memory seen by forked processes (the workers), the
zone's configuration errors as nginx reports them, and a fresh zone per configuration."""
from __future__ import annotations

import os

import pytest

from ngate.upstream.balancer import balancer_for, health, release, report_failure
from tests.unit._config_helpers import load_http, nginx_error, ngate_error, write_conf

UPS = """
upstream u {{
    {zone}
    server 127.0.0.1:8001 max_conns=1;
    server 127.0.0.1:8002 backup;
}}
upstream f {{
    {zone2}
    server 127.0.0.1:8003;
    server 127.0.0.1:8004;
}}
server {{ listen 127.0.0.1:8000; }}
"""


def _in_child(fn) -> int:
    """Run fn() in a forked process (as a worker would); its result (a small int)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, bytes([fn()]))
        finally:
            os._exit(0)
    os.close(w)
    try:
        data = os.read(r, 1)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return data[0]


def _config(tmp_path, zoned: bool):
    zone = "zone z 64k;" if zoned else ""
    zone2 = "zone z;" if zoned else ""
    return load_http(tmp_path, UPS.format(zone=zone, zone2=zone2))


@pytest.mark.parametrize("zoned", [True, False])
def test_max_conns_counted_by_another_process(tmp_path, zoned):
    ups = _config(tmp_path, zoned).upstreams["u"]
    primary, backup = ups.servers
    # a "worker" takes the primary's only connection and keeps it
    assert _in_child(lambda: balancer_for(ups).take(None, set()).slot) == 0
    peer = balancer_for(ups).take(None, set())
    # with a zone, this process sees that connection: the backup; without, its own count is 0
    assert peer is (backup if zoned else primary)
    release(ups, peer)
    assert health(primary, ups.state.peers).conns == (1 if zoned else 0)


@pytest.mark.parametrize("zoned", [True, False])
def test_failures_and_round_robin_position_are_shared(tmp_path, zoned):
    ups = _config(tmp_path, zoned).upstreams["f"]
    first, second = ups.servers

    def fail_first():
        assert balancer_for(ups).take(None, set()) is first
        return int(report_failure(ups, first))
    assert _in_child(fail_first) == 1               # max_fails=1: disabled
    picks = [balancer_for(ups).take(None, set()) for _ in range(3)]
    assert picks == ([second] * 3 if zoned else [first, second, first])


def test_a_new_configuration_starts_afresh(tmp_path):
    """nginx's upstream zones are `noreuse`: a reload gets new memory, whatever the name."""
    old = _config(tmp_path, True).upstreams["u"]
    balancer_for(old).take(None, set())
    new = _config(tmp_path, True).upstreams["u"]
    assert balancer_for(new).take(None, set()) is new.servers[0]
    assert new.zone.table is not old.zone.table


def test_upstreams_sharing_a_zone_have_their_own_slots(tmp_path):
    cfg = _config(tmp_path, True)
    u, f = cfg.upstreams["u"], cfg.upstreams["f"]
    assert u.zone is f.zone
    assert u.zone.first == {"u": 1, "f": 3}


BAD = [
    "upstream u { zone z; server 127.0.0.1:1; }",
    "upstream u { zone z 64k; server 127.0.0.1:1; }\nupstream v { zone z 128k; server 127.0.0.1:2; }",
    "upstream u { zone z 64k; server 127.0.0.1:1; }\nlimit_req_zone $binary_remote_addr zone=z:1m rate=1r/s;",
    "limit_conn_zone $binary_remote_addr zone=z:1m;\nupstream u { zone z 64k; server 127.0.0.1:1; }",
    "upstream u { zone z 64k; server 127.0.0.1:1; }\nupstream v { zone z; server 127.0.0.1:2; }",
    "upstream v { zone z; server 127.0.0.1:2; }\nupstream u { zone z 64k; server 127.0.0.1:1; }",
    "upstream u { zone z 1k; server 127.0.0.1:1; }",
    "upstream u { zone z 64q; server 127.0.0.1:1; }",
]


@pytest.mark.parametrize("http", BAD)
def test_zone_errors_as_nginx(tmp_path, http):
    conf = write_conf(tmp_path, http + "\nserver { listen 127.0.0.1:8000; }")
    assert ngate_error(conf, str(tmp_path)) == nginx_error(conf, str(tmp_path))


def test_too_many_servers_for_the_zone(tmp_path):
    servers = "".join(f"server 127.0.0.1:{1000 + i};" for i in range(600))
    conf = write_conf(tmp_path, f"upstream u {{ zone z 32k; {servers} }}")
    assert 'upstream zone "z" is too small' in ngate_error(conf, str(tmp_path))


# ---------------------------------------------------------------- peer state per configuration

FAILOVER = """
upstream f {{
    {zone}
    server 127.0.0.1:8003 max_fails=1 fail_timeout=60s;
    server 127.0.0.1:8004;
}}
server {{ listen 127.0.0.1:8000; }}
"""


def _failover(tmp_path, zoned: bool):
    return load_http(tmp_path, FAILOVER.format(zone="zone z 64k;" if zoned else "")).upstreams["f"]


@pytest.mark.parametrize("zoned", [False, True])
def test_a_reload_starts_with_fresh_peers(tmp_path, zoned):
    """nginx keeps max_fails/fail_timeout in the peers of one configuration cycle (a zone is
    `noreuse`): the same upstream name and addresses after a reload start with no failure.
    In one process too (two configurations loaded one after the other)."""
    old = _failover(tmp_path, zoned)
    first, second = old.servers
    assert balancer_for(old).take(None, set()) is first
    assert report_failure(old, first) is True
    assert [balancer_for(old).take(None, set()) for _ in range(2)] == [second, second]
    new = _failover(tmp_path, zoned)
    assert new.name == old.name and new.servers == old.servers
    assert balancer_for(new).take(None, set()) is new.servers[0]
    # and the old configuration's workers still see their own state
    assert balancer_for(old).take(None, set()) is second


def test_two_configurations_in_one_process_are_independent(tmp_path):
    """Without a zone each worker's configuration has its own peers: a failure counted by one
    does not disable the peer for the other, nor does the other's round robin move."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = _failover(tmp_path / "a", False), _failover(tmp_path / "b", False)
    assert report_failure(a, a.servers[0]) is True
    assert [balancer_for(b).take(None, set()).slot for _ in range(4)] == [0, 1, 0, 1]
    assert [balancer_for(a).take(None, set()).slot for _ in range(2)] == [1, 1]
