"""What a worker is told to serve, and the messages between it and the daemon.

Every message is one msgspec-encoded JSON datagram on a SOCK_SEQPACKET socket;
a FUSE descriptor travels beside a message as SCM_RIGHTS.
"""

from __future__ import annotations

import array
import socket
from typing import Literal, TypeVar

import msgspec

MAX_MESSAGE = 1 << 20
# The staging FUSE mount, in a volume's dir.
STAGING_DIR = "mnt"
# A worker's exit status when the cluster evicted or blocklisted its client.
EXIT_SESSION_LOST = 75
MessageT = TypeVar("MessageT", bound=msgspec.Struct)


class VolumeSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One volume: what to mount, as whom, and how. Validated before it gets here."""

    fs_name: str
    client_id: str
    path: str | None = None
    group: str | None = None
    subvolume: str | None = None
    conf: str | None = None
    keyring: str | None = None
    coherence: Literal["strict", "default", "relaxed"] = "default"
    cache_bytes: int = 256 << 20
    timeout: float = 30.0
    allow_other: bool = True
    default_permissions: bool = True

    def describe(self) -> str:
        what = self.path if self.path else f"{self.group}/{self.subvolume}"
        return f"{self.client_id}@{self.fs_name}:{what}"


class WorkerStart(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The daemon's first message to a new worker; the FUSE descriptor rides with it."""

    mount_id: str
    volume: VolumeSpec
    session_uuid: str
    directory: str
    fuse_init: bytes
    replacement: bool
    key: str | None = None


class WorkerState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The worker's word on its start: "serving", or "failed" with the reason."""

    state: Literal["serving", "failed"]
    error: str = ""


class ControlRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """To a running worker, on its control socket."""

    op: Literal["stats", "handover", "cache"]
    cache_bytes: int = 0


class Handover(msgspec.Struct, frozen=True):
    """A worker's answer to "handover": the INIT bytes; the FUSE descriptor rides with it."""

    fuse_init: bytes


def send(sock: socket.socket, message: msgspec.Struct, fd: int | None = None) -> None:
    data = msgspec.json.encode(message)
    fds = [] if fd is None else [fd]
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], ancillary)


def receive(sock: socket.socket, kind: type[MessageT]) -> tuple[MessageT, int | None]:
    """One message of `kind`, and the descriptor that came with it (if any)."""
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 1)
    if not data:
        raise ConnectionError("the other end closed the connection")
    return msgspec.json.decode(data, type=kind), (fds[0] if fds else None)
