"""bench's side of a direct libcephfs runner process (bench/direct.py)."""

from __future__ import annotations

import json
import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.cluster import Cluster
from bench.procs import close_quietly, python_module, start, stop, tail


class DirectError(Exception):
    """A runner failed to start, answered with an error, or did not answer in time."""


class DirectClient:
    """One `python -m bench.direct` process: one libcephfs client of the subvolume."""

    def __init__(self, cluster: Cluster, log: Path) -> None:
        """Start the process; `wait_ready` waits for its mount."""
        self.log = log
        argv = python_module("bench.direct", "--conf", str(cluster.conf),
                             "--id", cluster.client_id, "--keyring", str(cluster.keyring),
                             "--fs-name", cluster.fs_name, "--root", cluster.subvolume_path)
        self.process = start(argv, log, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, bufsize=1)
        self.hello: dict[str, Any] = {}

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        """The runner's hello once it has mounted: pid and libcephfs version."""
        self.hello = self.receive(timeout)
        return self.hello

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except OSError as exc:
            raise DirectError(f"direct runner {self.pid} is gone: {tail(self.log)}") from exc

    def receive(self, timeout: float) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else ""
        if not line:
            what = "no answer in time" if not ready else "exited"
            raise DirectError(f"direct runner {self.pid}: {what}: {tail(self.log)}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def request(self, timeout: float = 300.0, **request: Any) -> dict[str, Any]:
        """One request; an error reply raises."""
        self.send(request)
        reply = self.receive(timeout)
        if "error" in reply:
            raise DirectError(f"direct runner {self.pid}: {reply['error']}")
        return reply

    def close(self) -> None:
        """Ask the runner to unmount and exit; stop it if it does not."""
        if self.process.poll() is None:
            try:
                self.send({"op": "exit"})
                self.process.wait(30)
            except (DirectError, subprocess.TimeoutExpired):
                stop(self.process)
        close_quietly(self.process.stdin)
        close_quietly(self.process.stdout)


def broadcast(clients: Sequence[DirectClient], requests: Sequence[dict[str, Any]],
              timeout: float) -> list[dict[str, Any]]:
    """Send every client its request first, then collect: the N start together.
    Replies may carry "error"; a runner that does not answer raises."""
    for client, request in zip(clients, requests, strict=True):
        client.send(request)
    deadline = time.monotonic() + timeout
    return [client.receive(max(0.1, deadline - time.monotonic())) for client in clients]
