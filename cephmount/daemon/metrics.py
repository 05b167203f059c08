"""The Prometheus endpoint: per-mount figures gathered from the workers at each scrape.

Served by prometheus_client's HTTP server on its own thread; a scrape asks
every worker for its counters over its control socket (a worker that does not
answer in time is left out of that scrape and `cephmount_mount_up` says so).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from cephmount.daemon import workers
from cephmount.worker.config import ControlRequest

log = logging.getLogger("cephmount.daemon")
# The worker's cache counters exported as counters: name in the worker -> metric.
CACHE_COUNTERS = {
    "hits": ("cache_hits", "Reads served from the block cache, in blocks"),
    "misses": ("cache_misses", "Reads the block cache could not serve, in blocks"),
    "bytes_from_cache": ("cache_served_bytes", "Bytes served from the block cache"),
    "bytes_fetched": ("cache_fetched_bytes", "Bytes fetched from Ceph into the block cache"),
    "invalidations": ("cache_invalidations", "Times a file's cached data was dropped"),
    "kernel_notifications": ("kernel_invalidations", "Invalidations sent to the kernel"),
}


@dataclass(frozen=True)
class MountSnapshot:
    """What a scrape needs of a volume."""

    mount_id: str
    source: str
    directory: Path
    worker_pid: int
    restarts: int
    takeovers: int
    session_losses: int
    cache_share: int


class DaemonCollector:
    def __init__(self, snapshot: Callable[[], list[MountSnapshot]], started: float) -> None:
        self._snapshot = snapshot
        self._started = started

    def collect(self) -> Iterator[Metric]:
        mounts = self._snapshot()
        yield GaugeMetricFamily("cephmount_daemon_up", "The node daemon is serving", 1)
        yield GaugeMetricFamily("cephmount_daemon_start_time_seconds",
                                "When the node daemon started (Unix time)", self._started)
        yield GaugeMetricFamily("cephmount_mounts", "Volumes mounted on this node", len(mounts))
        families = _Families()
        for mount in mounts:
            families.add(mount, self._stats(mount))
        yield from families.all()

    @staticmethod
    def _stats(mount: MountSnapshot) -> dict[str, Any] | None:
        if not mount.worker_pid:
            return None
        try:
            return workers.ask(mount.directory, ControlRequest("stats"), 2.0)
        except OSError:
            return None


class _Families:
    """One metric family per figure, a sample per mount (and operation)."""

    def __init__(self) -> None:
        labels = ["mount", "source"]
        op_labels = [*labels, "op"]
        self.up = GaugeMetricFamily("cephmount_mount_up",
                                    "1 when the mount's worker answers", labels=labels)
        self.restarts = CounterMetricFamily("cephmount_worker_restarts",
                                            "Workers replaced after dying", labels=labels)
        self.takeovers = CounterMetricFamily(
            "cephmount_worker_takeovers", "Workers adopted by a restarted daemon", labels=labels)
        self.session_losses = CounterMetricFamily(
            "cephmount_session_losses", "Ceph sessions lost (client evicted or blocklisted) "
            "and replaced", labels=labels)
        self.share = GaugeMetricFamily("cephmount_cache_limit_bytes",
                                       "The mount's share of the cache budget", labels=labels)
        self.cache_bytes = GaugeMetricFamily("cephmount_cache_bytes",
                                             "Bytes in the mount's block cache", labels=labels)
        self.cache = {key: CounterMetricFamily(f"cephmount_{name}", text, labels=labels)
                      for key, (name, text) in CACHE_COUNTERS.items()}
        self.read = CounterMetricFamily("cephmount_read_bytes", "Bytes read", labels=labels)
        self.written = CounterMetricFamily("cephmount_written_bytes", "Bytes written",
                                           labels=labels)
        self.ops = CounterMetricFamily("cephmount_ops", "FUSE requests served", labels=op_labels)
        self.errors = CounterMetricFamily("cephmount_op_errors", "FUSE requests that failed",
                                          labels=op_labels)
        self.latency = HistogramMetricFamily("cephmount_op_latency_seconds",
                                             "Time to serve a FUSE request", labels=op_labels)

    def add(self, mount: MountSnapshot, stats: dict[str, Any] | None) -> None:
        labels = [mount.mount_id, mount.source]
        self.up.add_metric(labels, 0 if stats is None else 1)
        self.restarts.add_metric(labels, mount.restarts)
        self.takeovers.add_metric(labels, mount.takeovers)
        self.session_losses.add_metric(labels, mount.session_losses)
        self.share.add_metric(labels, mount.cache_share)
        if stats is None:
            return
        cache = stats.get("cache", {})
        self.cache_bytes.add_metric(labels, cache.get("cache_bytes", 0))
        for key, family in self.cache.items():
            family.add_metric(labels, cache.get(key, 0))
        self.read.add_metric(labels, stats.get("bytes_read", 0))
        self.written.add_metric(labels, stats.get("bytes_written", 0))
        bounds = stats.get("latency_buckets", [])
        for op, counts in stats.get("ops", {}).items():
            self.ops.add_metric([*labels, op], counts["count"])
            self.errors.add_metric([*labels, op], counts["errors"])
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, bounds), "+Inf"], counts["buckets"], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            self.latency.add_metric([*labels, op], buckets, counts["seconds"])

    def all(self) -> list[Metric]:
        return [self.up, self.restarts, self.takeovers, self.session_losses, self.share,
                self.cache_bytes, *self.cache.values(), self.read, self.written, self.ops,
                self.errors, self.latency]


def serve_metrics(address: str, collector: DaemonCollector) -> str:
    """Start the HTTP endpoint at HOST:PORT (port 0: any free one); the address it serves."""
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    return f"http://{host or '127.0.0.1'}:{server.server_port}/metrics"
