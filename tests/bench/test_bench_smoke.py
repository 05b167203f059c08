"""The bench end to end with tiny sizes, so that bench/ cannot rot.

Every target that exists here runs (`cephmount mount` when it is available,
ceph-fuse, libcephfs direct), in two rounds; nothing about timing is asserted, only
that every cell has a figure in each round, the verify job passed, the reports exist
and nothing is left mounted or running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.mounts import fuse_mountpoints
from bench.targets import cephmount_mount_missing
from bench.workloads import MEASURES
from cephmount.devcluster import DevCluster

pytestmark = [pytest.mark.cluster, pytest.mark.fuse, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench_run(dev_cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("bench")
    out, mounts = base / "results", base / "mnt"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--rounds", "2", "--dir", str(dev_cluster.dir),
         "--port", str(dev_cluster.port), "--out", str(out), "--mount-root", str(mounts)],
        capture_output=True, text=True, timeout=880, cwd=REPO, check=False)
    return {"result": result, "latest": out / "latest", "mounts": mounts,
            "conf": str(dev_cluster.conf)}


def _document(bench_run: dict[str, Any]) -> dict[str, Any]:
    result = bench_run["result"]
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return json.loads((bench_run["latest"] / "results.json").read_text())


def _expected_targets() -> set[str]:
    targets = {"ceph-fuse", "direct"}
    if cephmount_mount_missing() is None:
        targets |= {"cephmount", "cephmount-strict"}
    return targets


def test_every_cell_has_a_positive_figure(bench_run: dict[str, Any]) -> None:
    document = _document(bench_run)
    targets = _expected_targets()

    ran = {t["name"] for t in document["targets"] if t["available"]}
    cells = {(r["measure"], r["target"], r["clients"]): r for r in document["results"]}

    assert ran == targets
    assert document["clients"] == [1, 2]
    measured_at = {m["name"]: m["clients"] for m in document["measures"]}
    assert measured_at["bigdir-lsl-cold"] == [1]
    for measure in MEASURES:
        for target in targets:
            for clients in measured_at[measure.name]:
                cell = cells[(measure.name, target, clients)]
                assert cell["errors"] == [], cell
                assert cell["value"] > 0, cell
                assert len(cell["round_values"]) == 2 and cell["value"] in cell["round_values"]
                assert len(cell["per_client"]) == clients
                assert len(cell["peak_rss_bytes"]) == clients
                assert min(cell["peak_rss_bytes"]) > 0
    assert len(document["results"]) == len(targets) * sum(map(len, measured_at.values()))


def test_verify_passed_on_every_target(bench_run: dict[str, Any]) -> None:
    document = _document(bench_run)

    passed = {v["target"] for v in document["verify"] if v["passed"]}

    assert passed == _expected_targets()


def test_cold_reads_dropped_the_caches(bench_run: dict[str, Any]) -> None:
    document = _document(bench_run)

    cold = [r for r in document["results"] if r["measure"] == "seqread-cold"]

    assert cold and all(r["caches_dropped"] == {"kernel": True, "osd": True} for r in cold)


def test_table_and_charts_are_written(bench_run: dict[str, Any]) -> None:
    document = _document(bench_run)
    latest = bench_run["latest"]

    table = (latest / "results.md").read_text()

    for measure in document["measures"]:
        assert f"| {measure['title']} | 1 |" in table
    assert "| large dir: ls -l, second, per entry | 2 |" not in table
    assert "(x direct)" in table
    assert "## Rounds" in table and "median of 2 rounds" in table
    for chart in ("by_workload.png", "by_n.png"):
        assert (latest / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_is_left_mounted_or_running(bench_run: dict[str, Any]) -> None:
    _document(bench_run)
    mounts: Path = bench_run["mounts"]

    left_mounted = [p for p in fuse_mountpoints() if p.startswith(str(mounts))]
    left_running = [_cmdline(int(pid)) for pid in os.listdir("/proc") if pid.isdigit()
                    and _ours(_cmdline(int(pid)), str(mounts), bench_run["conf"])]

    assert left_mounted == []
    assert left_running == []
    assert list(mounts.iterdir()) == []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _ours(cmdline: str, mounts: str, conf: str) -> bool:
    """A mount server of this run, or a direct runner on this test's cluster."""
    return mounts in cmdline or (conf in cmdline and "bench.direct" in cmdline)


def test_the_results_name_the_commit_measured(bench_run: dict[str, Any]) -> None:
    document = _document(bench_run)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()

    assert document["versions"]["commit"] == head
    assert head in (bench_run["latest"] / "results.md").read_text()
