"""The request counters count every request of the kernel's, whoever answered it."""

from __future__ import annotations

from cephmount.fs.opstats import LATENCY_BUCKETS, OpStats


def native(count: int, nbytes: int, seconds: float, sizes: dict[int, int],
           errors: int = 0) -> dict[str, object]:
    latencies = [0] * (len(LATENCY_BUCKETS) + 1)
    latencies[2] = count
    return {"count": count, "errors": errors, "bytes": nbytes, "seconds": seconds,
            "fallbacks": 1, "sizes": sizes, "latencies": latencies}


def test_requests_answered_in_c_are_counted_with_those_answered_in_python() -> None:
    stats = OpStats()
    stats.record("write", 0.002, failed=False)
    stats.record_size("write", 4096)
    stats.bytes_written = 4096
    merged = stats.as_dict({"write": native(3, 3 * 4096, 0.0006, {4096: 3}),
                            "read": native(2, 100, 0.0002, {64: 2}),
                            "getattr": native(0, 0, 0.0, {})})
    ops = merged["ops"]
    assert isinstance(ops, dict)
    assert ops["write"]["count"] == 4
    assert abs(ops["write"]["seconds"] - 0.0026) < 1e-9
    assert sum(ops["write"]["buckets"]) == 4 and ops["write"]["buckets"][2] == 3
    assert ops["read"]["count"] == 2
    assert "getattr" not in ops  # nothing answered: no entry, as for Python's
    assert merged["bytes_written"] == 4 * 4096 and merged["bytes_read"] == 100
    assert merged["request_sizes"] == {"write": {"4096": 4}, "read": {"64": 2}}
    # The mount's own counters are left as they were.
    assert stats.ops["write"].count == 1 and stats.request_sizes == {"write": {4096: 1}}


def test_errors_answered_in_c_count_as_errors_and_lookups_keep_no_sizes() -> None:
    """An ENOENT or ENODATA answered in C counts as the same answer from Python does."""
    stats = OpStats()
    stats.record("lookup", 0.0002, failed=True)
    merged = stats.as_dict({"lookup": native(5, 0, 0.0001, {64: 5}, errors=5),
                            "getxattr": native(4, 0, 0.0001, {64: 4}, errors=3)})
    ops = merged["ops"]
    assert isinstance(ops, dict)
    assert ops["lookup"]["count"] == 6 and ops["lookup"]["errors"] == 6
    assert ops["getxattr"]["count"] == 4 and ops["getxattr"]["errors"] == 3
    assert merged["request_sizes"] == {}
