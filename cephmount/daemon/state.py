"""The daemon's durable record of its mounts: one file, replaced atomically.

Written on every change (write to a temporary file, fsync, rename, fsync the
directory), so that a daemon killed at any moment finds on its next start
either the old or the new record, never a torn one. The file is root's alone
(0600 in a 0700 directory): it holds the cephx keys the daemon was given.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from cephmount.host.statedir import atomic_write, read_private
from cephmount.worker.config import VolumeSpec

STATE_FILE = "mounts.json"


class TargetRecord(msgspec.Struct, frozen=True):
    path: str
    read_only: bool


class MountRecord(msgspec.Struct):
    mount_id: str
    volume: VolumeSpec
    session_uuid: str
    targets: list[TargetRecord]
    key: str | None = None
    worker_pid: int = 0
    worker_started: float = 0.0
    restarts: int = 0
    takeovers: int = 0
    session_losses: int = 0


class StateFile:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATE_FILE

    def load(self) -> dict[str, MountRecord]:
        data = read_private(self.path)
        if data is None:
            return {}
        records = msgspec.json.decode(data, type=list[MountRecord])
        return {record.mount_id: record for record in records}

    def save(self, records: dict[str, MountRecord]) -> None:
        atomic_write(self.path, msgspec.json.encode(sorted(records.values(),
                                                           key=lambda r: r.mount_id)))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0
