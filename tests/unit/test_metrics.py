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
            t = Tunnel(loc, age)
            ours.opened(t)
            ours.closed(t)
            ref.labels(loc, "http/1.1").observe(age)
    got, want = samples(ours_reg), samples(ref_reg)
    assert got == want
    assert got['location="/a",protocol="http/1.1"', "count"] == 6
    assert got['"/a"', '"60.0"'] == 3
