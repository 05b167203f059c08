"""The fsx-style exerciser (tests/fuse/fsx.py) on cephmount in the default and strict
modes, and on ceph-fuse; and what it found.

The longer run (20,000 operations per mode) is `python -m tests.soak.fsx_long`; its
last result is in docs/reliability.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuse.conftest import scratch_dir
from tests.fuse.fsx import FALLOCATE_MODES, Exerciser

pytestmark = [pytest.mark.fuse, pytest.mark.cluster]

OPS = 2000
SEEDS = (11, 12)


def _run(root: Path, seed: int, shared_maps: bool = True, direct: bool = True) -> Exerciser:
    with scratch_dir(root, "fsx") as directory:
        exerciser = Exerciser(directory / "f", seed, shared_maps, direct)
        exerciser.run(OPS)
    return exerciser


@pytest.mark.parametrize("seed", SEEDS)
def test_default_mode(workdir: Path, seed: int) -> None:
    counts = _run(workdir, seed).counts
    assert sum(counts.values()) == OPS
    assert counts["map_write"] and counts["direct_write"] and counts["direct_read"]


@pytest.mark.parametrize("seed", SEEDS)
def test_strict_mode_refuses_only_shared_maps(strict_mount: Path, seed: int) -> None:
    """Every shared map is refused with ENODEV (checked at each map_write), all else holds."""
    counts = _run(strict_mount, seed, shared_maps=False).counts
    assert counts["map_write"] and counts["map_read"] and counts["direct_write"]


def test_ceph_fuse_replays_the_same_seed(reference_workdir: Path) -> None:
    """The reference: the exerciser's model agrees with ceph-fuse. O_DIRECT is left out:
    ceph-fuse itself serves stale data to buffered readers after an O_DIRECT write
    (tests/fuse/test_direct_io.py)."""
    counts = _run(reference_workdir, SEEDS[0], direct=False).counts
    assert sum(counts.values()) == OPS


def test_fallocate_is_exercised_where_the_filesystem_has_it(workdir: Path) -> None:
    """The hook: the fallocate operations join the mix once the filesystem supports them."""
    exerciser = Exerciser(workdir / "probe", SEEDS[0])
    counts = exerciser.run(OPS // 4)
    assert {name for name in FALLOCATE_MODES if counts[name]} == exerciser.fallocate_modes
