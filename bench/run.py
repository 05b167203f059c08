"""One bench run: every workload x N x target, interleaved, plus the verify job.

Order: for each workload, for each N, every target in turn (the order rotating
from one workload and N to the next), so that a drift of the cluster or the
machine during the run touches every target alike; the whole sequence is
repeated `rounds` times, and each figure is the median round's. Each cell mounts
N fresh clients, runs the workload's steps on all of them at once, records fio's
figures summed over the N clients and the clients' peak RSS, and unmounts.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cluster import Cluster, drop_caches
from bench.direct_client import DirectError
from bench.fio import Env
from bench.fiojson import FioJob, summed
from bench.layout import Layout
from bench.machine import machine, versions
from bench.mounts import MountError
from bench.progress import Progress
from bench.rss import peak_rss
from bench.targets import Session, Target
from bench.workloads import (
    VERIFY_READ,
    VERIFY_WRITE,
    Measure,
    Sizes,
    Step,
    Workload,
    estimate,
    estimate_verify,
)

SCHEMA = 1
CELL_ERRORS = (MountError, DirectError, OSError)


@dataclass(frozen=True)
class Plan:
    profile: str
    sizes: Sizes
    clients: tuple[int, ...]
    workloads: tuple[Workload, ...]
    targets: Sequence[Target]
    skipped: Mapping[str, str]  # target name -> why it is not run
    verify: bool = True
    rounds: int = 1

    @property
    def timeout(self) -> float:
        """The longest any step may take before it counts as hung."""
        return self.sizes.cap + self.sizes.runtime + 120.0

    def estimates(self) -> list[float]:
        """Seconds per progress line, in run order: verify jobs, then cells."""
        verify = [estimate_verify(self.sizes)] * len(self.targets) if self.verify else []
        cells = [estimate(w, self.sizes, n) for w in self.workloads
                 for n in self.clients if w.runs_with(n) for _ in self.targets]
        return verify + cells * self.rounds


@dataclass
class Cell:
    """What one cell (workload x target x N) measured, on the way to results.json."""

    target: str
    workload: Workload
    clients: int
    measured: dict[str, Mapping[int, FioJob]] = field(default_factory=dict)
    rss: list[int] = field(default_factory=list)  # peak bytes per client
    caches: dict[str, bool] | None = None  # what was dropped before a cold job
    failure: str = ""  # the cell could not run (mount failed, a runner died)

    def entry(self, measure: Measure) -> dict[str, Any]:
        """One figure: fio's per-client numbers summed; None if anything failed."""
        jobs = self.measured.get(measure.name, {})
        errors = [f"client {c}: {j.get('error_message') or 'error ' + str(j['error'])}"
                  for c, j in jobs.items() if j.get("error")]
        if self.failure or len(jobs) != self.clients:
            errors.append(self.failure or "no result")
        totals = summed(jobs.values())
        return {
            "measure": measure.name, "workload": self.workload.name, "target": self.target,
            "clients": self.clients, "unit": measure.unit.value,
            "value": None if errors else measure.unit.figure(totals),
            "per_client": [measure.unit.figure(summed([jobs[c]])) for c in sorted(jobs)],
            "totals": totals.as_dict(), "errors": errors,
            "peak_rss_bytes": self.rss, "caches_dropped": self.caches,
        }


