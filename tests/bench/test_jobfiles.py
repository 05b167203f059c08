"""The job files and the direct runner agree, without a cluster.

fio runs the job files on the FUSE targets and bench/direct.py runs the same
files through libcephfs; these checks keep a job file from using an option the
runner does not implement, and the reported figures in fio's shape.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.direct import block_order, check_supported
from bench.fiojson import make_job, summed
from bench.jobfile import JOBS_DIR, JobFileError, load, parse_size
from bench.workloads import VERIFY_READ, VERIFY_WRITE, WORKLOADS, Sizes, Step, Unit

SIZES = Sizes(seq_size=4 << 20, rand_size=4 << 20, verify_size=1 << 20, files=10, runtime=1,
              cap=30)
STEPS = [step for w in WORKLOADS for step in w.steps if step.job] + [VERIFY_WRITE, VERIFY_READ]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.label)
def test_every_job_section_is_one_the_direct_runner_implements(step: Step) -> None:
    job = load(step.job_path, step.section, SIZES.env(1, "/cephmount-bench"))

    check_supported(job)

    assert job.integer("runtime") > 0, "every job needs a time limit"
    assert "${" not in "".join(job.options.values())


def test_every_job_file_is_used() -> None:
    used = {step.job for step in STEPS}

    assert used == {path.name for path in JOBS_DIR.glob("*.fio")}


def test_an_unknown_option_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.fio"
    path.write_text("[global]\nioengine=psync\n[odd]\nrw=read\niodepth=8\n")

    with pytest.raises(JobFileError, match="iodepth"):
        check_supported(load(path, "odd", {}))


def test_variables_expand_and_sizes_parse() -> None:
    job = load(JOBS_DIR / "metadata.fio", "create", SIZES.env(3, "/d"))

    assert job.get("filename_format") == "c3.$filenum"
    assert job.get("directory") == "/d/meta"
    assert [parse_size(s) for s in ("4k", "1M", "128m", "512")] == [4096, 1 << 20, 128 << 20, 512]


def test_random_order_covers_every_block_once_per_pass() -> None:
    job = load(JOBS_DIR / "randread.fio", "randread", SIZES.env(0, "/d"))
    order = block_order(job, 64)

    first = [next(order) for _ in range(64)]
    second = [next(order) for _ in range(64)]

    assert sorted(first) == sorted(second) == list(range(64))
    assert first != list(range(64)) and first != second


def test_figures_are_summed_over_clients() -> None:
    jobs = [make_job("a", 2.0, read=(100, 100 * 4096)), make_job("b", 1.0, write=(50, 50 << 20))]

    totals = summed(jobs)

    assert totals.iops == pytest.approx(100)
    assert Unit.MBPS.figure(totals) == pytest.approx((50 * 4096 + (50 << 20)) / 1e6)
    assert totals.errors == 0
