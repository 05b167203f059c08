"""The worker process: `python -m cephmount.worker FD`, started by the daemon.

FD is one end of a SOCK_SEQPACKET socket pair. The daemon sends a
`WorkerStart` with the FUSE descriptor; the worker connects to Ceph (resetting
the session a dead predecessor left, by the mount's session uuid), takes over
the FUSE connection and answers "serving", or "failed" with one line saying
why. It then serves until the kernel ends the connection (the daemon
unmounted it) or a signal stops it; a signal leaves the mount to a successor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from pathlib import Path
from typing import NoReturn

import pyfuse3
import trio

from cephmount.ceph.client import CephClient
from cephmount.ceph.errors import CephError
from cephmount.fs import mount as fs_mount
from cephmount.fs.handles import HandleStore
from cephmount.fs.options import Coherence, MountOptions, Source
from cephmount.host import memory
from cephmount.worker.config import (
    EXIT_SESSION_LOST,
    STAGING_DIR,
    WorkerStart,
    WorkerState,
    receive,
    send,
)
from cephmount.worker.control import Control
from cephmount.worker.takeover import KernelTakeover

log = logging.getLogger("cephmount.worker")
CONTROL_SOCKET = "control.sock"
HANDLES_FILE = "handles"
ADMIN_SOCKET = "client.asok"  # libcephfs's, in the mount's dir: it goes with the mount


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s worker[%(process)d]: %(message)s")
    fs_mount.dump_stacks_on_sigusr1()
    memory.tune_malloc()
    bootstrap = socket.socket(fileno=int(argv[0]))
    start, fuse_fd = receive(bootstrap, WorkerStart)
    if fuse_fd is None:
        send(bootstrap, WorkerState("failed", "no FUSE descriptor came with the start message"))
        return 1
    try:
        client = _connect(start)
    except (fs_mount.MountError, CephError, OSError) as exc:
        send(bootstrap, WorkerState("failed", str(exc)))
        return 1
    log.info("%s %s: connected as client.%s", "replacing" if start.replacement else "serving",
             start.volume.describe(), start.volume.client_id)
    handles = HandleStore(Path(start.directory) / HANDLES_FILE)
    try:
        _serve(start, client, KernelTakeover(fuse_fd, start.fuse_init, start.replacement),
               bootstrap, handles)
        client.close()  # writes back every buffered write: no handle has unsynced data left
        handles.mark_all_synced()
    finally:
        client.close()
        handles.close()
    log.info("stopped")
    return 0


def _source(start: WorkerStart) -> tuple[Source, MountOptions]:
    volume = start.volume
    source = Source(volume.client_id, volume.fs_name, path=volume.path, group=volume.group,
                    subvolume=volume.subvolume)
    options = MountOptions(conf=volume.conf, keyring=volume.keyring,
                           allow_other=volume.allow_other,
                           default_permissions=volume.default_permissions,
                           coherence=Coherence(volume.coherence),
                           cache_bytes=volume.cache_bytes, timeout=volume.timeout)
    return source, options


def _connect(start: WorkerStart) -> CephClient:
    source, options = _source(start)
    return fs_mount.connect(source, options, f"cephmount:{start.mount_id}",
                            uuid=start.session_uuid, key=start.key,
                            admin_socket=str(Path(start.directory) / ADMIN_SOCKET))


def _serve(start: WorkerStart, client: CephClient, takeover: KernelTakeover,
           bootstrap: socket.socket, handles: HandleStore) -> None:
    directory = Path(start.directory)
    _, options = _source(start)
    operations = fs_mount.operations_on(client, options, handles, on_init=takeover.switch,
                                        on_session_lost=_hand_over_lost_session)
    control = Control(directory / CONTROL_SOCKET, operations, takeover,
                      {"mount_id": start.mount_id, "source": start.volume.describe(),
                       "coherence": start.volume.coherence})
    pyfuse3.init(operations, takeover.session_path(), {"subtype=cephmount"})

    async def setup(nursery: trio.Nursery) -> None:
        await nursery.start(control.serve)
        nursery.start_soon(_announce, takeover, bootstrap)

    fs_mount.catch_stop_signals()
    try:
        trio.run(fs_mount.serve, operations, str(directory / STAGING_DIR), setup)
    finally:
        pyfuse3.close(unmount=False)
        trio.run(operations.release_all)


def _hand_over_lost_session() -> NoReturn:
    """The cluster evicted or blocklisted this client: no call will work again.

    End at once, answering nothing: the daemon starts a successor with a new session,
    which asks the kernel to resend what this one left unanswered.
    """
    log.error("the Ceph session was lost (evicted or blocklisted): leaving the mount to a "
              "successor with a new session")
    logging.shutdown()
    os._exit(EXIT_SESSION_LOST)


async def _announce(takeover: KernelTakeover, bootstrap: socket.socket) -> None:
    """Tell the daemon once the kernel's connection is ours."""
    await takeover.switched.wait()
    with bootstrap, contextlib.suppress(OSError):  # a daemon that is gone adopts us later
        send(bootstrap, WorkerState("serving"))
    log.info("serving the FUSE connection%s", " (requests in flight resent)"
             if takeover.replacement else "")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