class Runner:
    def __init__(self, cluster: Cluster, plan: Plan, raw: Path, progress: Progress) -> None:
        self.cluster, self.plan, self.raw, self.progress = cluster, plan, raw, progress
        self.layout = Layout(cluster, plan.sizes, raw)
        self.results: list[dict[str, Any]] = []
        self.verify: list[dict[str, Any]] = []

    # -- the run -------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = datetime.now(UTC)
        clock = time.monotonic()
        quota = self.layout.reset(max(self.plan.clients))
        try:
            if self.plan.verify:
                for target in self.plan.targets:
                    self._verify(target)
            self._cells()
        finally:
            self.layout.remove()
        return self._document(started, time.monotonic() - clock, quota)

    def _cells(self) -> None:
        targets = list(self.plan.targets)
        turn = 0
        for round_index in range(1, self.plan.rounds + 1):
            for workload in self.plan.workloads:
                for clients in filter(workload.runs_with, self.plan.clients):
                    shift = turn % len(targets)
                    for target in targets[shift:] + targets[:shift]:
                        self.layout.prepare(workload.prepare, max(self.plan.clients))
                        self._cell(target, workload, clients, round_index)
                        self.layout.removed(workload.removes)
                    turn += 1

    def _envs(self, session: Session, clients: Sequence[int]) -> dict[int, Env]:
        return {c: self.plan.sizes.env(c, session.bench_dir(c)) for c in clients}

    def _run_step(self, session: Session, step: Step, clients: Sequence[int],
                  work: Path) -> dict[int, FioJob]:
        jobs = session.run(step, self._envs(session, clients))
        name = f"{step.job or 'ls'}-{step.section}".replace(".fio", "")
        (work / f"{name}.json").write_text(json.dumps(jobs, indent=1))
        return jobs

    # -- one cell ----------------------------------------------------------------------

    def _cell(self, target: Target, workload: Workload, clients: int, round_index: int) -> None:
        self.progress.begin(target.name, workload.name, clients)
        work = self.raw / workload.name / f"{target.name}-n{clients}-r{round_index}"
        work.mkdir(parents=True, exist_ok=True)
        cell = Cell(target.name, workload, clients)
        try:
            with target.open(clients, work, self.plan.timeout) as session, \
                    peak_rss(session.pids, cell.rss):
                if workload.cold:
                    cell.caches = drop_caches(self.cluster)
                for step in workload.steps:
                    jobs = self._run_step(session, step, range(clients), work)
                    if step.measure:
                        cell.measured[step.measure.name] = jobs
        except CELL_ERRORS as exc:
            cell.failure = f"{type(exc).__name__}: {exc}"
        entries = [cell.entry(measure) | {"round": round_index}
                   for measure in workload.measures]
        self.results.extend(entries)
        self.progress.end(_outcome(entries))

    # -- correctness -------------------------------------------------------------------

    def _verify(self, target: Target) -> None:
        self.progress.begin(target.name, "verify", 2)
        work = self.raw / "verify" / target.name
        work.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {"target": target.name, "passed": False, "errors": []}
        try:
            with target.open(2, work, self.plan.timeout) as session:
                written = self._run_step(session, VERIFY_WRITE, [0], work)[0]
                checked = self._run_step(session, VERIFY_READ, [1], work)[1]
            record["written_bytes"] = written["write"]["io_bytes"]
            record["verified_bytes"] = checked["read"]["io_bytes"]
            record["errors"] = [j.get("error_message") or f"error {j['error']}"
                                for j in (written, checked) if j.get("error")]
            record["passed"] = not record["errors"] and \
                record["verified_bytes"] == record["written_bytes"] > 0
        except CELL_ERRORS as exc:
            record["errors"].append(f"{type(exc).__name__}: {exc}")
        self.verify.append(record)
        self.progress.end("verify passed" if record["passed"] else "VERIFY FAILED")

    # -- the results document ------------------------------------------------------------

    def _document(self, started: datetime, seconds: float, quota: int | None) -> dict[str, Any]:
        plan = self.plan
        targets = [{"name": t.name, "label": t.label, "available": True, "note": None}
                   for t in plan.targets]
        targets += [{"name": name, "label": name, "available": False, "note": why}
                    for name, why in plan.skipped.items()]
        return {
            "schema": SCHEMA, "started": started.isoformat(timespec="seconds"),
            "seconds": round(seconds, 1), "profile": plan.profile, "rounds": plan.rounds,
            "sizes": asdict(plan.sizes), "clients": list(plan.clients),
            "machine": machine(), "versions": versions(self.layout.libcephfs),
            "cluster": {**self.cluster.describe(), "quota_bytes": quota},
            "targets": targets,
            "measures": [{"name": m.name, "title": m.title, "unit": m.unit.value,
                          "workload": w.name,
                          "clients": [n for n in plan.clients if w.runs_with(n)]}
                         for w in plan.workloads for m in w.measures],
            "results": median_rounds(self.results), "verify": self.verify,
        }


def median_rounds(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per measure, target and N, from its rounds' entries (in run order).

    The entry is the median round's (the lower middle one of an even count, so that
    its figures are one round's own), with every round's figure in `round_values` and
    each client's highest peak RSS of any round. A round that failed fails the entry:
    no figure, and each failed round's errors.
    """
    rounds: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for entry in entries:
        rounds.setdefault((entry["measure"], entry["target"], entry["clients"]), []).append(entry)
    return [_median_entry(group) for group in rounds.values()]


def _median_entry(group: list[dict[str, Any]]) -> dict[str, Any]:
    values = [entry["value"] for entry in group]
    failed = [entry for entry in group if entry["value"] is None]
    if failed:
        chosen = failed[0]
        errors = [f"round {e['round']}: {error}" for e in failed for error in e["errors"]]
    else:
        middle = statistics.median_low(values)
        chosen = next(entry for entry in group if entry["value"] == middle)
        errors = []
    rss = [max(peaks) for peaks in zip(*(entry["peak_rss_bytes"] for entry in group),
                                       strict=False)]
    merged = {key: item for key, item in chosen.items() if key != "round"}
    return merged | {"errors": errors if len(group) > 1 else chosen["errors"],
                     "round_values": values, "median_round": chosen["round"],
                     "peak_rss_bytes": rss}


def _outcome(entries: list[dict[str, Any]]) -> str:
    errors = [error for entry in entries for error in entry["errors"]]
    if errors:
        return f"ERROR {errors[0][:70]}"
    return ", ".join(f"{e['value']:.0f} {e['unit']}" for e in entries)
