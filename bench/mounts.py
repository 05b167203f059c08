"""One FUSE mount made by a command we start, and its unmount, whatever happens."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.procs import start, stop, tail
from cephmount.host import mountinfo


class MountError(Exception):
    """A mount command failed or did not mount in time."""


def fuse_mountpoints() -> set[str]:
    """Mount points of FUSE filesystems, from /proc/self/mountinfo."""
    return {entry.mountpoint for entry in mountinfo.mounts()
            if entry.fs_type.startswith("fuse")}


def is_mounted(mountpoint: Path) -> bool:
    return str(mountpoint) in fuse_mountpoints()


def _mentions(pid: int, text: str) -> bool:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(text.encode() in word for word in words)


class FuseMount:
    """`mount_argv` serves `mountpoint` (in the foreground, ideally); `umount_argv` ends it."""

    def __init__(self, mount_argv: Sequence[str], umount_argv: Sequence[str],
                 mountpoint: Path, log: Path) -> None:
        self.mount_argv = list(mount_argv)
        self.umount_argv = list(umount_argv)
        self.mountpoint = mountpoint
        self.log = log
        self.process: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.process = start(self.mount_argv, self.log)

    def wait_mounted(self, timeout: float = 60.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not is_mounted(self.mountpoint):
            code = self.process.poll()
            if code not in (None, 0):
                raise MountError(f"{self.mount_argv[0]} exited with {code}: {tail(self.log)}")
            if time.monotonic() > deadline:
                raise MountError(f"{self.mountpoint} not mounted after {timeout:.0f} s: "
                                 f"{tail(self.log)}")
            time.sleep(0.05)

    def pids(self) -> list[int]:
        """The serving process: ours, or (if the command daemonized) whoever names the
        mount point on its command line."""
        if self.process is not None and self.process.poll() is None:
            return [self.process.pid]
        point = str(self.mountpoint)
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and _mentions(int(p), point)]

    def detach(self) -> None:
        """Unmount (lazily as a last resort); the server then exits on its own."""
        for _ in range(5):
            if not is_mounted(self.mountpoint):
                return
            subprocess.run(self.umount_argv, capture_output=True, timeout=60, check=False)
            if is_mounted(self.mountpoint):
                time.sleep(0.5)
        if is_mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)],
                           capture_output=True, timeout=60, check=False)

    def reap(self) -> None:
        """Wait for our server to exit (stop it if it does not), remove the mount point."""
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(20)
            stop(self.process)
        with contextlib.suppress(OSError):
            self.mountpoint.rmdir()  # never rmtree: it could still be a live mount
