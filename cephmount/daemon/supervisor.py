"""Volumes, their workers and their targets: the daemon's whole job.

Invariants (docs/daemon.md explains them):
- one FUSE mount per volume, at `<state>/mounts/<id>/mnt`, made by the daemon
  with mount(2); the daemon keeps a descriptor of its connection for as long
  as the volume exists, so a worker's death never ends the connection;
- every target is a bind mount of that staging mount; the volume goes when
  its last target goes;
- the state file lists every volume and target there is, and is written
  after every change, before the reply;
- each volume has its own lock: requests for one volume are served one at a
  time, requests for different volumes concurrently.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import trio

from cephmount.daemon import targets as target_mounts
from cephmount.daemon import workers
from cephmount.daemon.budget import BudgetExceeded, MemoryBudget
from cephmount.daemon.protocol import Mount, MountInfo, ProtocolError, TargetInfo, Unmount
from cephmount.daemon.state import MountRecord, StateFile, TargetRecord, pid_alive
from cephmount.host import fuse, mountinfo, syscalls
from cephmount.host.node import node_identity
from cephmount.host.statedir import private_dir
from cephmount.worker.config import (
    EXIT_SESSION_LOST,
    STAGING_DIR,
    ControlRequest,
    VolumeSpec,
    WorkerStart,
)

log = logging.getLogger("cephmount.daemon")
WORKER_START_SLACK = 15.0
STOP_GRACE = 30.0
RESTART_BACKOFF = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)


def volume_id(volume: VolumeSpec) -> str:
    """Names a volume on this node: what is mounted, from where, as whom, how coherent."""
    identity = (volume.fs_name, volume.client_id, volume.path, volume.group, volume.subvolume,
                volume.conf, volume.coherence)
    return hashlib.sha256(repr(identity).encode()).hexdigest()[:16]


@dataclass
class Volume:
    record: MountRecord
    directory: Path
    lock: trio.Lock = field(default_factory=trio.Lock)
    state: str = "starting"
    fuse_fd: int = -1
    fuse_init: bytes = b""
    worker: workers.WorkerProcess | None = None
    stopping: bool = False
    exited: trio.Event = field(default_factory=trio.Event)
    cache_share: int = 0

    @property
    def mount_id(self) -> str:
        return self.record.mount_id

    @property
    def staging(self) -> Path:
        return self.directory / STAGING_DIR

    def info(self, stats: dict[str, object] | None = None) -> MountInfo:
        return MountInfo(
            mount_id=self.mount_id, source=self.record.volume.describe(),
            coherence=self.record.volume.coherence, staging=str(self.staging),
            targets=[TargetInfo(t.path, t.read_only) for t in self.record.targets],
            state=self.state, worker_pid=self.worker.pid if self.worker else 0,
            worker_started=self.worker.started if self.worker else 0.0,
            restarts=self.record.restarts, takeovers=self.record.takeovers,
            session_losses=self.record.session_losses, cache_share=self.cache_share,
            stats=stats)


class Supervisor:
    def __init__(self, state_dir: Path, nursery: trio.Nursery, budget: MemoryBudget,
                 default_conf: str) -> None:
        self._state_dir = state_dir
        self._mounts_dir = private_dir(state_dir / "mounts")
        self._logs_dir = private_dir(state_dir / "log")
        self._state = StateFile(state_dir)
        self._nursery = nursery
        self._budget = budget
        self._default_conf = default_conf
        self._volumes: dict[str, Volume] = {}
        self._creating: dict[str, trio.Lock] = {}
        self._node = node_identity()

    # -- requests -----------------------------------------------------------------------

    async def mount(self, request: Mount) -> MountInfo:
        spec = request.volume.spec(self._default_conf)
        mount_id = volume_id(spec)
        target_mounts.check_target(request.target)
        async with self._creating.setdefault(mount_id, trio.Lock()):
            volume = self._volumes.get(mount_id)
            if volume is None:
                volume = await self._create(mount_id, spec, request.key)
        async with volume.lock:
            if volume.stopping:
                raise ProtocolError(f"volume {mount_id} is being unmounted; retry", "busy")
            try:
                await self._add_target(volume, request.target, request.read_only)
            except BaseException:
                if not volume.record.targets:  # made for this target alone: leave nothing
                    await self._stop(volume)
                raise
        return volume.info()

    async def unmount(self, request: Unmount) -> MountInfo:
        volume = self._volume_with_target(request.target)
        async with volume.lock:
            target_mounts.unbind(request.target, request.force)
            volume.record.targets = [t for t in volume.record.targets
                                     if t.path != request.target]
            self._save()
            log.info("mount %s: target %s unmounted", volume.mount_id, request.target)
            if not volume.record.targets:
                await self._stop(volume)
        return volume.info()

    async def shutdown_mounts(self) -> list[MountInfo]:
        """Unmount everything (node drain): busy targets are detached."""
        done = []
        for volume in list(self._volumes.values()):
            for target in list(volume.record.targets):
                done.append(await self.unmount(Unmount(target.path, force=True)))
        return done

    def volumes(self) -> list[Volume]:
        return sorted(self._volumes.values(), key=lambda v: v.mount_id)

    async def stats(self, volume: Volume) -> dict[str, object] | None:
        """What the volume's worker reports, None when it does not answer."""
        if volume.worker is None:
            return None
        try:
            return await trio.to_thread.run_sync(workers.ask, volume.directory,
                                                 ControlRequest("stats"), 2.0)
        except (OSError, msgspec.DecodeError):
            return None

    def _volume_with_target(self, target: str) -> Volume:
        for volume in self._volumes.values():
            if any(t.path == target for t in volume.record.targets):
                return volume
        raise ProtocolError(f"{target} is not a target of any cephmount volume", "not-mounted")

    # -- volumes ------------------------------------------------------------------------

    async def _create(self, mount_id: str, spec: VolumeSpec, key: str | None) -> Volume:
        wanted = {v.mount_id: v.record.volume.cache_bytes for v in self._volumes.values()}
        try:
            shares = self._budget.shares({**wanted, mount_id: spec.cache_bytes})
        except BudgetExceeded as exc:
            raise ProtocolError(str(exc), "no-memory") from None
        directory = private_dir(self._mounts_dir / mount_id)
        record = MountRecord(mount_id, spec, f"cephmount-{self._node}-{mount_id}", [], key)
        volume = Volume(record, directory, cache_share=shares[mount_id])
        volume.staging.mkdir(exist_ok=True)
        syscalls.unmount_if_mounted(str(volume.staging), detach=True)  # a stale one
        try:
            await self._connect(volume)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self._volumes[mount_id] = volume
        self._save()
        log.info("mount %s: %s serving at %s (worker %d)", mount_id, spec.describe(),
                 volume.staging, volume.record.worker_pid)
        await self._rebalance()
        return volume

    async def _connect(self, volume: Volume) -> None:
        """Mount a new FUSE connection at the staging dir and start its first worker."""
        spec = fuse.FuseMountSpec(str(volume.staging), volume.record.volume.describe(),
                                  allow_other=volume.record.volume.allow_other,
                                  default_permissions=volume.record.volume.default_permissions)
        volume.fuse_fd, volume.fuse_init = await trio.to_thread.run_sync(
            fuse.open_and_mount, spec)
        try:
            await self._start_worker(volume, replacement=False)
        except BaseException:
            await trio.to_thread.run_sync(
                syscalls.unmount_if_mounted, str(volume.staging), True)
            self._close_connection(volume)
            raise

    async def _start_worker(self, volume: Volume, replacement: bool) -> None:
        spec = msgspec.structs.replace(volume.record.volume, cache_bytes=volume.cache_share)
        start = WorkerStart(volume.mount_id, spec, volume.record.session_uuid,
                            str(volume.directory), volume.fuse_init, replacement,
                            volume.record.key)
        try:
            worker = await trio.to_thread.run_sync(
                workers.spawn, start, volume.fuse_fd, self._logs_dir / f"{volume.mount_id}.log",
                spec.timeout + WORKER_START_SLACK)
        except workers.WorkerFailed as exc:
            raise ProtocolError(f"cannot mount {spec.describe()}: {exc}", "mount-failed") from None
        self._watch(volume, worker)

    def _watch(self, volume: Volume, worker: workers.WorkerProcess) -> None:
        volume.worker = worker
        volume.state = "serving"
        volume.record.worker_pid = worker.pid
        volume.record.worker_started = worker.started
        self._nursery.start_soon(self._await_exit, volume, worker)

    async def _await_exit(self, volume: Volume, worker: workers.WorkerProcess) -> None:
        await trio.lowlevel.wait_readable(worker.pidfd)
        status = worker.reap()
        if volume.worker is not worker:
            return
        volume.worker = None
        if volume.stopping:
            volume.exited.set()
            return
        volume.state = "recovering"
        if status == EXIT_SESSION_LOST:
            volume.record.session_losses += 1
            log.warning("mount %s: worker %d lost its Ceph session (evicted or blocklisted); "
                        "starting a replacement with a new session", volume.mount_id,
                        worker.pid)
        else:
            log.warning("mount %s: worker %d died (status %s); starting a replacement",
                        volume.mount_id, worker.pid, "unknown" if status is None else status)
        await self._replace(volume)

    async def _replace(self, volume: Volume) -> None:
        """Start a successor on the same FUSE connection, retrying with a growing pause."""
        pauses = itertools.chain(RESTART_BACKOFF, itertools.repeat(RESTART_BACKOFF[-1]))
        for attempt, pause in enumerate(pauses):
            await trio.sleep(pause)
            async with volume.lock:
                if volume.stopping:
                    return
                try:
                    await self._start_worker(volume, replacement=True)
                except ProtocolError as exc:
                    log.error("mount %s: replacement %d failed: %s", volume.mount_id,
                              attempt + 1, exc)
                    continue
                volume.record.restarts += 1
                self._save()
                log.info("mount %s: worker %d took over the mount", volume.mount_id,
                         volume.record.worker_pid)
                return

    async def _stop(self, volume: Volume) -> None:
        """Unmount the staging mount; its worker then ends; forget the volume."""
        volume.stopping = True
        volume.state = "stopping"
        staging = str(volume.staging)
        try:
            await trio.to_thread.run_sync(syscalls.unmount_if_mounted, staging)
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            await trio.to_thread.run_sync(syscalls.unmount, staging, True)
        if volume.worker is not None:
            with trio.move_on_after(STOP_GRACE):
                await volume.exited.wait()
            if volume.worker is not None:
                log.warning("mount %s: worker %d did not stop; killing it", volume.mount_id,
                            volume.worker.pid)
                volume.worker.kill()
        self._close_connection(volume)
        del self._volumes[volume.mount_id]
        self._save()
        shutil.rmtree(volume.directory, ignore_errors=True)
        log.info("mount %s: unmounted", volume.mount_id)
        await self._rebalance()

    def _close_connection(self, volume: Volume) -> None:
        if volume.fuse_fd >= 0:
            os.close(volume.fuse_fd)
            volume.fuse_fd = -1

    async def _rebalance(self) -> None:
        """Give each worker its share of the memory budget."""
        wanted = {v.mount_id: v.record.volume.cache_bytes for v in self._volumes.values()}
        for mount_id, share in self._budget.shares(wanted).items():
            volume = self._volumes[mount_id]
            if share == volume.cache_share or volume.worker is None:
                continue
            volume.cache_share = share
            with contextlib.suppress(OSError, msgspec.DecodeError):
                await trio.to_thread.run_sync(
                    workers.ask, volume.directory, ControlRequest("cache", share))

    # -- targets ------------------------------------------------------------------------

    async def _add_target(self, volume: Volume, target: str, read_only: bool) -> None:
        device = target_mounts.device_of(str(volume.staging))
        known = next((t for t in volume.record.targets if t.path == target), None)
        if known is not None and target_mounts.is_bound(target, device):
            if known.read_only != read_only:
                raise ProtocolError(f"target {target} is mounted "
                                    f"{'read-only' if known.read_only else 'read-write'} "
                                    "already", "busy")
            return
        await trio.to_thread.run_sync(target_mounts.bind, str(volume.staging), target,
                                      read_only)
        volume.record.targets = [t for t in volume.record.targets if t.path != target]
        volume.record.targets.append(TargetRecord(target, read_only))
        self._save()
        log.info("mount %s: target %s%s", volume.mount_id, target,
                 " (read-only)" if read_only else "")

    def _save(self) -> None:
        self._state.save({v.mount_id: v.record for v in self._volumes.values()})

    # -- start-up -----------------------------------------------------------------------

    async def recover(self) -> None:
        """Take back the volumes of the state file: adopt live workers, remount the rest."""
        for record in self._state.load().values():
            volume = Volume(record, self._mounts_dir / record.mount_id,
                            cache_share=record.volume.cache_bytes)
            self._volumes[record.mount_id] = volume
            try:
                await self._recover(volume)
            except (ProtocolError, OSError, workers.WorkerFailed) as exc:
                volume.state = "failed"
                log.error("mount %s: cannot recover: %s", volume.mount_id, exc)
        self._save()
        await self._rebalance()

    async def _recover(self, volume: Volume) -> None:
        record = volume.record
        staging = str(volume.staging)
        alive = pid_alive(record.worker_pid) and workers.is_worker_of(
            record.worker_pid, volume.directory)
        if alive and mountinfo.is_mountpoint(staging):
            with contextlib.suppress(OSError, workers.WorkerFailed):
                fd, init = await trio.to_thread.run_sync(workers.take_back, volume.directory)
                volume.fuse_fd, volume.fuse_init = fd, init
                self._watch(volume, workers.adopt(record.worker_pid, record.worker_started))
                record.takeovers += 1
                log.info("mount %s: adopted worker %d, still serving %s", volume.mount_id,
                         record.worker_pid, record.volume.describe())
                return
        if alive:
            os.kill(record.worker_pid, 9)
        await self._remount(volume)

    async def _remount(self, volume: Volume) -> None:
        """The connection is gone (its worker died while no daemon held it): mount again.

        Processes that had files open through the old mount keep getting errors
        on them (docs/daemon.md); new opens through every target work again.
        """
        for target in volume.record.targets:
            await trio.to_thread.run_sync(syscalls.unmount_if_mounted, target.path, True)
        await trio.to_thread.run_sync(syscalls.unmount_if_mounted, str(volume.staging), True)
        private_dir(volume.directory)
        volume.staging.mkdir(exist_ok=True)
        await self._connect(volume)
        kept = []
        for target in volume.record.targets:
            try:
                target_mounts.check_target(target.path)
                await trio.to_thread.run_sync(target_mounts.bind, str(volume.staging),
                                              target.path, target.read_only)
            except (ProtocolError, OSError) as exc:
                log.warning("mount %s: target %s dropped: %s", volume.mount_id, target.path,
                            exc)
                continue
            kept.append(target)
        volume.record.targets = kept
        log.info("mount %s: mounted again after its worker died with no daemon running; "
                 "%d targets bound again", volume.mount_id, len(kept))
        if not kept:
            await self._stop(volume)

    def close(self) -> None:
        """The daemon stops: leave every mount to its worker."""
        for volume in self._volumes.values():
            self._close_connection(volume)
