"""A standalone mount that recovers by itself when the cluster ends its Ceph session.

An evicted or blocklisted client gets ESHUTDOWN from libcephfs for every call, for
good. A worker of the node daemon then ends and a successor with a new session takes
its place (docs/daemon.md). A standalone mount has nobody to take its place, so it
does the same within the process: pyfuse3 keeps one Operations object for the whole
FUSE session, so `SessionKeeper` stands in front of the filesystem and forwards every
request to the current `CephOperations`. When that instance reports its session lost
(`on_session_lost` raising `SessionLost`), the keeper drops the old client, connects
again with the mount's session uuid, builds a fresh instance on the new client with the
same `HandleStore` (open files are reopened by inode on first use, as a successor worker
does, and a handle written through since its last fsync answers EIO once) and retries
the request on it. Requests that meet the loss meanwhile wait for that one reconnection.
"""

from __future__ import annotations

import errno
import inspect
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

import pyfuse3
import trio

from cephmount.ceph.client import CephClient
from cephmount.fs.operations import CephOperations

log = logging.getLogger(__name__)

RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0
# How long a new session waits for the lost client to be dropped. Its calls in flight
# should fail at once; one that does not must not hold the mount: the drop then
# finishes in its thread whenever it can.
DROP_WAIT_S = 5.0


class SessionLost(Exception):
    """The cluster evicted or blocklisted the client: no call of it will work again."""


def session_lost() -> NoReturn:
    """`on_session_lost` of a CephOperations behind a SessionKeeper."""
    raise SessionLost


class Backoff:
    """When the next reconnection may be tried: never in a tight loop."""

    def __init__(self) -> None:
        self._delay = RETRY_FIRST_S
        self._not_before = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._not_before

    def failed(self) -> float:
        """Wait longer before the next try; return how long."""
        delay, self._delay = self._delay, min(2 * self._delay, RETRY_MAX_S)
        self._not_before = time.monotonic() + delay
        return delay

    def succeeded(self) -> None:
        self._delay, self._not_before = RETRY_FIRST_S, 0.0


class SessionKeeper(pyfuse3.Operations):
    """Serves the mount through the current CephOperations; replaces it when its session is lost.

    `connect` makes a new mounted client (it blocks: it runs in a thread);
    `build` makes the filesystem on a client, with `session_lost` as its
    `on_session_lost` and the mount's one HandleStore.
    """

    def __init__(self, mountpoint: str, client: CephClient,
                 connect: Callable[[], CephClient],
                 build: Callable[[CephClient], CephOperations]) -> None:
        super().__init__()
        self._mountpoint = mountpoint
        self._client: CephClient | None = client
        self._connect = connect
        self._build = build
        self.current = build(client)
        self._replacing = trio.Lock()
        self._backoff = Backoff()
        self._nursery: trio.Nursery | None = None

    def init(self) -> None:
        self.current.init()

    def attach(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.current.attach(nursery)

    def detach(self) -> None:
        self.current.detach()

    async def release_all(self) -> None:
        await self.current.release_all()

    def close(self) -> None:
        """Unmount the current client (a lost one was dropped when the loss was seen)."""
        if self._client is not None:
            self._client.close()

    def looked_up(self, parent_inode: int, name: bytes, pid: int) -> None:
        self.current.looked_up(parent_inode, name, pid)

    def unlinked(self, parent_inode: int, name: bytes) -> None:
        self.current.unlinked(parent_inode, name)

    def attributes_sent(self, inode: int) -> None:
        self.current.attributes_sent(inode)

    async def forward(self, name: str, args: tuple[Any, ...]) -> Any:
        """Run request `name` on the current instance; once more on a new session if lost."""
        operations = self.current
        try:
            return await getattr(operations, name)(*args)
        except SessionLost:
            await self._replace(operations)
        try:
            return await getattr(self.current, name)(*args)
        except SessionLost:  # lost again at once: the next request reconnects
            raise pyfuse3.FUSEError(errno.EIO) from None

    async def _replace(self, lost: CephOperations) -> None:
        """Put a new session in place of `lost`'s, once, whoever asks; EIO if it fails."""
        async with self._replacing:
            if lost is not self.current:
                return  # another request did it meanwhile
            if not self._backoff.due():
                raise pyfuse3.FUSEError(errno.EIO)
            started = time.monotonic()
            if self._client is not None:  # not on a later try, after a failed one
                log.error("%s: the Ceph session was lost (evicted or blocklisted): connecting "
                          "a new one; open files are reopened, unsynced writes report EIO once",
                          self._mountpoint)
                old, self._client = self._client, None
                lost.close_native()
                await self._drop(lost, old)
            client: CephClient | None = None
            try:
                client = await trio.to_thread.run_sync(self._connect)
                fresh = self._build(client)
            except Exception as exc:  # MountError, CephError...: EIO now, a new try later
                if client is not None:
                    client.abort()
                log.error("%s: cannot connect a new Ceph session (%s): next try in %g s",
                          self._mountpoint, exc, self._backoff.failed())
                raise pyfuse3.FUSEError(errno.EIO) from None
            self._backoff.succeeded()
            self._install(fresh, client)
            log.warning("%s: a new Ceph session serves the mount, %.2f s after the loss was "
                        "seen", self._mountpoint, time.monotonic() - started)

    async def _drop(self, lost: CephOperations, client: CephClient) -> None:
        with trio.move_on_after(DROP_WAIT_S) as waited:
            await trio.to_thread.run_sync(_drop, lost, client, abandon_on_cancel=True)
        if waited.cancelled_caught:
            log.warning("%s: the lost Ceph client is not dropped after %g s (a call of it "
                        "still runs): connecting a new session meanwhile",
                        self._mountpoint, DROP_WAIT_S)

    def _install(self, fresh: CephOperations, client: CephClient) -> None:
        assert self._nursery is not None, "requests come only once serving"
        fresh.succeed(self.current)
        fresh.attach(self._nursery)
        self.current, self._client = fresh, client


def _drop(lost: CephOperations, client: CephClient) -> None:
    """Stop the lost instance's invalidation thread, then drop its client: its callbacks
    reach nothing after this, and nothing is written into the dead session."""
    lost.detach(wait=False)
    client.abort()


def _forwarding(name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def forward(self: SessionKeeper, *args: Any) -> Any:
        return await self.forward(name, args)

    forward.__name__ = forward.__qualname__ = name
    return forward


# Every request handler pyfuse3 may call (those CephOperations leaves to pyfuse3's
# defaults too, so that the answer is the same).
REQUESTS = tuple(name for name, value in vars(pyfuse3.Operations).items()
                 if inspect.iscoroutinefunction(value))
for _name in REQUESTS:
    setattr(SessionKeeper, _name, _forwarding(_name))
# What pyfuse3 reads of the Operations object at init (supports_dot_lookup, enable_*):
# the filesystem's own choices.
for _name, _value in vars(pyfuse3.Operations).items():
    if isinstance(_value, bool):
        setattr(SessionKeeper, _name, getattr(CephOperations, _name))
