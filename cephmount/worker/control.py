"""A running worker's control socket: the daemon asks it for stats, its FUSE
descriptor (after the daemon restarted) and a new cache size."""

from __future__ import annotations

import array
import logging
import os
import socket
import time
from pathlib import Path

import msgspec
import trio

from cephmount.fs.operations import CephOperations
from cephmount.host.sockets import serve_connections
from cephmount.worker.config import MAX_MESSAGE, ControlRequest, Handover
from cephmount.worker.takeover import KernelTakeover

log = logging.getLogger(__name__)


class Control:
    def __init__(self, path: Path, operations: CephOperations, takeover: KernelTakeover,
                 info: dict[str, object]) -> None:
        self._path = path
        self._operations = operations
        self._takeover = takeover
        self._info = info
        self._started = time.time()

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._path.unlink(missing_ok=True)
        await listener.bind(str(self._path))
        os.chmod(self._path, 0o600)
        listener.listen(8)
        await serve_connections(listener, self._path, self._answer, task_status)

    async def _answer(self, conn: trio.socket.SocketType) -> None:
        with conn:
            try:
                request = msgspec.json.decode(await conn.recv(MAX_MESSAGE), type=ControlRequest)
            except (msgspec.ValidationError, msgspec.DecodeError, OSError) as exc:
                await conn.send(msgspec.json.encode({"error": str(exc)}))
                return
            if request.op == "handover":
                fds = array.array("i", [self._takeover.fuse_fd])
                await conn.sendmsg([msgspec.json.encode(Handover(self._takeover.fuse_init))],
                                   [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                return
            if request.op == "cache":
                self._operations.blocks.resize(request.cache_bytes)
                log.info("cache limit now %d bytes", request.cache_bytes)
            await conn.send(msgspec.json.encode(self.stats()))

    def stats(self) -> dict[str, object]:
        return {**self._info, "pid": os.getpid(), "started": self._started,
                "cache": self._operations.stats(), **self._operations.request_stats()}
