"""A figure measured in several rounds is the median round's, and the report shows
every round's ratio to ceph-fuse. Pure logic: results entries as bench/run.py makes them."""

from __future__ import annotations

from typing import Any

from bench.report import markdown, rounds_table
from bench.run import median_rounds


def _entry(target: str, value: float | None, round_index: int, rss: list[int],
           errors: list[str] | None = None) -> dict[str, Any]:
    return {"measure": "seqwrite", "workload": "seqwrite", "target": target, "clients": 2,
            "unit": "MB/s", "value": value, "per_client": [value, value],
            "totals": {"round": round_index}, "errors": errors or [],
            "peak_rss_bytes": rss, "caches_dropped": None, "round": round_index}


def test_the_median_rounds_figures_are_kept_with_every_rounds_value() -> None:
    entries = [_entry("cephmount", 300.0, 1, [10, 40]), _entry("cephmount", 100.0, 2, [30, 20]),
               _entry("cephmount", 110.0, 3, [20, 20])]

    [merged] = median_rounds(entries)

    assert merged["value"] == 110.0 and merged["totals"] == {"round": 3}
    assert merged["median_round"] == 3
    assert merged["round_values"] == [300.0, 100.0, 110.0]
    assert merged["peak_rss_bytes"] == [30, 40]
    assert merged["errors"] == [] and "round" not in merged


def test_of_an_even_count_the_lower_middle_round_is_kept() -> None:
    entries = [_entry("cephmount", 300.0, 1, [1]), _entry("cephmount", 100.0, 2, [1])]

    [merged] = median_rounds(entries)

    assert merged["value"] == 100.0 and merged["median_round"] == 2


def test_a_failed_round_fails_the_figure() -> None:
    entries = [_entry("cephmount", 300.0, 1, [1]), _entry("cephmount", None, 2, [], ["boom"]),
               _entry("cephmount", 200.0, 3, [1])]

    [merged] = median_rounds(entries)

    assert merged["value"] is None
    assert merged["errors"] == ["round 2: boom"]
    assert merged["round_values"] == [300.0, None, 200.0]


def test_one_entry_per_measure_target_and_n_in_run_order() -> None:
    entries = [_entry("ceph-fuse", 100.0, 1, [1]), _entry("cephmount", 150.0, 1, [1]),
               _entry("cephmount", 170.0, 2, [1]), _entry("ceph-fuse", 110.0, 2, [1])]

    merged = median_rounds(entries)

    assert [(m["target"], m["round_values"]) for m in merged] == [
        ("ceph-fuse", [100.0, 110.0]), ("cephmount", [150.0, 170.0])]


def _document(rounds: int) -> dict[str, Any]:
    entries = [_entry(target, value, r, [1 << 20, 1 << 20])
               for r, (ours, theirs) in enumerate([(150.0, 100.0), (90.0, 100.0),
                                                  (200.0, 160.0)][:rounds], start=1)
               for target, value in (("cephmount", ours), ("ceph-fuse", theirs))]
    return {
        "schema": 1, "started": "2026-12-03T08:00:00+00:00", "seconds": 60.0,
        "profile": "default", "rounds": rounds, "clients": [2],
        "sizes": {"seq_size": 1 << 20, "rand_size": 1 << 20, "files": 1, "runtime": 1},
        "machine": {"cores": 2, "cpu": "x", "memory_gib": 24, "os": "Debian", "kernel": "6"},
        "versions": {"cephmount": "0", "commit": "abc", "ceph-fuse": "16",
                                    "libcephfs": "16", "fio": "fio"},
        "targets": [{"name": "cephmount", "label": "cephmount", "available": True},
                    {"name": "ceph-fuse", "label": "ceph-fuse", "available": True}],
        "measures": [{"name": "seqwrite", "title": "seq write", "unit": "MB/s",
                      "workload": "seqwrite", "clients": [2]}],
        "results": median_rounds(entries), "verify": [],
    }


def test_the_report_shows_each_rounds_ratio_and_says_figures_are_medians() -> None:
    document = _document(3)

    assert rounds_table(document).splitlines()[-1] == "| seq write | 2 | 1.50 / 0.90 / 1.25 |"
    report = markdown(document)
    assert "each figure the median of 3 rounds" in report
    assert "## Rounds" in report
    assert "| seq write | 2 | MB/s | 150 (1.50) | 100 |" in report


def test_a_single_round_report_has_no_rounds_section() -> None:
    report = markdown(_document(1))

    assert "median of" not in report and "## Rounds" not in report
