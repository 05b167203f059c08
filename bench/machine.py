"""The machine and the software versions a run's figures come from."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

from bench.fio import fio_version
from bench.procs import REPO
from bench.provenance import head_commit, uncommitted


def _first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if result.returncode == 0 and lines else "unavailable"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def machine() -> dict[str, object]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "hostname": socket.gethostname(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory / (1 << 30), 1),
        "os": _os_name(),
        "kernel": platform.release(),
    }


def summary(info: dict[str, object]) -> str:
    """One line for the table's caption."""
    return (f"{info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, "
            f"{info['os']}, Linux {info['kernel']}")


def versions(libcephfs: str, repo: Path = REPO) -> dict[str, object]:
    """Versions of everything measured; `commit` is the full hash of `repo`'s HEAD and
    `uncommitted` whether the tree differed from it (then the code is not that commit)."""
    try:
        cephmount = metadata.version("cephmount")
    except metadata.PackageNotFoundError:
        cephmount = "not installed"
    commit, dirty = head_commit(repo), bool(uncommitted(repo))
    return {
        "cephmount": f"{cephmount} ({commit[:7]}{'-dirty' if dirty else ''})",
        "commit": commit,
        "uncommitted": dirty,
        "ceph-fuse": _first_line(["ceph-fuse", "--version"]),
        "libcephfs": libcephfs,
        "fio": fio_version(),
        "python": platform.python_version(),
    }
