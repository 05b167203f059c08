"""The workloads: which job file sections run, in which order, giving which figures.

The I/O itself is described by the fio job files in bench/jobs; this module
says how bench strings them together (warm-up passes, cold starts, the `ls -l`
step) and what it needs laid out before (files written by another client).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from bench.fiojson import Totals
from bench.jobfile import JOBS_DIR

BENCH_DIR = "cephmount-bench"  # under the subvolume root; removed before and after a run


@dataclass(frozen=True)
class Sizes:
    """How big and how long; the same for every target and every N."""

    seq_size: int     # bytes per client for sequential write and read
    rand_size: int    # bytes of the one shared file for random I/O
    verify_size: int  # bytes written then verified by the correctness job
    files: int        # small files per client for the metadata workload
    runtime: int      # seconds of each time-based job
    cap: int          # seconds a size-based job may take at most
    dir_entries: int = 0  # entries of the large directory the listing workloads read

    def env(self, client: int, bench_dir: str) -> dict[str, str]:
        """The variables the job files use, for client number `client`."""
        return {
            "BENCH_DIR": bench_dir, "BENCH_CLIENT": str(client), "BENCH_SEED": str(client + 1),
            "BENCH_SEQ_SIZE": str(self.seq_size), "BENCH_RAND_SIZE": str(self.rand_size),
            "BENCH_VERIFY_SIZE": str(self.verify_size), "BENCH_FILES": str(self.files),
            "BENCH_RUNTIME": str(self.runtime), "BENCH_CAP": str(self.cap),
        }

    def footprint(self, max_clients: int) -> int:
        """Bytes the run keeps on the subvolume at its fullest."""
        return max_clients * (self.seq_size + self.files * 4096) + self.rand_size \
            + self.verify_size


class Unit(Enum):
    MBPS = "MB/s"
    IOPS = "IOPS"
    OPS = "ops/s"

    def figure(self, totals: Totals) -> float:
        """The reported figure: MB/s from bytes/s, else operations per second."""
        return totals.bw_bytes / 1e6 if self is Unit.MBPS else totals.iops


@dataclass(frozen=True)
class Measure:
    """One reported figure."""

    name: str
    title: str
    unit: Unit


@dataclass(frozen=True)
class Step:
    """One section of a job file run on every client; or, when `job` is None,
    `ls <ls>` of the directory `section` under each client's BENCH_DIR."""

    job: str | None
    section: str
    measure: Measure | None = None  # None: a warm-up, not reported
    ls: str = "-l"  # `-l`: readdir and a stat of every entry; `-f`: readdir only

    @property
    def job_path(self) -> Path:
        assert self.job is not None
        return JOBS_DIR / self.job

    @property
    def label(self) -> str:
        return f"{self.job}[{self.section}]" if self.job else f"ls {self.ls} {self.section}"


class Prepare(Enum):
    """What a separate client lays out before a workload's first cell."""

    SEQ_FILES = "seq.<client> for every client, seq_size bytes each"
    SHARED_FILE = "shared.dat, rand_size bytes"
    META_DIR = "the empty directory meta/"
    BIG_DIR = "bigdir/ with dir_entries empty files"

    @property
    def every_cell(self) -> bool:
        """Laid out anew before every cell (a cell may leave files behind), not once."""
        return self is Prepare.META_DIR


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    steps: tuple[Step, ...]
    prepare: Prepare | None = None
    cold: bool = False  # drop kernel and OSD caches right before the steps
    max_clients: int | None = None  # run only for N up to this
    removes: Prepare | None = None  # what its steps leave removed, to be laid out again

    def runs_with(self, clients: int) -> bool:
        return self.max_clients is None or clients <= self.max_clients

    @property
    def measures(self) -> list[Measure]:
        return [step.measure for step in self.steps if step.measure]


SEQWRITE = Measure("seqwrite", "seq write 1 MiB + fsync", Unit.MBPS)
SEQREAD_COLD = Measure("seqread-cold", "seq read 1 MiB, cold", Unit.MBPS)
SEQREAD_HOT = Measure("seqread-hot", "seq read 1 MiB, hot", Unit.MBPS)
RANDREAD = Measure("randread", "4 KiB random read, shared file", Unit.IOPS)
RANDWRITE = Measure("randwrite", "4 KiB random write, shared file", Unit.IOPS)
RANDRW = Measure("randrw", "4 KiB random 70/30 r/w, shared file", Unit.IOPS)
META_CREATE = Measure("meta-create", "create + write 4 KiB file", Unit.OPS)
META_STAT = Measure("meta-stat", "stat file", Unit.OPS)
META_LS = Measure("meta-ls", "ls -l, per entry", Unit.OPS)
META_UNLINK = Measure("meta-unlink", "unlink file", Unit.OPS)
BIG_LSF_COLD = Measure("bigdir-lsf-cold", "large dir: ls -f, first after mount, per entry",
                       Unit.OPS)
