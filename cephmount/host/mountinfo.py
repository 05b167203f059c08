"""The host's mount table as /proc/self/mountinfo has it, escapes decoded.

The kernel writes a space, tab, newline and backslash inside a path as
`\\040`, `\\011`, `\\012` and `\\134`; a path compared undecoded never
matches, and a mountpoint with a space in it would never be seen as busy.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
_ESCAPE = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    """A mountinfo field with its octal escapes decoded."""
    return _ESCAPE.sub(lambda match: chr(int(match[1], 8)), field)


@dataclass(frozen=True)
class MountEntry:
    """One line of mountinfo (see proc(5))."""

    mount_id: int
    parent_id: int
    device: str
    root: str
    mountpoint: str
    mount_options: frozenset[str]
    fs_type: str
    source: str
    super_options: frozenset[str]

    @property
    def read_only(self) -> bool:
        return "ro" in self.mount_options


def parse_line(line: str) -> MountEntry:
    fields = line.rstrip("\n").split(" ")
    separator = fields.index("-", 6)
    fs_type, source, super_options = fields[separator + 1:separator + 4]
    return MountEntry(
        mount_id=int(fields[0]), parent_id=int(fields[1]), device=fields[2],
        root=unescape(fields[3]), mountpoint=unescape(fields[4]),
        mount_options=frozenset(fields[5].split(",")), fs_type=fs_type,
        source=unescape(source), super_options=frozenset(super_options.split(",")))


def mounts(table: Path = MOUNTINFO) -> list[MountEntry]:
    """Every mount this process sees, in mount order."""
    with open(table) as lines:
        return [parse_line(line) for line in lines if line.strip()]


def mounted_at(path: str | os.PathLike[str], table: Path = MOUNTINFO) -> list[MountEntry]:
    """The mounts stacked at `path` (absolute), lowest first; empty when none."""
    wanted = os.path.abspath(path)
    return [entry for entry in mounts(table) if entry.mountpoint == wanted]


def is_mountpoint(path: str | os.PathLike[str]) -> bool:
    """Whether something is mounted at `path`; a dead FUSE mount counts."""
    return bool(mounted_at(path))
