"""Peak resident memory of the client processes while a workload runs.

Each client (a ceph-fuse, a cephmount worker, a direct runner) is sampled from
/proc every `interval` with its descendants (a mount command may serve from a
child). A client's peak is the largest summed VmRSS seen, or its own VmHWM
(the kernel's exact high-water mark) read at the end, whichever is larger.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry))
    return tree


def _tree(pid: int, children: dict[int, list[int]]) -> Iterator[int]:
    yield pid
    for child in children.get(pid, []):
        yield from _tree(child, children)


class PeakRss:
    """Samples the process trees of `pids` in a thread; peaks in bytes per pid."""

    def __init__(self, pids: Sequence[int], interval: float = 0.1) -> None:
        self.pids = list(pids)
        self.peaks = dict.fromkeys(self.pids, 0)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="peak-rss", daemon=True)

    def sample(self) -> None:
        children = _children()
        for pid in self.pids:
            rss = sum(_status_kib(p, "VmRSS") for p in _tree(pid, children))
            hwm = _status_kib(pid, "VmHWM")
            self.peaks[pid] = max(self.peaks[pid], rss * 1024, hwm * 1024)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> list[int]:
        """Stop sampling (the processes must still be alive); peaks in `pids` order."""
        self._stop.set()
        self._thread.join()
        self.sample()
        return [self.peaks[pid] for pid in self.pids]


@contextmanager
def peak_rss(pids: Sequence[int], into: list[int]) -> Iterator[PeakRss]:
    """Sample while the block runs; `into` receives the per-client peaks."""
    sampler = PeakRss(pids)
    sampler.start()
    try:
        yield sampler
    finally:
        into[:] = sampler.stop()
