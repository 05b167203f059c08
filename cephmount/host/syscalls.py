"""mount(2) and umount2(2) for bind mounts and FUSE mounts made without a helper."""

from __future__ import annotations

import ctypes
import errno
import os

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(ret: int, what: str, path: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def mount(source: str, target: str, fs_type: str | None, flags: int,
          data: str | None = None) -> None:
    ret = _libc.mount(source.encode(), target.encode(),
                      fs_type.encode() if fs_type else None, flags,
                      data.encode() if data else None)
    _check(ret, "mount", target)


def bind(source: str, target: str, read_only: bool) -> None:
    """Bind `source` at `target`, nosuid and nodev, read-only if asked.

    A bind mount takes its flags from a remount: read-only is set on the new
    mount alone, never on `source`.
    """
    mount(source, target, None, MS_BIND)
    flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (MS_RDONLY if read_only else 0)
    try:
        mount("none", target, None, flags)
    except OSError:
        unmount(target, detach=True)
        raise


def unmount(target: str, detach: bool = False) -> None:
    """umount2(2), without following a symlink at `target`; EINVAL if not mounted."""
    ret = _libc.umount2(target.encode(), UMOUNT_NOFOLLOW | (MNT_DETACH if detach else 0))
    _check(ret, "umount", target)


def unmount_if_mounted(target: str, detach: bool = False) -> bool:
    """Unmount `target`; False when nothing was mounted there."""
    try:
        unmount(target, detach)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT):
            return False
        raise
    return True
