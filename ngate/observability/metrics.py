"""Tunnel metrics per location, in the Prometheus text format (the `metrics;` location handler).

Nothing is counted on the byte path: a tunnel already keeps its byte counts, so the numbers are
gathered when a tunnel opens or closes (plain dict updates) and, for tunnels still open, when the
metrics are scraped. The location label is the location's pattern as written in the config;
protocol is the client's: "http/1.1" (an Upgrade) or "h2" (RFC 8441, ngate/http2/websocket.py).
Each worker process has its own registry: with several workers a scrape answers for the worker
that accepted it.

  ngate_websocket_tunnels_open{location,protocol}              gauge
  ngate_websocket_upgrades_total{location,protocol}            counter
  ngate_websocket_bytes_total{location,protocol,direction}     counter, direction: to_upstream | to_client
  ngate_websocket_tunnel_duration_seconds{location,protocol}   histogram (closed tunnels)
"""
from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from ngate.http import respond

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
LABELS = ["location", "protocol"]
BUCKETS = (1, 10, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600)    # seconds, then +Inf


class TunnelCollector:
    """Upgrades, closed tunnels' bytes and durations kept as plain counters (a lock-free list of
    bucket counts per location, not a prometheus_client Histogram: its lock and label lookup
    cost showed in the handshake profile); open tunnels are read at scrape."""

    def __init__(self) -> None:
        self.upgrades: Counter = Counter()
        self.bytes_up: Counter = Counter()
        self.bytes_down: Counter = Counter()
        self.open: set = set()
        self.durations: dict = {}       # location -> [count per bucket ..., +Inf count, sum]

    def opened(self, tunnel) -> None:
        self.upgrades[tunnel.location, tunnel.protocol] += 1
        self.open.add(tunnel)

    def closed(self, tunnel) -> None:
        self.open.discard(tunnel)
        loc = tunnel.location, tunnel.protocol
        self.bytes_up[loc] += tunnel.sent_up
        self.bytes_down[loc] += tunnel.sent_down
        seconds = time.monotonic() - tunnel.started
        counts = self.durations.get(loc)
        if counts is None:
            counts = self.durations[loc] = [0] * (len(BUCKETS) + 1) + [0.0]
        counts[bisect_left(BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def collect(self):
        open_now, up, down = Counter(), Counter(self.bytes_up), Counter(self.bytes_down)
        for t in self.open:
            key = t.location, t.protocol
            open_now[key] += 1
            up[key] += t.sent_up
            down[key] += t.sent_down
        gauge = GaugeMetricFamily("ngate_websocket_tunnels_open", "Open Upgrade tunnels",
                                  labels=LABELS)
        for key in sorted(set(open_now) | set(self.upgrades)):
            gauge.add_metric(key, open_now[key])
        yield gauge
        upgrades = CounterMetricFamily("ngate_websocket_upgrades", "Upgrade tunnels started",
                                       labels=LABELS)
        for key, n in sorted(self.upgrades.items()):
            upgrades.add_metric(key, n)
        yield upgrades
        nbytes = CounterMetricFamily("ngate_websocket_bytes", "Bytes tunnelled",
                                     labels=[*LABELS, "direction"])
        for key in sorted(set(up) | set(down)):
            nbytes.add_metric([*key, "to_upstream"], up[key])
            nbytes.add_metric([*key, "to_client"], down[key])
        yield nbytes
        yield self._durations()

    def _durations(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily("ngate_websocket_tunnel_duration_seconds",
                                       "Lifetime of closed tunnels", labels=LABELS)
        for key, counts in sorted(self.durations.items()):
            buckets, total = [], 0
            for bound, n in zip((*BUCKETS, float("inf")), counts):
                total += n
                buckets.append((floatToGoString(bound), total))
            family.add_metric(key, buckets, sum_value=counts[-1])
        return family


REGISTRY = CollectorRegistry()
TUNNELS = TunnelCollector()
REGISTRY.register(TUNNELS)


def metrics_handler(ctx) -> None:
    respond.send_response(ctx, 200, generate_latest(REGISTRY), CONTENT_TYPE)
