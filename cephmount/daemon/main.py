"""`cephmount daemon`: run the node daemon in the foreground (systemd runs it).

One trio nursery owns everything: the supervisor's watchers, the control
socket, the watchdog. On SIGTERM or SIGINT the daemon stops serving its
socket and leaves every mount to its worker; the next daemon adopts them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from cephmount import __version__
from cephmount.daemon import sdnotify
from cephmount.daemon.budget import MemoryBudget
from cephmount.daemon.metrics import DaemonCollector, MountSnapshot, serve_metrics
from cephmount.daemon.policy import DEFAULT_POLICY, Policy, load_policy
from cephmount.daemon.protocol import (
    DaemonInfo,
    List,
    Mount,
    Reply,
    Request,
    ShutdownMounts,
    Status,
    Unmount,
)
from cephmount.daemon.server import ControlServer, listen
from cephmount.daemon.supervisor import Supervisor
from cephmount.host.statedir import private_dir

log = logging.getLogger("cephmount.daemon")
DEFAULT_STATE_DIR = "/var/lib/cephmount"
DEFAULT_METRICS = "127.0.0.1:9842"


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: Path
    socket: Path
    metrics_address: str
    memory_budget: int | None
    default_conf: str
    policy: Path = Path(DEFAULT_POLICY)


class Daemon:
    def __init__(self, config: DaemonConfig, supervisor: Supervisor,
                 policy: Policy | None = None) -> None:
        self.config = config
        self.supervisor = supervisor
        self.policy = policy or Policy()
        self.started = time.time()
        self.metrics_url = ""

    async def handle(self, request: Request) -> Reply:
        if isinstance(request, Mount):
            self.policy.check(request.volume)
            return Reply(ok=True, mount=await self.supervisor.mount(request))
        if isinstance(request, Unmount):
            return Reply(ok=True, mount=await self.supervisor.unmount(request))
        if isinstance(request, ShutdownMounts):
            return Reply(ok=True, mounts=await self.supervisor.shutdown_mounts())
        volumes = self.supervisor.volumes()
        if isinstance(request, List):
            return Reply(ok=True, mounts=[v.info() for v in volumes])
        assert isinstance(request, Status)
        infos = [v.info(await self.supervisor.stats(v)) for v in volumes]
        return Reply(ok=True, mounts=infos, daemon=self.info())

    def info(self) -> DaemonInfo:
        return DaemonInfo(pid=os.getpid(), version=__version__, started=self.started,
                          socket=str(self.config.socket), state_dir=str(self.config.state_dir),
                          metrics=self.metrics_url,
                          memory_budget=self.config.memory_budget or 0)

    def snapshot(self) -> list[MountSnapshot]:
        return [MountSnapshot(v.mount_id, v.record.volume.describe(), v.directory,
                              v.worker.pid if v.worker else 0, v.record.restarts,
                              v.record.takeovers, v.record.session_losses, v.cache_share)
                for v in self.supervisor.volumes()]


def run(config: DaemonConfig) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    private_dir(config.state_dir)
    trio.run(_main, config, load_policy(config.policy))
    return 0


async def _main(config: DaemonConfig, policy: Policy) -> None:
    listener = await listen(config.socket)  # before anything else: one daemon per socket
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(config.state_dir, nursery, MemoryBudget(config.memory_budget),
                                config.default_conf)
        try:
            daemon = Daemon(config, supervisor, policy)
            await supervisor.recover()
            if config.metrics_address:
                daemon.metrics_url = serve_metrics(
                    config.metrics_address, DaemonCollector(daemon.snapshot, daemon.started))
            await nursery.start(ControlServer(config.socket, daemon.handle).serve, listener)
            log.info("cephmount %s serving %s (pid %d, %d mounts, metrics %s)", __version__,
                     config.socket, os.getpid(), len(supervisor.volumes()),
                     daemon.metrics_url or "off")
            sdnotify.notify("READY=1")
            nursery.start_soon(_watchdog)
            await _until_signalled()
            sdnotify.notify("STOPPING=1")
            log.info("stopping; every mount stays with its worker")
        finally:
            nursery.cancel_scope.cancel()
            supervisor.close()


async def _until_signalled() -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("signal %d", signum)
            return


async def _watchdog() -> None:
    interval = sdnotify.watchdog_interval()
    while interval is not None:
        sdnotify.notify("WATCHDOG=1")
        await trio.sleep(interval)
