"""A long-lived mount's churn: many files created, written, looked at and removed.

Used by the CI soak test (tests/fuse/test_soak.py) and by the longer run
(`python -m tests.soak.long_run`), which records its result in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Every so many files is also appended to with O_APPEND (its own path, with a lock).
APPEND_EVERY = 50


def stats(mountpoint: Path) -> dict[str, int]:
    """The mount's counters (`getfattr -n cephmount.stats`)."""
    return dict(json.loads(os.getxattr(mountpoint, "cephmount.stats")))


def status_bytes(pid: int, field: str) -> int:
    """A size from /proc/PID/status, in bytes (VmRSS: resident; VmData: the heaps)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def rss_bytes(pid: int) -> int:
    return status_bytes(pid, "VmRSS")


def _one_file(directory: Path, index: int) -> None:
    path = directory / f"f{index}"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
    try:
        os.write(fd, b"%d\n" % index)
    finally:
        os.close(fd)
    if index % APPEND_EVERY == 0:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"appended\n")
        finally:
            os.close(fd)
    os.stat(path)


def churn(directory: Path, files: int, batch: int = 2000, threads: int = 4) -> None:
    """Create `files` files in batches; each batch is listed, statted and removed."""
    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, files, batch):
            indexes = range(start, min(start + batch, files))
            list(pool.map(lambda i: _one_file(directory, i), indexes))
            names = os.listdir(directory)
            assert len(names) == len(indexes), (len(names), len(indexes))
            list(pool.map(lambda name: os.unlink(directory / name), names))
