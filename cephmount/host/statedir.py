"""State directories and the files in them: root's (or the user's) alone, never through a symlink.

A state dir someone else owns or may write to could have a record or a log
replaced by a symlink to any file; so a dir is refused unless the caller owns
it and no one else may write to it, and files are opened with O_NOFOLLOW.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class StateDirError(OSError):
    """A state dir that is not safe to use; the message says why."""


def private_dir(path: Path, mode: int = 0o700) -> Path:
    """Create `path` (and its parents) if missing; refuse it unless it is ours and private."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise StateDirError(f"state dir {path} is not a directory")
    if info.st_uid != os.geteuid():
        raise StateDirError(f"state dir {path} belongs to uid {info.st_uid}, not to us")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StateDirError(f"state dir {path} is writable by others")
    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """Open a file of a private dir for us alone (0600), refusing a symlink."""
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new content.

    The new content is written to a dot-file beside it first: watchers of the
    dir (kubelet's plugin prober) ignore dot-files.
    """
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    with os.fdopen(open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as file:
        os.fchmod(file.fileno(), mode)
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.rename(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_private(path: Path) -> bytes | None:
    """The content of a private file, None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as file:
        return file.read()
