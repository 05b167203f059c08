"""Per-operation counts and latency histograms of one mount, for status and metrics."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Upper bounds in seconds; a last, unbounded bucket follows.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# Native functions that do a request's work and leave its answer to the Python
# handler, which counts the request (fs/native.py, creates).
PREPARED_NATIVELY = frozenset({"create"})


@dataclass
class OpCounter:
    count: int = 0
    errors: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))

    def add(self, seconds: float, failed: bool) -> None:
        self.count += 1
        self.errors += failed
        self.seconds += seconds
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1


@dataclass
class OpStats:
    """What the kernel asked of the mount: per operation, bytes moved, and how big the
    kernel's read and write requests were (what FUSE negotiation and readahead decide)."""

    ops: dict[str, OpCounter] = field(default_factory=dict)
    bytes_read: int = 0
    bytes_written: int = 0
    # "read"/"write" -> request size rounded up to a power of two -> requests
    request_sizes: dict[str, dict[int, int]] = field(default_factory=dict)

    def record_size(self, op: str, nbytes: int) -> None:
        bucket = 1 << max(nbytes - 1, 0).bit_length()
        sizes = self.request_sizes.setdefault(op, {})
        sizes[bucket] = sizes.get(bucket, 0) + 1

    def record(self, op: str, seconds: float, failed: bool) -> None:
        counter = self.ops.get(op)
        if counter is None:
            counter = self.ops[op] = OpCounter()
        counter.add(seconds, failed)

    def as_dict(self, native: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, object]:
        """With what native handlers answered (pyfuse3.native_handler_stats) counted in:
        the kernel's requests, whoever answered them."""
        ops = {name: OpCounter(c.count, c.errors, c.seconds, list(c.buckets))
               for name, c in self.ops.items()}
        sizes = {op: dict(by_size) for op, by_size in self.request_sizes.items()}
        moved = {"read": self.bytes_read, "write": self.bytes_written}
        for op, answered in (native or {}).items():
            if not answered["count"] or op in PREPARED_NATIVELY:
                continue
            counter = ops.setdefault(op, OpCounter())
            counter.count += answered["count"]
            counter.errors += answered["errors"]
            counter.seconds += answered["seconds"]
            counter.buckets = [a + b for a, b in zip(counter.buckets, answered["latencies"],
                                                     strict=True)]
            if op in moved:  # only reads' and writes' sizes are kept
                moved[op] += answered["bytes"]
                by_size = sizes.setdefault(op, {})
                for size, count in answered["sizes"].items():
                    by_size[size] = by_size.get(size, 0) + count
        return {
            "bytes_read": moved["read"], "bytes_written": moved["write"],
            "latency_buckets": list(LATENCY_BUCKETS),
            "ops": {name: {"count": c.count, "errors": c.errors, "seconds": c.seconds,
                           "buckets": c.buckets} for name, c in ops.items()},
            "request_sizes": {op: {str(size): count for size, count in sorted(by_size.items())}
                              for op, by_size in sizes.items()},
        }
