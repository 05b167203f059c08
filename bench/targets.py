"""The mounters compared, and a session of N separate clients of one of them.

A session lives for one cell (one workload, one target, one N): its clients
are mounted fresh, so no cache, capability or memory carries over from the
previous cell, and unmounted at the end whatever happened.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from bench.cluster import Cluster
from bench.direct_client import DirectClient, DirectError, broadcast
from bench.fio import Env, run_fio, run_ls
from bench.fiojson import FioJob, make_job
from bench.mounts import FuseMount
from bench.procs import python_module
from bench.workloads import BENCH_DIR, Step

TARGET_NAMES = ("cephmount", "cephmount-strict", "ceph-fuse", "direct")


class Session(ABC):
    """N clients of one target, each its own process and its own Ceph client."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    @property
    @abstractmethod
    def pids(self) -> list[int]:
        """The client processes, one per client, for the memory figures."""

    @abstractmethod
    def bench_dir(self, client: int) -> str:
        """The run's directory on the subvolume, as client `client` names it."""

    @abstractmethod
    def run(self, step: Step, envs: Mapping[int, Env]) -> dict[int, FioJob]:
        """Run `step` on the clients that are keys of `envs`, all at once."""

    @abstractmethod
    def close(self) -> None:
        """Unmount every client; safe to call after a partial start."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


class Target(ABC):
    def __init__(self, name: str, label: str, cluster: Cluster) -> None:
        self.name, self.label, self.cluster = name, label, cluster

    def unavailable(self) -> str | None:
        """Why this target cannot run here, or None."""
        return None

    @abstractmethod
    def open(self, clients: int, work: Path, timeout: float) -> Session:
        """Mount `clients` separate clients; logs and scratch files go under `work`."""


# -- FUSE targets ----------------------------------------------------------------------------

class FuseSession(Session):
    def __init__(self, mounts: Sequence[FuseMount], work: Path, timeout: float) -> None:
        super().__init__(timeout)
        self.mounts = list(mounts)
        self.work = work
        try:
            for mount in self.mounts:
                mount.start()
            for mount in self.mounts:
                mount.wait_mounted()
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [pid for mount in self.mounts for pid in mount.pids()[:1]]

    def bench_dir(self, client: int) -> str:
        return f"{self.mounts[client].mountpoint}/{BENCH_DIR}"

    def run(self, step: Step, envs: Mapping[int, Env]) -> dict[int, FioJob]:
        if step.job is None:
            return run_ls({c: f"{env['BENCH_DIR']}/{step.section}" for c, env in envs.items()},
                          step.ls, self.timeout)
        return run_fio(step.job_path, step.section, envs, self.work, self.timeout)

    def close(self) -> None:
        try:
            for mount in self.mounts:
                mount.detach()
        finally:
            for mount in self.mounts:
                mount.reap()


class FuseTarget(Target):
    """A mounter run as `mount_argv`, one process per mount, mounted under `mount_root`."""

    def __init__(self, name: str, label: str, cluster: Cluster, mount_root: Path) -> None:
        super().__init__(name, label, cluster)
        self.mount_root = mount_root

    def unavailable(self) -> str | None:
        missing = [tool for tool in ("fio", "fusermount3") if shutil.which(tool) is None]
        return f"{' and '.join(missing)} not installed" if missing else None

    @abstractmethod
    def mount_argv(self, mountpoint: Path) -> list[str]: ...

    def umount_argv(self, mountpoint: Path) -> list[str]:
        return ["fusermount3", "-u", str(mountpoint)]

    def open(self, clients: int, work: Path, timeout: float) -> Session:
        mounts = []
        for client in range(clients):
            point = self.mount_root / f"{self.name}.{client}"
            mounts.append(FuseMount(self.mount_argv(point), self.umount_argv(point), point,
                                    work / f"{self.name}-{client}.log"))
        return FuseSession(mounts, work, timeout)


class CephFuse(FuseTarget):
    def __init__(self, cluster: Cluster, mount_root: Path) -> None:
        super().__init__("ceph-fuse", "ceph-fuse", cluster, mount_root)

    def unavailable(self) -> str | None:
        if shutil.which("ceph-fuse") is None:
            return "ceph-fuse not installed"
        return super().unavailable()

    def mount_argv(self, mountpoint: Path) -> list[str]:
        c = self.cluster
        return ["ceph-fuse", "-f", "-c", str(c.conf), "--id", c.client_id, "-k", str(c.keyring),
                "-r", c.subvolume_path, str(mountpoint)]


class Cephmount(FuseTarget):
    """`cephmount mount -f`, in its default coherence mode or in strict mode."""

    def __init__(self, cluster: Cluster, mount_root: Path, strict: bool) -> None:
        name = "cephmount-strict" if strict else "cephmount"
        super().__init__(name, "cephmount strict" if strict else "cephmount", cluster,
                         mount_root)
        self.strict = strict

    def unavailable(self) -> str | None:
        return super().unavailable() or cephmount_mount_missing()

    def mount_argv(self, mountpoint: Path) -> list[str]:
        c = self.cluster
        options = f"conf={c.conf},id={c.client_id},keyring={c.keyring}"
        if self.strict:
            options += ",coherence=strict"
        return python_module("cephmount.cli", "mount", "-f", "-o", options,
                             f"{c.fs_name}:{c.subvolume_path}", str(mountpoint))

    def umount_argv(self, mountpoint: Path) -> list[str]:
        return python_module("cephmount.cli", "umount", str(mountpoint))


def cephmount_mount_missing() -> str | None:
    """None when `cephmount mount` exists; else why the cephmount targets are skipped."""
    try:
        result = subprocess.run(python_module("cephmount.cli", "mount", "--help"),
                                capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`cephmount mount --help` failed: {exc}"
    if result.returncode == 0:
        return None
    last = (result.stderr.strip().splitlines() or ["no output"])[-1]
    return f"`cephmount mount` is not available yet ({last})"


# -- libcephfs called directly ---------------------------------------------------------------

class DirectSession(Session):
    def __init__(self, cluster: Cluster, clients: int, work: Path, timeout: float) -> None:
        super().__init__(timeout)
        self.clients: list[DirectClient] = []
        try:
            for index in range(clients):
                self.clients.append(DirectClient(cluster, work / f"direct-{index}.log"))
            for client in self.clients:
                client.wait_ready()
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [client.pid for client in self.clients]

    def bench_dir(self, client: int) -> str:
        return f"/{BENCH_DIR}"

    def run(self, step: Step, envs: Mapping[int, Env]) -> dict[int, FioJob]:
        if step.job is None:
            requests = [{"op": "ls", "dir": f"{env['BENCH_DIR']}/{step.section}",
                         "stat": step.ls == "-l"} for env in envs.values()]
        else:
            requests = [{"op": "job", "file": str(step.job_path), "section": step.section,
                         "env": dict(env)} for env in envs.values()]
        chosen = [self.clients[client] for client in envs]
        replies = broadcast(chosen, requests, self.timeout)
        return {client: reply.get("job") or make_job(step.section, 0, error=errno.EIO,
                                                     message=str(reply.get("error")))
                for client, reply in zip(envs, replies, strict=True)}

    def close(self) -> None:
        for client in self.clients:
            client.close()


class Direct(Target):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__("direct", "libcephfs direct", cluster)

    def open(self, clients: int, work: Path, timeout: float) -> Session:
        return DirectSession(self.cluster, clients, work, timeout)


def make_targets(names: Sequence[str], cluster: Cluster, mount_root: Path) -> list[Target]:
    """Targets in the order given; FUSE mounts go under `mount_root`."""
    factories: dict[str, Callable[[], Target]] = {
        "cephmount": lambda: Cephmount(cluster, mount_root, strict=False),
        "cephmount-strict": lambda: Cephmount(cluster, mount_root, strict=True),
        "ceph-fuse": lambda: CephFuse(cluster, mount_root),
        "direct": lambda: Direct(cluster),
    }
    unknown = [name for name in names if name not in factories]
    if unknown:
        raise ValueError(f"unknown targets {unknown}; choose from {list(TARGET_NAMES)}")
    return [factories[name]() for name in names]


__all__ = ["TARGET_NAMES", "DirectError", "Session", "Target", "cephmount_mount_missing",
           "make_targets"]
