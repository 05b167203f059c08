"""Run one FUSE mount of a CephFS subtree: in the foreground, or detached in a child.

A detached mount is a child process started afresh (not forked: a process with
a libcephfs mount must not fork and mount again), which reports through a pipe
either that the mount is in place or one line saying why it is not. Nothing is
left mounted when the mount fails.
"""

from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pyfuse3
import trio

from cephmount.ceph.admin import AdminClient, CephAdminError
from cephmount.ceph.aio import AsyncCephClient
from cephmount.ceph.client import CephClient
from cephmount.ceph.errors import CephError
from cephmount.fs.handles import HandleStore
from cephmount.fs.operations import CephOperations
from cephmount.fs.options import MountOptions, Source
from cephmount.fs.session import SessionKeeper, session_lost
from cephmount.host import fuse, memory, mountinfo, syscalls
from cephmount.host.node import node_identity
from cephmount.host.statedir import atomic_write, open_private, private_dir

log = logging.getLogger(__name__)

FS_TYPE = "fuse.cephmount"
# libcephfs keeps an object cache of its own (200 MiB by default) for write-back and
# reads; ours serves reads, so libcephfs's is kept small, bounding the process's memory.
LIBCEPHFS_OBJECT_CACHE = 64 << 20
LIBCEPHFS_MAX_DIRTY = 48 << 20
# libcephfs keeps the log entries of these subsystems up to level 5 in memory, for a
# crash's dump, even where it writes none to its log: an entry formatted and its log
# thread woken for every request (docs/performance.md, "The client's memory log").
# They are turned off where the conf does not write that subsystem's log to its file.
QUIET_LOGS = ("debug_client", "debug_objectcacher", "debug_objecter")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
READAHEAD_KIB = 1024  # the largest FUSE request libfuse 3.14 negotiates (256 pages)


class MountError(Exception):
    """A mount could not be made or undone; the message is one line for the user."""


@dataclass(frozen=True)
class MountRecord:
    """What `cephmount list` shows of a mount, kept in the state dir while it runs."""

    mountpoint: str
    source: str
    pid: int
    coherence: str


def state_dir() -> Path:
    """Where standalone mounts keep records, admin sockets and their log: ours alone.

    Root's is /run/cephmount; another user's is under $XDG_RUNTIME_DIR or /tmp,
    refused (StateDirError) if someone else owns it or may write to it.
    """
    if os.geteuid() == 0:
        return private_dir(Path("/run/cephmount"), mode=0o755)
    return private_dir(Path(os.environ.get("XDG_RUNTIME_DIR", "/tmp")) / "cephmount")


def _record_path(mountpoint: str, suffix: str = ".json") -> Path:
    """A mount's record (or with `suffix` ".asok", its libcephfs admin socket)."""
    name = hashlib.sha256(mountpoint.encode()).hexdigest()[:24]
    return private_dir(state_dir() / "mounts") / f"{name}{suffix}"


def check_mountpoint(mountpoint: str) -> str:
    """Refuse a mountpoint that is missing, not a directory, or in use; return it absolute."""
    path = os.path.abspath(mountpoint)
    if not os.path.lexists(path):
        raise MountError(f"mountpoint {path} does not exist")
    if mountinfo.is_mountpoint(path):
        raise MountError(f"mountpoint {path} is busy: something is already mounted there")
    if not os.path.isdir(path):
        raise MountError(f"mountpoint {path} is not a directory")
    return path


def resolve_root(source: Source, options: MountOptions, key: str | None = None) -> str:
    """The path to mount: the source's own, or the subvolume's as the mgr reports it."""
    if source.path:
        return source.path
    try:
        with AdminClient(options.conf or _default_conf(), name=f"client.{source.client_id}",
                         keyring=options.keyring, key=key, timeout=options.timeout) as admin:
            return admin.subvolume_path(source.fs_name, str(source.subvolume), source.group)
    except CephAdminError as exc:
        raise MountError(f"cannot resolve subvolume {source}: {exc}") from None


def _default_conf() -> str:
    return os.environ.get("CEPH_CONF", "/etc/ceph/ceph.conf")


def _quiet_memory_logs(client: CephClient) -> None:
    """`QUIET_LOGS` off, except those the conf logs to its file ("N/M" with N above 0)."""
    for option in QUIET_LOGS:
        if client.conf_get(option).partition("/")[0] == "0":
            client.conf_set(option, "0/0")


