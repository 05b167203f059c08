"""The bench says which commit it measured and publishes into docs/ only from that commit.

Each test works on a git clone of this repository (no cluster needed): the
refusal must come before anything is measured, from the command line a user runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.machine import versions
from bench.provenance import PUBLISHED, PublishError, publish_docs
from bench.report import caption

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A clean clone of this repository's HEAD."""
    path = tmp_path / "repo"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(path)],
                   check=True, timeout=60)
    return path


def _head(repo: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()


def _run_dir(tmp_path: Path, commit: str) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.md").write_text(f"# cephmount bench\n\ncommit {commit}\n")
    (run / "by_workload.png").write_bytes(b"\x89PNG\r\n\x1a\nchart")
    return run


def test_the_results_record_the_commit_measured(clone: Path) -> None:
    recorded = versions("16.2.15", repo=clone)
    document = {"started": "now", "machine": {"cores": 2, "cpu": "x", "memory_gib": 1,
                                              "os": "Debian", "kernel": "6"},
                "versions": {**recorded, "ceph-fuse": "ceph version 16", "fio": "fio-3"},
                "profile": "tiny", "clients": [1],
                "sizes": {"seq_size": 1 << 20, "rand_size": 1 << 20, "files": 1, "runtime": 1},
                "seconds": 60}

    assert recorded["commit"] == _head(clone)
    assert recorded["uncommitted"] is False
    assert _head(clone) in caption(document)
    json.dumps(recorded)  # it goes into results.json as is


def test_a_dirty_tree_is_recorded_as_such(clone: Path) -> None:
    (clone / "cephmount" / "__init__.py").write_text("# changed\n")

    recorded = versions("16.2.15", repo=clone)

    assert recorded["uncommitted"] is True
    assert str(recorded["cephmount"]).endswith("-dirty)")


def test_publishing_from_a_dirty_tree_is_refused_before_measuring(clone: Path) -> None:
    (clone / "cephmount" / "__init__.py").write_text("# changed\n")
    before = (clone / "docs/bench/latest.md").read_text()

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--publish", "--out", str(clone / "out"),
         "--conf", "/nonexistent/ceph.conf", "--keyring", "/nonexistent/keyring",
         "--subvolume-path", "/volumes/none"],
        cwd=clone, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "uncommitted" in result.stderr and "cephmount/__init__.py" in result.stderr
    assert "Traceback" not in result.stderr
    assert (clone / "docs/bench/latest.md").read_text() == before
    assert not (clone / "out").exists()


def test_results_out_into_docs_from_a_dirty_tree_are_refused(clone: Path) -> None:
    (clone / "untracked.txt").write_text("new\n")

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--out", str(clone / "docs" / "bench"),
         "--conf", "/nonexistent/ceph.conf", "--keyring", "/nonexistent/keyring",
         "--subvolume-path", "/volumes/none"],
        cwd=clone, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 2
    assert "uncommitted" in result.stderr and "untracked.txt" in result.stderr


def test_publish_copies_the_reports_from_a_clean_tree(clone: Path, tmp_path: Path) -> None:
    head = _head(clone)
    run = _run_dir(tmp_path, head)

    written = publish_docs(run, head, clone)

    assert sorted(written) == sorted(clone / path for path in PUBLISHED.values())
    assert head in (clone / "docs/bench/latest.md").read_text()


def test_publish_refuses_reports_of_another_commit(clone: Path, tmp_path: Path) -> None:
    run = _run_dir(tmp_path, "0" * 40)

    with pytest.raises(PublishError, match="measured 000000000000"):
        publish_docs(run, "0" * 40, clone)
