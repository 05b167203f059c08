"""A client of the node daemon's control socket: one request, one reply.

Light on imports (socket, msgspec): the FlexVolume driver and the CLI start
through here and must start fast.
"""

from __future__ import annotations

import os
import socket

import msgspec

from cephmount.daemon.protocol import (
    List,
    Mount,
    MountInfo,
    Reply,
    Request,
    ShutdownMounts,
    Status,
    Unmount,
    VolumeRequest,
    encode,
)

__all__ = ["DEFAULT_SOCKET", "DaemonError", "DaemonUnavailable", "List", "Mount",
           "MountInfo", "Reply", "Request", "ShutdownMounts", "Status", "Unmount",
           "VolumeRequest", "answers", "call", "socket_path"]

DEFAULT_SOCKET = "/run/cephmount/cephmount.sock"
MAX_REPLY = 16 << 20


class DaemonError(Exception):
    """The daemon refused or failed a request; `code` says which kind of failure."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class DaemonUnavailable(DaemonError):
    """No daemon answers at the socket."""


def socket_path(explicit: str | None = None) -> str:
    return explicit or os.environ.get("CEPHMOUNT_SOCKET") or DEFAULT_SOCKET


def answers(path: str) -> bool:
    """Whether a daemon accepts connections at `path`."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(path)
    except OSError:
        return False
    return True


def call(path: str, request: Request, timeout: float = 120.0) -> Reply:
    """Send `request`; the daemon's reply, DaemonError if it says no."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(encode(request))
            sock.shutdown(socket.SHUT_WR)
            data = _read_all(sock)
    except TimeoutError:
        raise DaemonUnavailable(f"the daemon at {path} did not answer in {timeout:g} s",
                                "timeout") from None
    except OSError as exc:
        raise DaemonUnavailable(f"no daemon at {path}: {exc.strerror or exc}",
                                "unavailable") from None
    try:
        reply = msgspec.json.decode(data, type=Reply)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise DaemonError(f"the daemon at {path} sent a reply that is not understood",
                          "protocol") from None
    if not reply.ok:
        raise DaemonError(reply.error, reply.code)
    return reply


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    size = 0
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_REPLY:
            break
    return b"".join(chunks)