def connect(source: Source, options: MountOptions, mountpoint: str, *,
            uuid: str | None = None, key: str | None = None,
            admin_socket: str | None = None) -> CephClient:
    """A mounted libcephfs client rooted at the source; a clear MountError otherwise.

    `uuid` names the session so that a successor can reset it; `key` is a cephx
    secret to use instead of a keyring file; `admin_socket` puts the client's
    admin socket where its owner removes it.
    """
    root = resolve_root(source, options, key)
    settings = {"client_fs": source.fs_name, "client_metadata": f"mount_point={mountpoint}",
                "client_oc_size": str(LIBCEPHFS_OBJECT_CACHE),
                "client_oc_max_dirty": str(LIBCEPHFS_MAX_DIRTY),
                "client_oc_target_dirty": str(LIBCEPHFS_MAX_DIRTY // 4)}
    if key is not None:
        settings["key"] = key
    try:
        client = CephClient(options.conf or _default_conf(), source.client_id,
                            keyring=options.keyring, options=settings,
                            admin_socket=admin_socket)
    except CephError as exc:
        raise MountError(f"cannot set up client.{source.client_id}: {exc}") from None
    try:
        _quiet_memory_logs(client)
        client.mount(root, timeout_s=options.timeout, uuid=uuid)
    except CephError as exc:
        client.close()
        raise MountError(f"cannot mount {source}: {exc}") from None
    return client


def _fuse_options(source: Source, options: MountOptions) -> set[str]:
    chosen = {f"fsname={source}", "subtype=cephmount"}
    if options.default_permissions:
        chosen.add("default_permissions")
    if options.allow_other:
        chosen.add("allow_other")
    if options.read_only:
        chosen.add("ro")
    return chosen


async def serve(operations: CephOperations | SessionKeeper, mountpoint: str,
                setup: Callable[[trio.Nursery], Awaitable[None]] | None = None) -> None:
    """Run FUSE until the kernel ends the connection or a signal asks us to stop.

    The nursery owns every background task of the mount (readahead, signals, and
    what `setup` starts in it); the invalidation thread stops before the FUSE
    session closes, so it never notifies a kernel session that is gone. A signal
    stops the taking of requests; those in flight finish first. Call
    `catch_stop_signals` before, for the moments trio's receiver is not in place.
    """
    try:
        async with trio.open_nursery() as nursery:
            operations.attach(nursery)
            nursery.start_soon(_terminate_on_signal)
            nursery.start_soon(_widen_readahead, mountpoint)
            if setup is not None:
                await setup(nursery)
            await pyfuse3.main()
            nursery.cancel_scope.cancel()
    finally:
        operations.detach()


async def _widen_readahead(mountpoint: str) -> None:
    """Once INIT is answered, let the kernel read ahead (and so read) 1 MiB at a time.

    Otherwise reads through the page cache come in 128 KiB requests, eight times as
    many as with direct I/O (docs/performance.md).
    """
    await trio.to_thread.run_sync(os.stat, mountpoint)  # answered only after INIT
    if not fuse.set_readahead(mountpoint, READAHEAD_KIB):
        log.warning("cannot set the kernel's readahead of %s", mountpoint)


async def _terminate_on_signal() -> None:
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        if _StopSignal.seen:  # one came before this receiver was in place
            pyfuse3.terminate()
        async for signum in signals:
            log.info("signal %d: finishing the requests in flight, then stopping", signum)
            pyfuse3.terminate()


class _StopSignal:
    seen = False


def catch_stop_signals() -> None:
    """Before serving: a stop signal never gets the default handling (death).

    trio's receiver takes the signals while the mount serves and puts this handler
    back when it ends; without it a second SIGTERM right after the first killed the
    process before its flush. A signal before serving stops it as soon as it starts;
    one during the flush and release that follow waits for them. faulthandler
    (SIGUSR1) still dumps every thread's stack if they hang.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, _note_stop_signal)


def _note_stop_signal(signum: int, frame: object) -> None:
    _StopSignal.seen = True
    log.info("signal %d: stopping once the requests in flight and the flush are done", signum)


def dump_stacks_on_sigusr1() -> None:
    """`kill -USR1 PID` writes every thread's stack to the log: for a mount that hangs."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def run_foreground(source: Source, options: MountOptions, mountpoint: str,
                   ready_fd: int | None = None) -> None:
    """Mount, serve until unmounted or signalled, then leave nothing behind."""
    memory.tune_malloc()
    dump_stacks_on_sigusr1()
    with _reporting_to(ready_fd) as report:
        path = check_mountpoint(mountpoint)
        forget_dead_mounts()
        operations = _session_keeper(source, options, path)
        try:
            pyfuse3.init(operations, path, _fuse_options(source, options))
            try:
                with _recorded(MountRecord(path, str(source), os.getpid(),
                                           options.coherence.value)):
                    report("OK")
                    catch_stop_signals()
                    trio.run(serve, operations, path)
            finally:
                pyfuse3.close(unmount=True)
            trio.run(operations.release_all)
        finally:
            operations.close()
    log.info("stopped: %s unmounted, every write flushed", path)


def exit_stopped() -> NoReturn:
    """End the process of a mount that stopped cleanly, with status 0, now.

    The interpreter's own exit would set the stop signals' handling back to the
    default first: one more SIGTERM then (an impatient init system, a second
    `kill`) would turn a clean stop into a kill. Nothing is left to do.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def operations_on(client: CephClient, options: MountOptions, handles: HandleStore,
                  on_init: Callable[[], None] | None = None,
                  on_session_lost: Callable[[], NoReturn] | None = None) -> CephOperations:
    """The filesystem over a connected client, set up as `options` say (the hooks:
    CephOperations)."""
    return CephOperations(AsyncCephClient(client), client.root(),
                          coherence=options.coherence, cache_bytes=options.cache_bytes,
                          read_only=options.read_only, handles=handles,
                          on_init=on_init, on_session_lost=on_session_lost)


def _session_keeper(source: Source, options: MountOptions, path: str) -> SessionKeeper:
    """The mount's filesystem, on a new Ceph session whenever the cluster ends the last."""
    handles = HandleStore()

    def reconnect() -> CephClient:
        return connect(source, options, path, uuid=_session_uuid(path),
                       admin_socket=str(_record_path(path, ".asok")))

    def build(client: CephClient) -> CephOperations:
        return operations_on(client, options, handles, on_session_lost=session_lost)

    client = reconnect()
    try:
        return SessionKeeper(path, client, reconnect, build)
    except BaseException:
        client.close()
        raise


@contextlib.contextmanager
def _reporting_to(ready_fd: int | None) -> Iterator:
    """Tell the waiting parent (if any) "OK" or the one-line reason of a failure."""
    sent = False

    def report(line: str) -> None:
        nonlocal sent
        if ready_fd is not None and not sent:
            os.write(ready_fd, line.encode() + b"\n")
            os.close(ready_fd)
            sent = True

    try:
        yield report
    except (MountError, CephError, OSError, RuntimeError) as exc:
        report(f"ERR {exc}")
        raise


@contextlib.contextmanager
def _recorded(record: MountRecord) -> Iterator[None]:
    path = _record_path(record.mountpoint)
    atomic_write(path, json.dumps(record.__dict__).encode())
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def run_detached(argv: list[str], mountpoint: str, timeout: float) -> str:
    """Start `cephmount mount -f ...` as a new session; wait until it has mounted.

    A child that has not answered in time is stopped, and anything it mounted
    meanwhile unmounted: when this says the mount failed, nothing is mounted.
    """
    read_end, write_end = os.pipe()
    log_path = private_dir(state_dir() / "log") / "mounts.log"
    log_fd = open_private(log_path)
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "cephmount.cli", "mount", "-f",
             "--ready-fd", str(write_end), *argv],
            stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
            pass_fds=(write_end,), start_new_session=True)
    finally:
        os.close(log_fd)
    os.close(write_end)
    answer = _read_answer(read_end, timeout)
    if answer == "OK":
        return str(log_path)
    if answer.startswith("ERR "):
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)
    else:
        _stop_late_child(child, os.path.abspath(mountpoint))
    if answer.startswith("ERR "):
        raise MountError(answer[4:])
    raise MountError(f"the mount process ended without mounting ({answer}); see {log_path}")


