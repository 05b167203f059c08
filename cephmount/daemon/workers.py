"""Starting a worker process and talking to a running one.

A worker is started afresh (`python -m cephmount.worker`, never forked from
the daemon), in a session of its own, so that no signal meant for the daemon
or its process group reaches it. Its output goes to a log file of its own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from cephmount.host.statedir import open_private
from cephmount.worker.config import (
    MAX_MESSAGE,
    ControlRequest,
    Handover,
    WorkerStart,
    WorkerState,
    receive,
    send,
)

CONTROL_SOCKET = "control.sock"
LOG_TAIL = 600


class WorkerFailed(Exception):
    """A worker did not start serving; the message says why in one line."""


@dataclass
class WorkerProcess:
    """A worker the daemon watches: its own child, or one adopted after a restart."""

    pid: int
    pidfd: int
    started: float
    child: subprocess.Popen[bytes] | None = None

    def reap(self) -> int | None:
        """After its pidfd became readable: the exit status, when it was our child."""
        os.close(self.pidfd)
        return self.child.wait() if self.child is not None else None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, 9)


def spawn(start: WorkerStart, fuse_fd: int, log_path: Path, timeout: float) -> WorkerProcess:
    """Start a worker and wait (blocking) until it serves; WorkerFailed otherwise."""
    parent, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    log_fd = open_private(log_path)
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "cephmount.worker", str(child_end.fileno())],
            pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL, stdout=log_fd,
            stderr=log_fd, start_new_session=True)
    finally:
        os.close(log_fd)
        child_end.close()
    worker = WorkerProcess(child.pid, os.pidfd_open(child.pid), time.time(), child)
    with parent:
        try:
            send(parent, start, fd=fuse_fd)
            parent.settimeout(timeout)
            state, _ = receive(parent, WorkerState)
        except (OSError, ConnectionError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            worker.kill()
            worker.reap()
            reason = "no answer in time" if isinstance(exc, TimeoutError) else "it ended"
            raise WorkerFailed(f"the worker did not start ({reason}): {_tail(log_path)}") from None
    if state.state != "serving":
        worker.reap()
        raise WorkerFailed(state.error)
    return worker


def _tail(log_path: Path) -> str:
    try:
        with open(log_path, "rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - LOG_TAIL))
            lines = log.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return f"see {log_path}"
    return lines[-1] if lines else f"see {log_path}"


def _ask(directory: Path, request: ControlRequest, timeout: float) -> tuple[bytes, int | None]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.settimeout(timeout)
        sock.connect(str(directory / CONTROL_SOCKET))
        sock.send(msgspec.json.encode(request))
        data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 1)
    return data, (fds[0] if fds else None)


def ask(directory: Path, request: ControlRequest, timeout: float = 5.0) -> dict[str, Any]:
    """One request to a running worker's control socket (blocking); its JSON answer."""
    data, _ = _ask(directory, request, timeout)
    answer: dict[str, Any] = msgspec.json.decode(data)
    return answer


def take_back(directory: Path, timeout: float = 5.0) -> tuple[int, bytes]:
    """A running worker's FUSE descriptor (a duplicate) and the connection's INIT bytes."""
    data, fd = _ask(directory, ControlRequest("handover"), timeout)
    if fd is None:
        raise WorkerFailed("the worker gave no descriptor back")
    return fd, msgspec.json.decode(data, type=Handover).fuse_init


def is_worker_of(pid: int, directory: Path) -> bool:
    """Whether `pid` runs a cephmount worker whose control socket is in `directory`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"cephmount.worker" in cmdline and (directory / CONTROL_SOCKET).exists()


def adopt(pid: int, started: float) -> WorkerProcess:
    return WorkerProcess(pid, os.pidfd_open(pid), started)
