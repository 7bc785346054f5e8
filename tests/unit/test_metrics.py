"""The tunnel-duration histogram kept as plain bucket counts (observability/metrics.py): its
Prometheus text is what a prometheus_client Histogram with the same buckets would expose."""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from ngate.observability.metrics import BUCKETS, TunnelCollector


class Tunnel:
    def __init__(self, location: str, age: float) -> None:
        self.location = location
        self.protocol = "http/1.1"
        self.sent_up, self.sent_down = 3, 4
        self.started = time.monotonic() - age


def samples(registry) -> dict:
    lines = generate_latest(registry).decode().splitlines()
    out = {}
    for line in lines:
        if line.startswith("ngate_websocket_tunnel_duration_seconds_bucket"):
            name, value = line.rsplit(" ", 1)
            labels = dict(kv.split("=") for kv in name[name.index("{") + 1:-1].split(","))
            assert labels["protocol"] == '"http/1.1"'
            out[(labels["location"], labels["le"])] = float(value)
        elif line.startswith("ngate_websocket_tunnel_duration_seconds_count"):
            out[line.split("{")[1].split("}")[0], "count"] = float(line.rsplit(" ", 1)[1])
    return out


def test_duration_buckets_match_prometheus_client():
    ages = {"/a": [0.5, 5, 59, 61, 7200, 100000], "/b": [0.9, 9.9]}
    ours = TunnelCollector()
    ours_reg = CollectorRegistry()
    ours_reg.register(ours)
    ref_reg = CollectorRegistry()
    ref = Histogram("ngate_websocket_tunnel_duration_seconds", "x", ["location", "protocol"],
                    registry=ref_reg, buckets=BUCKETS)
    for loc, values in ages.items():
        for age in values:
            ours.closed(Tunnel(loc, age))
            ref.labels(loc, "http/1.1").observe(age)
    got, want = samples(ours_reg), samples(ref_reg)
    assert got == want
    assert got['location="/a",protocol="http/1.1"', "count"] == 6
    assert got['"/a"', '"60.0"'] == 3


def values(registry) -> dict:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in generate_latest(registry).decode().splitlines()
            if line.startswith("ngate_") and "_bucket" not in line}


def test_open_tunnels_are_the_workers_and_count_as_upgrades():
    """Nothing is counted when a tunnel opens: the open gauge, the upgrades and the bytes of open
    tunnels come from the worker's set of open tunnels at scrape; a tunnel that closes moves
    from it to the counters without changing upgrades_total."""
    ours = TunnelCollector()
    reg = CollectorRegistry()
    reg.register(ours)
    a1, a2, b = Tunnel("/a", 2), Tunnel("/a", 3), Tunnel("/b", 0.5)
    open_now = {a1, a2, b}
    ours.tunnels = open_now
    lab = 'location="/a",protocol="http/1.1"'
    first = values(reg)
    assert first[f"ngate_websocket_tunnels_open{{{lab}}}"] == 2
    assert first[f"ngate_websocket_upgrades_total{{{lab}}}"] == 2
    assert first[f'ngate_websocket_bytes_total{{direction="to_upstream",{lab}}}'] == 6
    assert first['ngate_websocket_upgrades_total{location="/b",protocol="http/1.1"}'] == 1
    assert f"ngate_websocket_tunnel_duration_seconds_count{{{lab}}}" not in first
    open_now.discard(a1)            # the runtime's tunnel_closed, then the collector's closed
    ours.closed(a1)
    a1.sent_up = 100                # (bytes after the close are not counted again)
    after = values(reg)
    assert after[f"ngate_websocket_tunnels_open{{{lab}}}"] == 1
    assert after[f"ngate_websocket_upgrades_total{{{lab}}}"] == 2
    assert after[f'ngate_websocket_bytes_total{{direction="to_upstream",{lab}}}'] == 6
    assert after[f'ngate_websocket_bytes_total{{direction="to_client",{lab}}}'] == 8
    assert after[f"ngate_websocket_tunnel_duration_seconds_count{{{lab}}}"] == 1
    open_now.clear()
    ours.closed(a2)
    ours.closed(b)
    done = values(reg)
    assert done[f"ngate_websocket_tunnels_open{{{lab}}}"] == 0
    assert done[f"ngate_websocket_upgrades_total{{{lab}}}"] == 2
    assert done['ngate_websocket_upgrades_total{location="/b",protocol="http/1.1"}'] == 1
    assert done['ngate_websocket_tunnels_open{location="/b",protocol="http/1.1"}'] == 0