def _stop_late_child(child: subprocess.Popen[bytes], mountpoint: str) -> None:
    """End a mount process whose parent gave up on it, and what it may have mounted."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    if any(entry.fs_type == FS_TYPE for entry in mountinfo.mounted_at(mountpoint)):
        syscalls.unmount_if_mounted(mountpoint, detach=True)
    forget_dead_mounts()


def _session_uuid(mountpoint: str) -> str:
    """The same for every mount at `mountpoint` on this node: a new mount there resets the
    Ceph session a killed one left, instead of every client of its files waiting for it."""
    digest = hashlib.sha256(mountpoint.encode()).hexdigest()[:16]
    return f"cephmount-{node_identity()}-{digest}"


def forget_dead_mounts() -> None:
    """Remove records and admin sockets of standalone mounts that are gone (killed)."""
    records = state_dir() / "mounts"
    live = {_record_path(record.mountpoint).stem for record in list_mounts()}
    for path in records.glob("*"):
        if path.stem not in live and path.suffix in (".json", ".asok"):
            path.unlink(missing_ok=True)


def _read_answer(read_end: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    chunks = b""
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        os.set_blocking(read_end, False)
        while time.monotonic() < deadline:
            try:
                chunk = pipe.read(4096)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                break
            if chunk:
                chunks += chunk
                if chunks.endswith(b"\n"):
                    break
            time.sleep(0.02)
        else:
            return "no answer within the timeout"
    return chunks.decode(errors="replace").strip() or "no answer"


def unmount(mountpoint: str) -> None:
    path = os.path.abspath(mountpoint)
    if not any(m.mountpoint == path for m in list_mounts()):
        raise MountError(f"{path} is not a cephmount mount")
    for argv in (["fusermount3", "-u", path], ["fusermount3", "-u", "-z", path]):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode == 0:
            return
    raise MountError(f"cannot unmount {path}: {result.stderr.strip()}")


def list_mounts() -> list[MountRecord]:
    """cephmount mounts of this host, as mountinfo has them, with their server's pid."""
    return [_with_record(MountRecord(entry.mountpoint, entry.source, 0, ""))
            for entry in mountinfo.mounts() if entry.fs_type == FS_TYPE]


def _with_record(record: MountRecord) -> MountRecord:
    try:
        return MountRecord(**json.loads(_record_path(record.mountpoint).read_text()))
    except (OSError, ValueError, TypeError):
        return record
