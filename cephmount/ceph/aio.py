"""The trio face of CephClient: the same calls, run in worker threads.

libcephfs calls block (on the MDS, the OSDs, client locks) but release the
GIL, so worker threads run them in parallel. A CapacityLimiter bounds how many
run at once. The few calls that only touch the client's memory (giving back
references, reading a file's layout or cached attributes) run inline instead:
a thread hop costs more than they do (docs/performance.md), and they never
wait for the network, only for the client lock, which libcephfs holds briefly.

How a call's result comes back: trio's own hand-off (`trio.to_thread`) queues a
callback through its wakeup socket, and a task of trio's runs it to wake the caller: two
passes of the scheduler. Here each call in flight has an eventfd of its own (a
"doorbell", kept for the next call once it is done) that its worker rings, and the
caller waits for it to be readable in trio's own I/O wait: one pass, and the trio
thread never blocks, so whatever else is ready runs meanwhile (docs/performance.md).

Calls are not cancellable once started: abandoning one could leak the
reference or handle it returns, and the thread would go on anyway. Nothing here
waits for a lock held elsewhere in a thread: a thread waiting on another node
would hold a token of the limiter for as long, and sixteen such waits would
stall every call of the mount. Waits poll non-blocking tries instead
(`until_granted`), sleeping in trio between them, where they can be cancelled.

Callbacks (`sync.register_callbacks`) arrive on libcephfs threads; to act in
trio from one, use a `trio.lowlevel.TrioToken`.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

import trio

if TYPE_CHECKING:
    import outcome

from cephmount.ceph.client import CephClient, lock_poll_delays
from cephmount.ceph.structs import FileHandle

P = ParamSpec("P")
R = TypeVar("R")

async def until_granted(attempt: Callable[[], Awaitable[R | None]]) -> R:
    """Repeat `attempt` (a try for a lock held elsewhere) until it gives a result."""
    for delay in lock_poll_delays():
        result = await attempt()
        if result is not None:
            return result
        await trio.sleep(delay)
    raise AssertionError("lock_poll_delays never ends")


def _in_thread(
    method: Callable[Concatenate[CephClient, P], R],
) -> Callable[Concatenate[AsyncCephClient, P], Coroutine[Any, Any, R]]:
    """An async method running CephClient's `method` through the limiter."""

    async def call(self: AsyncCephClient, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.run(functools.partial(method, self.sync, *args, **kwargs))

    return _named_after(method, call)


class _Doorbell:
    """An eventfd a worker thread rings when the call it ran has its outcome in."""

    def __init__(self) -> None:
        self.fd = -1  # if eventfd fails (EMFILE), there is nothing to close
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def ring(self) -> None:
        os.eventfd_write(self.fd, 1)

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.fd)

    def __del__(self) -> None:  # once no call that may ring it is left
        if self.fd >= 0:
            os.close(self.fd)


class _Result:
    """A call's outcome, handed from its worker thread to the task awaiting it."""

    __slots__ = ("_bell", "_outcome")

    def __init__(self, bell: _Doorbell) -> None:
        self._outcome: outcome.Outcome[Any] | None = None
        self._bell = bell

    def deliver(self, result: outcome.Outcome[Any]) -> None:
        """In the worker thread: keep the outcome, then wake the task waiting for it."""
        self._outcome = result
        self._bell.ring()

    async def wait(self) -> Any:
        """The call's value (or its exception), waited for in trio.

        Not cancellable: a started call is not abandoned. (A KeyboardInterrupt that
        trio delivers to its main task can still end the wait, as it can any I/O
        wait; the mounts handle SIGINT themselves, so trio delivers none there.) The
        bell may hold a ring from the call before it (whose outcome was seen before
        its ring came): the outcome, set before every ring, is what ends the wait."""
        with trio.CancelScope(shield=True):
            while (result := self._outcome) is None:
                await trio.lowlevel.wait_readable(self._bell.fd)
                self._bell.clear()
            return result.unwrap()