BIG_LSF_WARM = Measure("bigdir-lsf-warm", "large dir: ls -f, second, per entry", Unit.OPS)
BIG_LSL_COLD = Measure("bigdir-lsl-cold", "large dir: ls -l, first after mount, per entry",
                       Unit.OPS)
BIG_LSL_WARM = Measure("bigdir-lsl-warm", "large dir: ls -l, second, per entry", Unit.OPS)
BIG_DIR = "bigdir"

WORKLOADS: tuple[Workload, ...] = (
    # Writes (and unlinks) the files the reads read: the subvolume holds one set at a time.
    Workload("seqwrite", "sequential write", (Step("seqwrite.fio", "seqwrite", SEQWRITE),),
             removes=Prepare.SEQ_FILES),
    Workload("seqread-cold", "sequential read, cold",
             (Step("seqread.fio", "cold", SEQREAD_COLD),), Prepare.SEQ_FILES, cold=True),
    Workload("seqread-hot", "sequential read, hot",
             (Step("seqread.fio", "cold"), Step("seqread.fio", "hot", SEQREAD_HOT)),
             Prepare.SEQ_FILES),
    Workload("randread", "random read", (Step("randread.fio", "randread", RANDREAD),),
             Prepare.SHARED_FILE),
    Workload("randwrite", "random write", (Step("randwrite.fio", "randwrite", RANDWRITE),),
             Prepare.SHARED_FILE),
    Workload("randrw", "random read/write 70/30", (Step("randrw.fio", "randrw", RANDRW),),
             Prepare.SHARED_FILE),
    Workload("metadata", "metadata", (
        Step("metadata.fio", "create", META_CREATE), Step("metadata.fio", "stat", META_STAT),
        Step(None, "meta", META_LS), Step("metadata.fio", "unlink", META_UNLINK)),
        Prepare.META_DIR),
    # One mount lists a directory of tens of thousands of entries twice; a listing costs
    # a minute on a slow mounter, so only at N = 1 (the cells would be N times longer).
    Workload("bigdir-ls-f", "large directory, readdir only", (
        Step(None, BIG_DIR, BIG_LSF_COLD, ls="-f"), Step(None, BIG_DIR, BIG_LSF_WARM, ls="-f")),
        Prepare.BIG_DIR, max_clients=1),
    Workload("bigdir-ls-l", "large directory, readdir and stat", (
        Step(None, BIG_DIR, BIG_LSL_COLD), Step(None, BIG_DIR, BIG_LSL_WARM)),
        Prepare.BIG_DIR, max_clients=1),
)
WORKLOAD_NAMES = tuple(w.name for w in WORKLOADS)
MEASURES: tuple[Measure, ...] = tuple(m for w in WORKLOADS for m in w.measures)

# The correctness job: [write] on client 0, then [verify] on client 1.
VERIFY_WRITE = Step("verify.fio", "write")
VERIFY_READ = Step("verify.fio", "verify")


# Rough rates on a small cluster, for the progress display's ETA only.
_DATA_RATE = 300e6   # bytes/s, sequential, all clients together
_SMALL_IOPS = 2000   # 4 KiB random ops/s
_META_RATE = 250     # creates/s
_LIST_RATE = 800     # `ls -l` entries/s
_READDIR_RATE = 10000  # `ls -f` entries/s
_STALL = 5.0         # an unlink waiting for other clients' capabilities


def estimate(workload: Workload, sizes: Sizes, clients: int) -> float:
    """Roughly how many seconds a cell of `workload` takes, mounting included."""
    seconds = 1.0
    if workload.prepare is Prepare.BIG_DIR:
        return seconds + 2 * sizes.dir_entries / (_LIST_RATE if "-l" in workload.name else
                                                  _READDIR_RATE)
    if workload.prepare is Prepare.META_DIR:
        files = sizes.files * clients
        return seconds + files / _META_RATE + files * clients / _LIST_RATE \
            + sizes.runtime + (_STALL if clients > 1 else 0)
    for step in workload.steps:
        timed = step.section in ("hot", "randread", "randwrite", "randrw")
        seconds += sizes.runtime if timed else sizes.seq_size * clients / _DATA_RATE
    return seconds


def estimate_verify(sizes: Sizes) -> float:
    return 1.0 + 2 * sizes.verify_size / 4096 / _SMALL_IOPS


def select(names: list[str] | None) -> tuple[Workload, ...]:
    if not names:
        return WORKLOADS
    unknown = set(names) - set(WORKLOAD_NAMES)
    if unknown:
        raise ValueError(f"unknown workloads {sorted(unknown)}; choose from {WORKLOAD_NAMES}")
    return tuple(w for w in WORKLOADS if w.name in names)
