"""The trio face of CephClient: the same calls, run in worker threads.

libcephfs calls block (on the MDS, the OSDs, client locks) but release the
GIL, so worker threads run them in parallel. A CapacityLimiter bounds how many
run at once. The few calls that only touch the client's memory (giving back
references, reading a file's layout or cached attributes) run inline instead:
a thread hop costs more than they do (0.2-0.3 ms against 20 µs, measured),
and they never wait for the network, only for the client lock, which
libcephfs holds briefly.

How a call's result comes back: trio's own hand-off (`trio.to_thread`) goes through
its wakeup socket and scheduler, which costs about as much as a buffered write itself
(docs/performance.md). So while no other call of the client is in flight and nothing
else in trio is ready to run, the trio thread waits for the worker directly (polling
an eventfd the worker rings) for about QUICK_WAIT_S at most, and no longer than trio's
next deadline: a call done by then costs a thread wake-up each way and nothing more.
The wait also ends as soon as requests wait for the trio thread (`waiting`, an fd
readable while they do: pyfuse3's queue of requests for Python), so a request that
comes meanwhile is not held up by it. A call still running then, and every other
call, is waited for in trio.

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
import select
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

import trio

if TYPE_CHECKING:
    import outcome

from cephmount.ceph.client import CephClient, lock_poll_delays
from cephmount.ceph.structs import FileHandle

P = ParamSpec("P")
R = TypeVar("R")

QUICK_WAIT_S = 0.002


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


class _Result:
    """A call's outcome, handed from its worker thread to the task awaiting it."""

    __slots__ = ("_bell", "_done", "_guard", "_outcome", "_wake")

    def __init__(self, bell: _Doorbell | None = None) -> None:
        self._done = threading.Lock()
        self._done.acquire()  # released once the outcome is in
        self._guard = threading.Lock()
        self._outcome: outcome.Outcome[Any] | None = None
        self._wake: Callable[[outcome.Outcome[Any]], None] | None = None
        self._bell = bell  # rung once the outcome is in, for a quick wait

    def deliver(self, result: outcome.Outcome[Any]) -> None:
        """In the worker thread: keep the outcome, or send it to the task in trio."""
        with self._guard:
            self._outcome, wake = result, self._wake
        self._done.release()
        try:
            if self._bell is not None:
                self._bell.ring()
        finally:  # the task waiting in trio cannot be cancelled: it must be woken
            if wake is not None:
                wake(result)

    def quick(self, wait_s: float, waiter: _QuickWaiter) -> outcome.Outcome[Any] | None:
        """The outcome if it is in within `wait_s` (blocking this thread), else None;
        None too as soon as requests wait for this thread (`waiter`)."""
        return self._outcome if waiter.wait(self._done, wait_s) else None

    async def wait(self) -> Any:
        """The call's value (or its exception), waited for in trio."""
        task, token = trio.lowlevel.current_task(), trio.lowlevel.current_trio_token()
        with self._guard:
            if self._outcome is not None:
                return self._outcome.unwrap()
            self._wake = functools.partial(_reschedule_from_thread, token, task)
        return await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)


class _Doorbell:
    """An eventfd a worker thread rings when the call the trio thread waits for ends."""

    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def ring(self) -> None:
        os.eventfd_write(self.fd, 1)

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.fd)

    def __del__(self) -> None:  # once no result that may ring it is left
        os.close(self.fd)


class _QuickWaiter:
    """Blocks the trio thread until a call ends, time is up, or requests wait."""

    def __init__(self, waiting: Callable[[], int]) -> None:
        self.bell = _Doorbell()
        self._waiting = waiting
        self._poller = select.poll()
        self._poller.register(self.bell.fd, select.POLLIN)
        self._watched = -1

    def wait(self, done: threading.Lock, wait_s: float) -> bool:
        """Whether `done` was taken (the call ended) before the time or a request came."""
        self._watch(self._waiting())
        deadline = time.monotonic() + wait_s
        while not done.acquire(blocking=False):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for fd, _ in self._poller.poll(left * 1000):
                if fd == self.bell.fd:
                    self.bell.clear()  # rung by this call, or late by one given up on
                else:  # requests wait: unless it just ended, the call is waited for in trio
                    return done.acquire(blocking=False)
        return True

    def _watch(self, fd: int) -> None:
        if fd != self._watched:
            if self._watched >= 0:
                self._poller.unregister(self._watched)
            if fd >= 0:
                self._poller.register(fd, select.POLLIN)
            self._watched = fd


def _reschedule_from_thread(token: trio.lowlevel.TrioToken, task: trio.lowlevel.Task,
                            result: outcome.Outcome[Any]) -> None:
    with contextlib.suppress(trio.RunFinishedError):  # the run, and the task, are gone
        token.run_sync_soon(trio.lowlevel.reschedule, task, result)


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
    as `readdir_batch` only (one thread hop per batch, not per entry). `waiting`
    gives an fd readable while other work waits for the trio thread, or -1 (see
    the module's doc).
    """

    def __init__(self, client: CephClient, max_threads: int = 16,
                 waiting: Callable[[], int] = lambda: -1) -> None:
        self.sync = client
        self.limiter = trio.CapacityLimiter(max_threads)
        self.quick_calls = 0  # calls whose result the trio thread waited for directly
        self._quick = _QuickWaiter(waiting)

    async def run(self, call: Callable[[], R]) -> R:
        """`call` in a worker thread, once the limiter lets it (see the module's doc)."""
        await trio.lowlevel.checkpoint_if_cancelled()  # a call may return without a yield
        try:
            self.limiter.acquire_nowait()
        except trio.WouldBlock:
            await self.limiter.acquire()
        try:
            wait_s = await self._quick_wait_s()
            result = _Result(self._quick.bell if wait_s else None)
            trio.lowlevel.start_thread_soon(call, result.deliver)
            got = result.quick(wait_s, self._quick) if wait_s else None
            if got is None:
                return await result.wait()  # type: ignore[no-any-return]
            self.quick_calls += 1
            return got.unwrap()  # type: ignore[no-any-return]
        finally:
            self.limiter.release()

    async def _quick_wait_s(self) -> float:
        """How long the trio thread may block for the call about to start: 0 unless it
        is the only call in flight and nothing else in trio is ready to run (what is,
        a session loop going back to wait for requests, say, runs first)."""
        for _ in range(2):
            if self.limiter.borrowed_tokens != 1:
                return 0.0
            stats = trio.lowlevel.current_statistics()
            if not (stats.tasks_runnable or stats.run_sync_soon_queue_size):
                return max(0.0, min(QUICK_WAIT_S, stats.seconds_to_next_deadline))
            await trio.lowlevel.cancel_shielded_checkpoint()
        return 0.0

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
