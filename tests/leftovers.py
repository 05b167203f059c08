"""What a test run left behind: mounts under its dir and processes it started.

`make test` runs this after pytest, whatever pytest did. A test still running
when its timeout comes (say a libcephfs call that never returns) ends the whole
run at once, by pytest-timeout's thread method, and no fixture's teardown runs.
Everything a run makes lives under its own dir (CEPHMOUNT_TEST_TMP), and every
process it starts inherits that variable, so what is left is found without
touching anything else on the host. Mounts are detached deepest first, which
also ends the FUSE servers behind them; processes still running after a grace
get SIGTERM, then SIGKILL. The cluster's own daemons (those in its pid files; a
test that restarts one starts it with the variable too) are left to
`cephmount dev-cluster down`.

Exit status 1 when anything was left: a run that passed must not leave a mount
or a process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from cephmount.host.mountinfo import mounts
from cephmount.host.syscalls import unmount_if_mounted

MARKER = "CEPHMOUNT_TEST_TMP"
GRACE_S = 10.0


def leftover_mounts(base: Path) -> list[str]:
    """Mountpoints at or under `base`, deepest first."""
    prefix = str(base).rstrip("/") + "/"
    found = {m.mountpoint for m in mounts() if (m.mountpoint + "/").startswith(prefix)}
    return sorted(found, key=lambda path: path.count("/"), reverse=True)


def cluster_daemons(cluster: Path) -> set[int]:
    """The pids in the cluster's pid files."""
    pids = set()
    for pid_file in (cluster / "pids").glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pids.add(int(pid_file.read_text()))
    return pids


def leftover_processes(base: Path, spared: set[int]) -> list[int]:
    """Processes, other than this one and `spared`, whose environment names `base` as
    the run's dir."""
    marker = f"{MARKER}={base}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared | {os.getpid()}:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def _still_running(base: Path, spared: set[int], seconds: float) -> list[int]:
    """The leftover processes that have not exited within `seconds`."""
    deadline = time.monotonic() + seconds
    while (pids := leftover_processes(base, spared)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return pids


def end_processes(base: Path, spared: set[int]) -> list[tuple[int, str]]:
    """Each process still running after a grace (a FUSE server whose mount was just
    unmounted is on its way out) gets SIGTERM, and SIGKILL if it outlives a second
    grace; their pids and command lines."""
    pids = _still_running(base, spared, GRACE_S)
    ended = [(pid, _command(pid)) for pid in pids]
    _signal_all(pids, signal.SIGTERM)
    _signal_all(_still_running(base, spared, GRACE_S), signal.SIGKILL)
    return ended


def main(argv: list[str]) -> int:
    """`python -m tests.leftovers RUN_DIR CLUSTER_DIR`"""
    base, cluster = Path(argv[1]).resolve(), Path(argv[2])
    left = leftover_mounts(base)
    for mountpoint in left:
        unmount_if_mounted(mountpoint, detach=True)
        print(f"test: detached a mount the run left at {mountpoint}", file=sys.stderr)
    pids = end_processes(base, cluster_daemons(cluster))
    for pid, command in pids:
        print(f"test: ended process {pid} ({command}), which the run left running",
              file=sys.stderr)
    return 1 if left or pids else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
