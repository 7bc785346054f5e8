"""Tunnel metrics per location, in the Prometheus text format (the `metrics;` location handler).

Nothing is counted on the byte path, nor when a tunnel opens: a tunnel already keeps its byte
counts and the worker already keeps its open tunnels (server/runtime.py `tunnels`), so the
numbers are gathered when a tunnel closes (plain counter updates) and, for tunnels still open,
when the metrics are scraped (upgrades = tunnels closed + tunnels open). The location label is
the location's pattern as written in the config; protocol is the client's: "http/1.1" (an
Upgrade) or "h2" (RFC 8441, ngate/http2/websocket.py). Each worker process has its own
registry: with several workers a scrape answers for the worker that accepted it.

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
_BOUNDS = tuple(map(float, BUCKETS))    # (bisect compares floats with floats: twice as fast)


class LocationStats:
    """The counters of one (location, protocol)'s closed tunnels: found when a tunnel closes."""
    __slots__ = ("bytes_up", "bytes_down", "counts")

    def __init__(self) -> None:
        self.bytes_up = 0
        self.bytes_down = 0
        self.counts = [0] * (len(BUCKETS) + 1) + [0.0]  # per bucket ..., +Inf, then the sum


class TunnelCollector:
    """Closed tunnels' bytes and durations kept as plain counters (a lock-free list of bucket
    counts per location, not a prometheus_client Histogram: its lock and label lookup cost showed
    in the handshake profile); open tunnels are read at scrape from `tunnels`, the worker's set
    of open tunnels (metrics_handler binds it: WorkerRuntime.tunnels)."""

    def __init__(self) -> None:
        self.locations: dict = {}       # (location, protocol) -> LocationStats (closed tunnels)
        self.tunnels = ()               # the open tunnels (each with location, protocol, sent_*)

    def closed(self, tunnel) -> None:
        key = tunnel.location, tunnel.protocol
        stats = self.locations.get(key)
        if stats is None:
            stats = self.locations[key] = LocationStats()
        stats.bytes_up += tunnel.sent_up
        stats.bytes_down += tunnel.sent_down
        seconds = time.monotonic() - tunnel.started    # (started: the loop's time, same clock)
        counts = stats.counts
        counts[bisect_left(_BOUNDS, seconds)] += 1
        counts[-1] += seconds

    def collect(self):
        locations = self.locations
        open_now = Counter()
        up = Counter({k: s.bytes_up for k, s in locations.items()})
        down = Counter({k: s.bytes_down for k, s in locations.items()})
        for t in list(self.tunnels):
            key = t.location, t.protocol
            open_now[key] += 1
            up[key] += t.sent_up
            down[key] += t.sent_down
        keys = sorted(locations.keys() | open_now.keys())   # every location a tunnel opened in
        gauge = GaugeMetricFamily("ngate_websocket_tunnels_open", "Open Upgrade tunnels",
                                  labels=LABELS)
        for key in keys:
            gauge.add_metric(key, open_now[key])
        yield gauge
        upgrades = CounterMetricFamily("ngate_websocket_upgrades", "Upgrade tunnels started",
                                       labels=LABELS)
        for key in keys:
            stats = locations.get(key)
            closed = sum(stats.counts[:-1]) if stats is not None else 0
            upgrades.add_metric(key, closed + open_now[key])
        yield upgrades
        nbytes = CounterMetricFamily("ngate_websocket_bytes", "Bytes tunnelled",
                                     labels=[*LABELS, "direction"])
        for key in keys:
            nbytes.add_metric([*key, "to_upstream"], up[key])
            nbytes.add_metric([*key, "to_client"], down[key])
        yield nbytes
        yield self._durations()

    def _durations(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily("ngate_websocket_tunnel_duration_seconds",
                                       "Lifetime of closed tunnels", labels=LABELS)
        for key, stats in sorted(self.locations.items(), key=lambda item: item[0]):
            counts = stats.counts
            if not any(counts[:-1]):
                continue            # no tunnel of this location has closed yet
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
    TUNNELS.tunnels = ctx.conn.runtime.tunnels      # this worker's open tunnels
    respond.send_response(ctx, 200, generate_latest(REGISTRY), CONTENT_TYPE)