def _inline(
    method: Callable[Concatenate[CephClient, P], R],
) -> Callable[Concatenate[AsyncCephClient, P], Coroutine[Any, Any, R]]:
    """An async method running CephClient's `method` on the calling thread."""

    async def call(self: AsyncCephClient, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(self.sync, *args, **kwargs)

    return _named_after(method, call)


def _named_after(method: Callable[..., Any], call: Callable[..., Any]) -> Any:
    functools.update_wrapper(call, method)
    call.__qualname__ = f"AsyncCephClient.{method.__name__}"
    return call


class AsyncCephClient:
    """A CephClient whose blocking methods are awaited from trio.

    Same signatures and reference rules as CephClient. `readdir` is offered
    as `readdir_batch` only (one thread hop per batch, not per entry).
    """

    def __init__(self, client: CephClient, max_threads: int = 16) -> None:
        self.sync = client
        self.limiter = trio.CapacityLimiter(max_threads)
        self._bells: list[_Doorbell] = []  # free ones: no more than calls ever in flight

    async def run(self, call: Callable[[], R]) -> R:
        """`call` in a worker thread, once the limiter lets it (see the module's doc)."""
        await trio.lowlevel.checkpoint_if_cancelled()  # a call may return without a yield
        try:
            self.limiter.acquire_nowait()
        except trio.WouldBlock:
            await self.limiter.acquire()
        try:
            bell = self._bells.pop() if self._bells else _Doorbell()
            try:
                result = _Result(bell)
                trio.lowlevel.start_thread_soon(call, result.deliver)
                return await result.wait()  # type: ignore[no-any-return]
            finally:
                self._bells.append(bell)
        finally:
            self.limiter.release()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    mount = _in_thread(CephClient.mount)
    unmount = _in_thread(CephClient.unmount)
    close = _in_thread(CephClient.close)

    root = _in_thread(CephClient.root)
    lookup = _in_thread(CephClient.lookup)
    lookup_inode = _in_thread(CephClient.lookup_inode)
    for_each_inode = _in_thread(CephClient.for_each_inode)
    put = _inline(CephClient.put)
    forget = _inline(CephClient.forget)
    getattr = _in_thread(CephClient.getattr)
    setattr = _in_thread(CephClient.setattr)
    statfs = _in_thread(CephClient.statfs)
    object_size = _inline(CephClient.object_size)
    cached_getattr = _inline(CephClient.cached_getattr)
    file_caps = _in_thread(CephClient.file_caps)

    open = _in_thread(CephClient.open)
    create = _in_thread(CephClient.create)
    read = _in_thread(CephClient.read)
    read_into = _in_thread(CephClient.read_into)
    write = _in_thread(CephClient.write)
    try_append = _in_thread(CephClient.try_append)

    async def append(self, fh: FileHandle, data: Any, owner: int) -> int:
        """CephClient.append, waiting in trio (not in a thread) while another client appends."""
        return await until_granted(lambda: self.try_append(fh, data, owner))
    fsync = _in_thread(CephClient.fsync)
    sync_inode = _in_thread(CephClient.sync_inode)
    release = _in_thread(CephClient.release)
    getlk = _in_thread(CephClient.getlk)
    setlk = _in_thread(CephClient.setlk)
    fallocate = _in_thread(CephClient.fallocate)

    opendir = _in_thread(CephClient.opendir)
    readdir_batch = _in_thread(CephClient.readdir_batch)
    readdir_names = _in_thread(CephClient.readdir_names)
    releasedir = _in_thread(CephClient.releasedir)

    mkdir = _in_thread(CephClient.mkdir)
    mknod = _in_thread(CephClient.mknod)
    symlink = _in_thread(CephClient.symlink)
    readlink = _in_thread(CephClient.readlink)
    link = _in_thread(CephClient.link)
    unlink = _in_thread(CephClient.unlink)
    rmdir = _in_thread(CephClient.rmdir)
    rename = _in_thread(CephClient.rename)

    getxattr = _in_thread(CephClient.getxattr)
    setxattr = _in_thread(CephClient.setxattr)
    listxattr = _in_thread(CephClient.listxattr)
    removexattr = _in_thread(CephClient.removexattr)

    ref_counts = _in_thread(CephClient.ref_counts)

    @classmethod
    async def connect(
        cls,
        conf_path: str,
        client_id: str,
        root: str,
        *,
        keyring: str | None = None,
        options: dict[str, str] | None = None,
        admin_socket: str | None = None,
        timeout_s: float = 30.0,
        max_threads: int = 16,
    ) -> AsyncCephClient:
        """Create a CephClient and mount `root` without blocking trio."""

        def connect_sync() -> CephClient:
            client = CephClient(conf_path, client_id, keyring, options, admin_socket=admin_socket)
            try:
                client.mount(root, timeout_s)
            except BaseException:
                client.close()
                raise
            return client

        return cls(await trio.to_thread.run_sync(connect_sync), max_threads)
