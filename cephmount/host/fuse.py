"""A FUSE connection opened and mounted here, handed to a server process.

Whoever opens /dev/fuse and keeps a descriptor of it keeps the connection
alive: the kernel aborts a FUSE connection only when its last descriptor is
closed. The daemon mounts with mount(2) itself, reads the kernel's FUSE_INIT
request and keeps both, so a server (a worker) that dies leaves the mount
waiting, not broken, and a replacement can take over where it stopped:

- each server receives the descriptor and the INIT bytes, lets libfuse read
  the INIT from a pipe, and switches libfuse to the real descriptor while it
  handles that INIT (see `cephmount.worker.takeover`);
- the first server's INIT reply completes the kernel's INIT; a replacement's
  is answered ENOENT by the kernel (already done) and ignored by libfuse;
- a replacement asks the kernel to send again the requests the dead server
  had read but not answered (FUSE_NOTIFY_RESEND, Linux 6.9).
"""

from __future__ import annotations

import os
import select
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from cephmount.host import mountinfo, syscalls

FUSE_DEVICE = "/dev/fuse"
FUSE_INIT = 26
FUSE_NOTIFY_RESEND = 7
# struct fuse_in_header: len, opcode, unique, nodeid, uid, gid, pid, padding
IN_HEADER = struct.Struct("<IIQQIIII")
# struct fuse_out_header: len, error (the notify code for notifications), unique (0)
OUT_HEADER = struct.Struct("<IiQ")
# The kernel refuses reads into buffers smaller than FUSE_MIN_READ_BUFFER.
READ_BUFFER = 1 << 20


class FuseConnectionError(OSError):
    """The kernel did not open a FUSE connection as asked."""


@dataclass(frozen=True)
class FuseMountSpec:
    """How the kernel mount is made: what `mount` and mountinfo show, and its flags."""

    mountpoint: str
    source: str
    subtype: str = "cephmount"
    allow_other: bool = True
    default_permissions: bool = True
    read_only: bool = False

    def data(self, fd: int, root_mode: int) -> str:
        options = [f"fd={fd}", f"rootmode={root_mode:o}", "user_id=0", "group_id=0"]
        if self.allow_other:
            options.append("allow_other")
        if self.default_permissions:
            options.append("default_permissions")
        return ",".join(options)

    def flags(self) -> int:
        flags = syscalls.MS_NOSUID | syscalls.MS_NODEV
        return flags | (syscalls.MS_RDONLY if self.read_only else 0)


def open_and_mount(spec: FuseMountSpec, timeout: float = 10.0) -> tuple[int, bytes]:
    """Open /dev/fuse, mount it at the spec's mountpoint, read the kernel's INIT.

    Returns the descriptor (close-on-exec) and the INIT request's bytes.
    Nothing is left mounted or open when this fails.
    """
    fd = os.open(FUSE_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    try:
        root_mode = stat.S_IFMT(os.stat(spec.mountpoint).st_mode)
        syscalls.mount(spec.source, spec.mountpoint, f"fuse.{spec.subtype}", spec.flags(),
                       spec.data(fd, root_mode))
        try:
            return fd, read_init(fd, timeout)
        except BaseException:
            syscalls.unmount_if_mounted(spec.mountpoint, detach=True)
            raise
    except BaseException:
        os.close(fd)
        raise


def read_init(fd: int, timeout: float) -> bytes:
    """The INIT request the kernel queues on a new connection."""
    readable, _, _ = select.select([fd], [], [], timeout)
    if not readable:
        raise FuseConnectionError(f"no FUSE_INIT from the kernel within {timeout:g} s")
    data = os.read(fd, READ_BUFFER)
    length, opcode = IN_HEADER.unpack_from(data)[:2]
    if opcode != FUSE_INIT or length != len(data):
        raise FuseConnectionError(f"the kernel's first request is opcode {opcode}, not INIT")
    return data


def set_readahead(mountpoint: str, kib: int) -> bool:
    """Let the kernel read ahead `kib` KiB on the FUSE mount at `mountpoint`.

    The kernel caps a FUSE mount's readahead at what the INIT reply allows (libfuse
    answers the kernel's offer, 128 KiB) and sends reads of at most that size through
    the page cache; so this must run once INIT is answered. Returns False when the
    mount or its backing device is not found.
    """
    stacked = mountinfo.mounted_at(mountpoint)
    if not stacked:
        return False
    setting = Path("/sys/class/bdi") / stacked[-1].device / "read_ahead_kb"
    try:
        setting.write_text(str(kib))
    except OSError:
        return False
    return True


def request_resend(fd: int) -> None:
    """Ask the kernel to queue again every request read but not answered."""
    os.write(fd, OUT_HEADER.pack(OUT_HEADER.size, FUSE_NOTIFY_RESEND, 0))
