"""The node daemon started as a process of its own, on the dev cluster.

Each test gets a daemon with its own state dir, socket and metrics port; at
the end every mount it made is gone and its logs hold no unexpected error.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cephmount.daemon import client as daemon_client
from cephmount.devcluster import ClientEnv
from cephmount.host import mountinfo, syscalls
from tests.conftest import short_tmpdir

# Lines a test provokes on purpose are named by the test (`expect_log`).
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL|Traceback)\b")


class DaemonProcess:
    """A `cephmount daemon` of the test's own; start, kill and restart it."""

    def __init__(self, root: Path, env: ClientEnv) -> None:
        self.root = root
        self.state_dir = root / "state"
        self.socket = str(root / "cephmount.sock")
        self.log_path = root / "daemon.log"
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.expected_errors: list[str] = []

    def start(self, *options: str, env: dict[str, str] | None = None) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cephmount.cli", "daemon", "--state-dir",
                 str(self.state_dir), "--socket", self.socket, "--metrics-address",
                 "127.0.0.1:0", "--policy", str(self.root / "policy.json"), *options],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                env={**os.environ, "CEPH_CONF": str(self.env.conf), **(env or {})})
        deadline = time.monotonic() + 60
        while not daemon_client.answers(self.socket):
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, "the daemon did not start serving"
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def call(self, request: daemon_client.Request) -> daemon_client.Reply:
        return daemon_client.call(self.socket, request)

    def volume(self, path: str | None = None, **fields: object) -> daemon_client.VolumeRequest:
        values: dict[str, object] = {
            "fs_name": self.env.fs_name, "client_id": self.env.client_id,
            "path": path or self.env.subvolume_path, "conf": str(self.env.conf),
            "keyring": str(self.env.keyring), **fields}
        return daemon_client.VolumeRequest(**values)  # type: ignore[arg-type]

    def mount(self, target: Path, path: str | None = None, read_only: bool = False,
              **fields: object) -> daemon_client.MountInfo:
        reply = self.call(daemon_client.Mount(self.volume(path, **fields), str(target),
                                              read_only=read_only))
        assert reply.mount is not None
        return reply.mount

    def mounts(self) -> list[daemon_client.MountInfo]:
        return self.call(daemon_client.List()).mounts or []

    def status(self) -> daemon_client.Reply:
        return self.call(daemon_client.Status())

    def metrics_url(self) -> str:
        daemon = self.status().daemon
        assert daemon is not None
        return daemon.metrics

    def logs(self) -> str:
        texts = [self.log_path.read_text(errors="replace")]
        logs_dir = self.state_dir / "log"
        if logs_dir.exists():
            texts += [path.read_text(errors="replace") for path in sorted(logs_dir.iterdir())]
        return "\n".join(texts)

    def unexpected_errors(self) -> list[str]:
        return [line for line in self.logs().splitlines()
                if ERROR_LINE.search(line)
                and not any(expected in line for expected in self.expected_errors)]

    def cleanup(self) -> None:
        """Unmount all the daemon made, whatever state the test left it in."""
        if self.process is None or self.process.poll() is not None:
            self.process = None
            self.start()
        with contextlib.suppress(daemon_client.DaemonError):
            daemon_client.call(self.socket, daemon_client.ShutdownMounts(), timeout=300)
        self.stop()
        for entry in reversed(mountinfo.mounts()):
            if entry.mountpoint.startswith(str(self.root)):
                syscalls.unmount_if_mounted(entry.mountpoint, detach=True)


@contextlib.contextmanager
def running_daemon(client_env: ClientEnv, policy: str | None = None,
                   ) -> Iterator[DaemonProcess]:
    """A daemon of its own; `policy` is its policy file's text (none: no restriction)."""
    root = short_tmpdir("cmd.")
    root.chmod(0o755)
    if policy is not None:
        (root / "policy.json").write_text(policy)
    process = DaemonProcess(root, client_env)
    process.start()
    try:
        yield process
    finally:
        process.cleanup()
        errors = process.unexpected_errors()
        shutil.rmtree(root, ignore_errors=True)
    assert not errors, "unexpected errors in the daemon's logs:\n" + "\n".join(errors)


@pytest.fixture
def daemon(client_env: ClientEnv) -> Iterator[DaemonProcess]:
    with running_daemon(client_env) as process:
        yield process


@pytest.fixture
def target_dir(daemon: DaemonProcess) -> Iterator[Path]:
    """A directory to make targets in, traversable by every user."""
    path = daemon.root / "targets"
    path.mkdir(mode=0o755)
    yield path


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0,
             what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
