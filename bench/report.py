"""results.json and results.md from a run's results document (bench/run.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.machine import summary

Document = dict[str, Any]
ORDER = ("cephmount", "cephmount-strict", "ceph-fuse", "direct")
REFERENCES = (("ceph-fuse", "fuse"), ("direct", "direct"))


def write_json(document: Document, path: Path) -> None:
    path.write_text(json.dumps(document, indent=1) + "\n")


def available(document: Document) -> list[dict[str, Any]]:
    """Targets that ran, in the table's order."""
    ran = {t["name"]: t for t in document["targets"] if t["available"]}
    return [ran[name] for name in ORDER if name in ran]


def index(document: Document) -> dict[tuple[str, str, int], dict[str, Any]]:
    """(measure, target, N) -> result entry."""
    return {(r["measure"], r["target"], r["clients"]): r for r in document["results"]}


def value(figures: dict[tuple[str, str, int], dict[str, Any]], measure: str, target: str,
          clients: int) -> float | None:
    entry = figures.get((measure, target, clients))
    return entry["value"] if entry else None


def _number(figure: float | None) -> str:
    if figure is None:
        return "error"
    return f"{figure:,.0f}" if figure >= 100 else f"{figure:.1f}"


def _ratio(figure: float | None, reference: float | None) -> str | None:
    if figure is None or not reference:
        return None
    return f"{figure / reference:.2f}"


def _rows(document: Document) -> Iterator[tuple[dict[str, Any], int]]:
    for measure in document["measures"]:
        for clients in measure.get("clients", document["clients"]):
            yield measure, clients


def _header(target: dict[str, Any], names: set[str]) -> str:
    refs = [label for ref, label in REFERENCES if ref in names and ref != target["name"]]
    return target["label"] + (f" (x {', x '.join(refs)})" if refs else "")


