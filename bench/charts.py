"""PNG charts of a run: throughput by workload (relative) and by N (absolute)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.report import Document, available, index, value

COLORS = {"cephmount": "#1f77b4", "cephmount-strict": "#9467bd", "ceph-fuse": "#ff7f0e",
          "direct": "#2ca02c"}


def reference(document: Document) -> dict[str, str] | None:
    """The target others are shown relative to: ceph-fuse, else direct libcephfs."""
    targets = available(document)
    return next((t for name in ("ceph-fuse", "direct") for t in targets if t["name"] == name),
                None)


def by_workload(document: Document, path: Path) -> None:
    """One panel per N: every measure, each target's figure over the reference's."""
    ref = reference(document)
    if ref is None:
        return
    targets = available(document)
    targets = [t for t in targets if t is not ref]  # the reference is the line at 1
    if not targets:
        return
    figures = index(document)
    measures = document["measures"]
    ns = document["clients"]
    fig, axes = plt.subplots(len(ns), 1, figsize=(12, 3.2 * len(ns)), squeeze=False)
    width = 0.8 / len(targets)
    for row, clients in enumerate(ns):
        ax = axes[row][0]
        for k, target in enumerate(targets):
            ratios = []
            for m in measures:
                here = value(figures, m["name"], target["name"], clients)
                base = value(figures, m["name"], ref["name"], clients)
                ratios.append(here / base if here is not None and base else 0.0)
            # Bars grow from 1 up or down, on a log scale: 2x and 0.5x look alike.
            ax.bar([i + (k - (len(targets) - 1) / 2) * width for i in range(len(measures))],
                   [r - 1 if r else 0 for r in ratios], width, bottom=1,
                   label=target["label"], color=COLORS.get(target["name"]))
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_ratio_label))
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xticks(range(len(measures)))
        ax.set_xticklabels([m["name"] for m in measures], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(f"N={clients}: x {ref['label']}")
    axes[0][0].set_title(f"Throughput relative to {ref['label']} (= 1, log scale), "
                         "higher is better")
    axes[0][0].legend(fontsize=8, ncol=len(targets))
    _save(fig, path, document)


def _ratio_label(y: float, _position: object) -> str:
    return f"{y:g}" if y >= 1 else f"1/{1 / y:g}"


def by_n(document: Document, path: Path) -> None:
    """One panel per measure: the summed figure of each target against N."""
    targets = available(document)
    figures = index(document)
    measures = document["measures"]
    ns = document["clients"]
    cols = min(4, len(measures))
    rows = math.ceil(len(measures) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for slot, measure in enumerate(measures):
        ax = axes[slot // cols][slot % cols]
        for target in targets:
            points = [value(figures, measure["name"], target["name"], n) for n in ns]
            ax.plot(ns, [p if p is not None else math.nan for p in points], marker="o",
                    label=target["label"], color=COLORS.get(target["name"]))
        ax.set_title(measure["title"], fontsize=8)
        ax.set_xticks(ns)
        ax.set_xlabel("N clients", fontsize=7)
        ax.set_ylabel(measure["unit"], fontsize=7)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=7)
    for slot in range(len(measures), rows * cols):
        axes[slot // cols][slot % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    _save(fig, path, document)


def _save(fig: plt.Figure, path: Path, document: Document) -> None:
    m = document["machine"]
    fig.text(0.01, 0.005, f"{document['started']}, {m['cores']} cores, {m['memory_gib']} GiB, "
             f"profile {document['profile']}", fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_charts(document: Document, directory: Path) -> list[Path]:
    paths = [directory / "by_workload.png", directory / "by_n.png"]
    by_workload(document, paths[0])
    by_n(document, paths[1])
    return [p for p in paths if p.exists()]
