"""Targets: bind mounts of a volume's staging FUSE mount, where pods and hosts use it."""

from __future__ import annotations

import errno
import os
import stat

from cephmount.daemon.protocol import ProtocolError
from cephmount.host import mountinfo, syscalls


def check_target(path: str) -> None:
    """Refuse a target that is missing, not a directory, or a symlink."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise ProtocolError(f"target {path} does not exist", "no-target") from None
    except OSError as exc:
        raise ProtocolError(f"target {path}: {exc.strerror}", "no-target") from None
    if stat.S_ISLNK(info.st_mode):
        raise ProtocolError(f"target {path} is a symlink; give the real path", "no-target")
    if not stat.S_ISDIR(info.st_mode):
        raise ProtocolError(f"target {path} is not a directory", "no-target")


def bind(staging: str, target: str, read_only: bool) -> None:
    if mountinfo.is_mountpoint(target):
        raise ProtocolError(f"target {target} is busy: something else is mounted there", "busy")
    syscalls.bind(staging, target, read_only)


def is_bound(target: str, staging_device: str | None) -> bool:
    """Whether the top mount at `target` is of the staging mount's device."""
    stacked = mountinfo.mounted_at(target)
    return bool(stacked) and staging_device is not None and stacked[-1].device == staging_device


def unbind(target: str, force: bool) -> None:
    """Unmount a target; a busy one only with `force` (then lazily). Gone already is fine."""
    try:
        syscalls.unmount_if_mounted(target)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise ProtocolError(f"cannot unmount {target}: {exc.strerror}", "error") from None
        if not force:
            raise ProtocolError(
                f"target {target} is busy (files open or a process working in it); "
                "unmount it when they are done, or force it", "busy") from None
        syscalls.unmount(target, detach=True)


def device_of(staging: str) -> str | None:
    """The staging FUSE mount's device (major:minor), None when it is not mounted."""
    stacked = mountinfo.mounted_at(staging)
    return stacked[-1].device if stacked else None