def throughput_table(document: Document) -> str:
    """Every figure, each with its ratio to ceph-fuse and to direct libcephfs."""
    targets = available(document)
    names = {t["name"] for t in targets}
    figures = index(document)
    lines = ["| workload | N | unit | " + " | ".join(_header(t, names) for t in targets) + " |",
             "|---|---:|---|" + "---:|" * len(targets)]
    for measure, clients in _rows(document):
        cells = []
        for target in targets:
            figure = value(figures, measure["name"], target["name"], clients)
            ratios = [_ratio(figure, value(figures, measure["name"], ref, clients))
                      for ref, _ in REFERENCES if ref in names and ref != target["name"]]
            shown = [r for r in ratios if r is not None]
            cells.append(_number(figure) + (f" ({', '.join(shown)})" if shown else ""))
        lines.append(f"| {measure['title']} | {clients} | {measure['unit']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def rounds_table(document: Document) -> str:
    """Each target's ratio to ceph-fuse in every round, from the same round's figures:
    how far apart the rounds were."""
    targets = [t for t in available(document) if t["name"] not in ("ceph-fuse", "direct")]
    figures = index(document)
    lines = ["| workload | N | " + " | ".join(t["label"] for t in targets) + " |",
             "|---|---:|" + "---:|" * len(targets)]
    for measure, clients in _rows(document):
        reference = figures.get((measure["name"], "ceph-fuse", clients))
        cells = []
        for target in targets:
            entry = figures.get((measure["name"], target["name"], clients))
            pairs = zip(entry["round_values"] if entry else [],
                        reference["round_values"] if reference else [], strict=False)
            cells.append(" / ".join(_ratio(ours, theirs) or "-" for ours, theirs in pairs))
        lines.append(f"| {measure['title']} | {clients} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rss_table(document: Document) -> str:
    """Peak RSS of the largest client process per workload cell, in MiB."""
    targets = available(document)
    figures = index(document)
    lines = ["| workload | N | " + " | ".join(t["label"] for t in targets) + " |",
             "|---|---:|" + "---:|" * len(targets)]
    seen = set()
    for measure, clients in _rows(document):
        if (measure["workload"], clients) in seen:
            continue
        seen.add((measure["workload"], clients))
        cells = []
        for target in targets:
            entry = figures.get((measure["name"], target["name"], clients))
            peaks = entry["peak_rss_bytes"] if entry else []
            cells.append(f"{max(peaks) / (1 << 20):.0f}" if peaks else "-")
        lines.append(f"| {measure['workload']} | {clients} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verify_lines(document: Document) -> list[str]:
    lines = []
    for record in document["verify"]:
        if record["passed"]:
            lines.append(f"- {record['target']}: passed "
                         f"({record['verified_bytes'] >> 10} KiB written on client 0, "
                         "verified from client 1)")
        else:
            lines.append(f"- {record['target']}: **FAILED**: {'; '.join(record['errors'])}")
    return lines


def _sizes(document: Document) -> str:
    s = document["sizes"]
    return (f"sequential {s['seq_size'] >> 20} MiB per client, shared file "
            f"{s['rand_size'] >> 20} MiB, {s['files']} files per client, timed jobs "
            f"{s['runtime']} s, N = {', '.join(map(str, document['clients']))}")


def caption(document: Document) -> str:
    """Where the figures come from, for results.md and the README."""
    v = document["versions"]
    return (f"Measured {document['started']} on {summary(document['machine'])}; "
            f"cephmount {v['cephmount']}, commit {v.get('commit', 'unknown')}, "
            f"{v['ceph-fuse'].split(' (')[0]}, "
            f"libcephfs {v['libcephfs']}, {v['fio']}. Profile `{document['profile']}`: "
            f"{_sizes(document)}; {_rounds(document)}the run took "
            f"{document['seconds'] / 60:.1f} min.")


def _rounds(document: Document) -> str:
    rounds = document.get("rounds", 1)
    return f"each figure the median of {rounds} rounds; " if rounds > 1 else ""


def markdown(document: Document) -> str:
    skipped = [f"- {t['name']}: not measured: {t['note']}"
               for t in document["targets"] if not t["available"]]
    parts = [
        "# cephmount bench", "", caption(document), "",
        "## Throughput", "",
        "The sum over the N clients (separate mounts of one subvolume, each its own Ceph "
        "client) of fio's own per-client figures; MB/s is 10^6 bytes/s. In brackets: the "
        "ratio to ceph-fuse and to libcephfs called directly, same workload, same N. "
        "Higher is better. How each figure is made: docs/bench.md.", "",
        throughput_table(document), "",
        *_rounds_section(document),
        "## Peak memory", "",
        "Peak RSS in MiB of the largest client process (the ceph-fuse, cephmount or direct "
        "runner process) during each workload.", "",
        rss_table(document), "",
        "## Correctness", "",
        *verify_lines(document), "",
    ]
    if skipped:
        parts += ["## Not measured", "", *skipped, ""]
    errors = [f"- {r['measure']} / {r['target']} / N={r['clients']}: {'; '.join(r['errors'])}"
              for r in document["results"] if r["errors"]]
    if errors:
        parts += ["## Errors", "", *errors, ""]
    return "\n".join(parts)


def _rounds_section(document: Document) -> list[str]:
    if document.get("rounds", 1) < 2:
        return []
    return ["## Rounds", "",
            "The ratio to ceph-fuse in each round, first to last (the table above shows "
            "the median round's figures).", "", rounds_table(document), ""]


def readme_summary(document: Document, published: str = "docs/bench") -> str:
    """The caption, the table and the chart for the README. Links assume results.md and
    by_workload.png are published as `published`/latest.md and `published`/by_workload.png."""
    return "\n".join([
        caption(document), "",
        "Sum over N clients of fio's figures; in brackets the ratio to ceph-fuse and to "
        f"libcephfs called directly. Memory, correctness and method: [{published}/latest.md]"
        f"({published}/latest.md), [docs/bench.md](docs/bench.md).", "",
        throughput_table(document), "",
        f"![throughput relative to ceph-fuse]({published}/by_workload.png)", ""])


def write_markdown(document: Document, directory: Path) -> list[Path]:
    """results.md, and summary.md (what the README shows)."""
    paths = [directory / "results.md", directory / "summary.md"]
    paths[0].write_text(markdown(document))
    paths[1].write_text(readme_summary(document))
    return paths
