"""The numbers bench takes from fio's JSON output, and that shape for other runners.

fio reports each job as {"jobname", "error", "job_runtime", "read": {...},
"write": {...}}, each direction with io_bytes, bw_bytes (bytes/s), iops,
total_ios and runtime (ms). The direct libcephfs runner and the `ls -l` step
report in exactly these fields, so one function sums every target's clients.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

FioJob = dict[str, Any]
DIRECTIONS = ("read", "write")


def make_job(name: str, seconds: float, read: tuple[int, int] = (0, 0),
             write: tuple[int, int] = (0, 0), error: int = 0, message: str = "") -> FioJob:
    """A job result in fio's JSON shape; `read`/`write` are (ios, bytes). Rates are
    computed from `seconds` itself (fio rounds its runtime to milliseconds first)."""
    ms = max(1, round(seconds * 1000))
    seconds = max(seconds, 1e-6)

    def side(ios: int, nbytes: int) -> dict[str, float | int]:
        if ios == 0:
            return {"io_bytes": 0, "bw_bytes": 0, "iops": 0.0, "total_ios": 0, "runtime": 0}
        return {"io_bytes": nbytes, "bw_bytes": int(nbytes / seconds), "iops": ios / seconds,
                "total_ios": ios, "runtime": ms}

    job: FioJob = {"jobname": name, "error": error, "job_runtime": ms,
                   "read": side(*read), "write": side(*write)}
    if message:
        job["error_message"] = message
    return job


def first_job(fio_output: Mapping[str, Any]) -> FioJob:
    """The one job of a fio run's JSON (we run one section per fio process)."""
    jobs = fio_output.get("jobs") or []
    if len(jobs) != 1:
        raise ValueError(f"expected one job in fio's output, got {len(jobs)}")
    return dict(jobs[0])


@dataclass(frozen=True)
class Totals:
    """One step's figures summed over the N clients that ran it at the same time."""

    bw_bytes: float
    iops: float
    read_bw_bytes: float
    write_bw_bytes: float
    read_iops: float
    write_iops: float
    io_bytes: int
    errors: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summed(jobs: Iterable[FioJob]) -> Totals:
    """fio's own per-client bw_bytes and iops, added up (read + write)."""
    sums = {f"{d}_{k}": 0.0 for d in DIRECTIONS for k in ("bw_bytes", "iops", "io_bytes")}
    errors = 0
    for job in jobs:
        errors += int(job.get("error", 0) != 0)
        for direction in DIRECTIONS:
            for key in ("bw_bytes", "iops", "io_bytes"):
                sums[f"{direction}_{key}"] += float(job[direction][key])
    return Totals(
        bw_bytes=sums["read_bw_bytes"] + sums["write_bw_bytes"],
        iops=sums["read_iops"] + sums["write_iops"],
        read_bw_bytes=sums["read_bw_bytes"], write_bw_bytes=sums["write_bw_bytes"],
        read_iops=sums["read_iops"], write_iops=sums["write_iops"],
        io_bytes=int(sums["read_io_bytes"] + sums["write_io_bytes"]), errors=errors)
