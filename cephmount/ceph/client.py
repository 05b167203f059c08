"""A synchronous client for one libcephfs mount, over the low-level inode API.

All methods block (many talk to the MDS or OSDs) and release the GIL while
libcephfs works; they may be called from many threads at once. Calls that act
for a user take `Credentials`, which libcephfs checks like the kernel would.

Reference rules: every method that returns an `Inode` (root, lookup,
lookup_inode, create, mkdir, mknod, symlink, readdir with want_inodes) hands
the caller one libcephfs reference on it; give it back with `put` (one) or
`forget` (several). Open files are closed with `release`, directories with
`releasedir`. After `unmount()` or `close()` every handle is invalid.

Do not fork a process after a mount: start workers with spawn or exec.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar

from cephmount.ceph import _libcephfs as c
from cephmount.ceph import preflight
from cephmount.ceph._callbacks import CallbackSet, DentryInvalidate, InodeInvalidate, InodeRelease
from cephmount.ceph._libcephfs import ffi, lib
from cephmount.ceph._perms import UserPermCache
from cephmount.ceph.asok import admin_socket_command
from cephmount.ceph.errors import CephError, check
from cephmount.ceph.structs import (
    NOW,
    ROOT,
    Credentials,
    DirEntry,
    DirHandle,
    FileHandle,
    Inode,
    Lock,
    NameBatch,
    StatX,
    TimeArg,
)
from cephmount.ceph.vino import NOSNAP, VinoNumbers

R = TypeVar("R")

# File capabilities (struct vfs_cap_data), which a write or a truncate removes.
CAPABILITY_XATTR = b"security.capability"
_PATH_MAX = 4096
_XATTR_ATTEMPTS = 4
# Read buffers: libcephfs fills what it returns, so they are not zeroed first.
_unzeroed = ffi.new_allocator(should_clear_after_alloc=False)
_DOTS = (b".", b"..")
# The byte `append` locks: the last one an off_t can address. No data lives
# there, so only other locks that run to the end of the file cover it.
_APPEND_LOCK_START = (1 << 63) - 1
# Waiting for a lock polls with non-blocking tries, from the first delay doubling
# up to the last: libcephfs's own wait (ll_setlk with sleep) holds its thread until
# the lock is granted and cannot be interrupted (the API has no ll_interrupt).
LOCK_POLL_FIRST_S = 0.002
LOCK_POLL_MAX_S = 0.05


def lock_poll_delays() -> Iterator[float]:
    """The pauses between tries of a lock that is held elsewhere."""
    delay = LOCK_POLL_FIRST_S
    while True:
        yield delay
        delay = min(delay * 2, LOCK_POLL_MAX_S)


class _Gate:
    """Admits calls only while mounted, and lets unmount wait for calls in flight.

    Without it an unmount in one thread could free the mount (and every
    Inode) under a call still running in another: a crash, not an error.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._busy = 0
        self._open = False
        self._refusal = errno.ENOTCONN, "the client is not mounted"

    def open(self) -> None:
        with self._cond:
            self._open = True

    def shut(self, refusal: tuple[int, str] | None = None) -> bool:
        """Refuse new calls (with `refusal`'s errno and reason, if given), wait for
        running ones; False if already shut."""
        with self._cond:
            was_open, self._open = self._open, False
            if refusal is not None:
                self._refusal = refusal
            self._cond.wait_for(lambda: self._busy == 0)
            return was_open

    def __enter__(self) -> None:
        with self._cond:
            if not self._open:
                raise CephError(self._refusal[0], "call", self._refusal[1])
            self._busy += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._cond:
            self._busy -= 1
            if self._busy == 0:
                self._cond.notify_all()


class _InodeMutexes:
    """A threading.Lock per inode, kept only while some thread holds or awaits it.

    POSIX locks of one owner never conflict, so two threads appending with the
    same owner would both get the lock: appends within a client queue here.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._mutexes: dict[int, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, ino: int) -> Iterator[None]:
        with self._guard:
            mutex, users = self._mutexes.get(ino, (None, 0))
            mutex = mutex or threading.Lock()
            self._mutexes[ino] = (mutex, users + 1)
        try:
            with mutex:
                yield
        finally:
            with self._guard:
                mutex, users = self._mutexes[ino]
                if users == 1:
                    del self._mutexes[ino]
                else:
                    self._mutexes[ino] = (mutex, users - 1)


@dataclass(frozen=True, slots=True)
class RefCounts:
    """What a client's cache holds, from its admin socket's `dump_cache`."""

    inodes: int
    """Inodes in the client's cache."""
    ll_refs: int
    """References handed out by the low-level API (lookup, create, ...)."""
    open_files: int
    """Open file handles (summed over the open modes)."""


def _address(pointer: Any) -> int:
    return int(ffi.cast("uintptr_t", pointer))


class NativeFunctions(NamedTuple):
    """Addresses of the C functions of the native handlers (ceph/native_build.py)."""

    read: int
    write: int
    getxattr: int
    getattr: int
    lookup: int
    unlink: int
    create: int
    flush: int


def native_functions() -> NativeFunctions:
    import cephmount.ceph._native_io as _native_io

    nffi = _native_io.ffi
    return NativeFunctions(*(int(nffi.cast("uintptr_t", nffi.addressof(_native_io.lib, name)))
                             for name in ("cm_read", "cm_write", "cm_getxattr",
                                          "cm_getattr", "cm_lookup", "cm_unlink",
                                          "cm_create", "cm_flush")))


def native_attributes_seen(node: Any, stx: StatX, kept: bool = False) -> None:
    """What `cm_attrs_seen` (`kept`: `cm_attrs_kept`) says of a `struct cm_inode`
    (`native_inode`'s)."""
    import cephmount.ceph._native_io as _native_io

    note = _native_io.lib.cm_attrs_kept if kept else _native_io.lib.cm_attrs_seen
    note(node, stx.version, stx.size, stx.mtime_ns)


def expire_native_attributes() -> None:
    """Every `struct cm_inode`'s next GETATTR is checked against the MDS
    (`cm_expire_attrs`)."""
    import cephmount.ceph._native_io as _native_io

    _native_io.lib.cm_expire_attrs()


def _native_struct(ctype: str, pointers: Mapping[str, Any]) -> tuple[int, Any]:
    """A new struct of ceph/native_build.py with `pointers` (our cdata) in its fields:
    its address, and the struct itself (which owns it)."""
    import cephmount.ceph._native_io as _native_io

    nffi = _native_io.ffi
    struct = nffi.new(ctype)
    _set_pointers(struct, pointers)
    return int(nffi.cast("uintptr_t", struct)), struct


def _set_pointers(struct: Any, pointers: Mapping[str, Any]) -> None:
    """Put `pointers` (our cdata) in the `void *` fields of a struct of ours."""
    import cephmount.ceph._native_io as _native_io

    for name, pointer in pointers.items():
        setattr(struct, name, _native_io.ffi.cast("void *", _address(pointer)))


def _statx() -> Any:
    return ffi.new("struct ceph_statx *")


def _inode_out() -> Any:
    return ffi.new("struct Inode **")


class CephClient:
    """One libcephfs mount of `root` (usually a subvolume path).

    `client_id` is the cephx name without "client." (e.g. "kube"); `options`
    are extra config options (e.g. {"client_metadata": "pod=x"}), applied
    after the conf file. Set `admin_socket` (a path shorter than 108 bytes) to
    get `admin_command` and `ref_counts`.
    """

    def __init__(
        self,
        conf_path: str,
        client_id: str = "admin",
        keyring: str | None = None,
        options: Mapping[str, str] | None = None,
        *,
        admin_socket: str | None = None,
        perm_cache_size: int = 128,
    ) -> None:
        preflight.readable(conf_path, "conf")
        out = ffi.new("struct ceph_mount_info **")
        check(lib.ceph_create(out, client_id.encode()), "create", f"client.{client_id}")
        self._cmount: Any = out[0]
        self._conf_path = conf_path
        self._client_id = client_id
        self._gate = _Gate()
        self._perms = UserPermCache(perm_cache_size)
        self._numbers = VinoNumbers()
        self._callbacks: list[CallbackSet] = []
        self._appends = _InodeMutexes()
        self._settings = dict(options or {})
        if keyring is not None:
            self._settings["keyring"] = keyring
        try:
            check(lib.ceph_conf_read_file(self._cmount, conf_path.encode()), "conf_read_file",
                  conf_path)
            for option, value in self._settings.items():
                self.conf_set(option, value)
            if admin_socket is not None:
                self.conf_set("admin_socket", admin_socket)
            if "cephx" in self.conf_get("auth_client_required"):
                preflight.check_keyring(self.conf_get("keyring"), f"client.{client_id}")
        except BaseException:
            self.close()
            raise

    # --- lifecycle -------------------------------------------------------

    def conf_set(self, option: str, value: str) -> None:
        """Set a config option (most take effect only before `mount`)."""
        check(lib.ceph_conf_set(self._live(), option.encode(), value.encode()), "conf_set",
              option)

    def conf_get(self, option: str) -> str:
        """A config option's current value, as text."""
        buf = ffi.new("char[]", _PATH_MAX)
        check(lib.ceph_conf_get(self._live(), option.encode(), buf, _PATH_MAX), "conf_get",
              option)
        return ffi.string(buf).decode()

    def mount(self, root: str = "/", timeout_s: float = 30.0, uuid: str | None = None) -> None:
        """Connect and mount `root`, failing within about `timeout_s` seconds.

        ceph_init already authenticates with the monitors; ceph_mount then
        opens the MDS session and resolves `root`. After a failure the client
        cannot be mounted again: close it.

        With `uuid` the session carries that identity, and a session left by
        an earlier client with the same uuid (one that died) is reset first:
        the MDS drops its caps and locks at once instead of waiting for it to
        time out, which keeps every other client of its files waiting.
        """
        self.conf_set("client_mount_timeout", f"{timeout_s:g}")
        self._mount_step("init", lib.ceph_init(self._cmount), root, timeout_s)
        if uuid is not None:
            self._reset_session(uuid)
        self._mount_step("mount", lib.ceph_mount(self._cmount, root.encode()), root, timeout_s)
        self._gate.open()

    def _reset_session(self, uuid: str) -> None:
        """Reset any session of `uuid` (ENOENT: there is none), then take that uuid."""
        ret = lib.ceph_start_reclaim(self._cmount, uuid.encode(), c.CEPH_RECLAIM_RESET)
        if ret < 0 and ret != -errno.ENOENT:
            raise CephError(-ret, "start_reclaim", f"resetting the session of {uuid}")
        lib.ceph_finish_reclaim(self._cmount)
        lib.ceph_set_uuid(self._cmount, uuid.encode())

    def _mount_step(self, op: str, ret: int, root: str, timeout_s: float) -> None:
        if ret < 0:
            raise CephError(-ret, op, self._mount_hint(op, -ret, root, timeout_s))

    def _mount_hint(self, op: str, err: int, root: str, timeout_s: float) -> str:
        """Why init (which authenticates) or mount most likely failed."""
        who = f"client.{self._client_id}"
        if err == errno.ETIMEDOUT:
            if op == "init":
                return f"no answer from the monitors in {timeout_s:g} s: check mon_host"
            return f"no answer from the MDS in {timeout_s:g} s"
        if err == errno.EACCES:
            return (f"the monitors refused the key of {who} from {self.conf_get('keyring')}: "
                    "wrong key?")
        if err == errno.EPERM:
            return f"the caps of {who} do not allow mounting {root}"
        if err == errno.ENOENT and op == "init":
            return f"no keyring for {who} at {self.conf_get('keyring')}"
        if err == errno.ENOENT:
            name = self.conf_get("client_fs")
            fs = f"filesystem {name!r}" if name else "default filesystem"
            if root == "/" or not self._filesystem_exists(timeout_s):
                return f"no {fs} in the cluster"
            return f"{root} does not exist in the {fs}"
        return f"mounting {root} as {who}"

    def _filesystem_exists(self, timeout_s: float) -> bool:
        """Whether the filesystem named by `client_fs` exists, by mounting "/" of it.

        libcephfs answers ENOENT both for a missing filesystem and for a missing
        path; "/" always exists, so only a missing filesystem fails that way there
        (a client confined to a subtree gets EPERM).
        """
        with CephClient(self._conf_path, self._client_id, options=self._settings) as probe:
            try:
                probe.mount("/", timeout_s)
            except CephError as exc:
                return exc.errno != errno.ENOENT
        return True

    def unmount(self) -> None:
        """Wait for calls in flight, then unmount; a no-op when not mounted."""
        if self._gate.shut():
            check(lib.ceph_unmount(self._cmount), "unmount")

    def close(self) -> None:
        """Unmount if mounted and free everything; safe to call again."""
        if self._cmount is None:
            return
        try:
            self.unmount()
        finally:
            self._free()

    def abort(self) -> None:
        """Drop a client whose session the cluster ended (evicted or blocklisted).

        Calls in flight finish first; later ones fail with ESHUTDOWN, as the lost
        session's calls do. `ceph_abort_conn` closes the MDS sessions without
        writing anything back: an unmount would flush buffered data and caps
        into a session the cluster has already dropped, and wait for it.
        Safe to call again, and after `close`.
        """
        if self._cmount is None:
            return
        try:
            if self._gate.shut((errno.ESHUTDOWN, "the Ceph session was lost")):
                check(lib.ceph_abort_conn(self._cmount), "abort_conn")
        finally:
            self._free()

    def _free(self) -> None:
        cmount, self._cmount = self._cmount, None
        lib.ceph_shutdown(cmount)
        self._callbacks.clear()
        self._perms.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _live(self) -> Any:
        if self._cmount is None:
            raise CephError(errno.EBADF, "call", "the client is closed")
        return self._cmount

    def _perm(self, cred: Credentials) -> Any:
        return self._perms.get(cred)

    def register_callbacks(
        self,
        on_inode_invalidate: InodeInvalidate | None = None,
        on_dentry_invalidate: DentryInvalidate | None = None,
        on_inode_release: InodeRelease | None = None,
    ) -> None:
        """Register cache-coherence callbacks for the life of the mount.

        They run on libcephfs threads, so they must be quick and thread-safe;
        an exception is logged, never raised into libcephfs. A later call
        replaces the earlier callbacks (libcephfs cannot unregister them).
        """
        callbacks = CallbackSet(self._numbers.known_number, on_inode_invalidate,
                                on_dentry_invalidate, on_inode_release)
        self._callbacks.append(callbacks)
        lib.ceph_ll_register_callbacks(self._live(), callbacks.args)

    # --- inodes and attributes -------------------------------------------

    def root(self) -> Inode:
        """The mount's root inode (one reference)."""
        with self._gate:
            out = _inode_out()
            check(lib.ceph_ll_lookup_root(self._cmount, out), "ll_lookup_root")
            stx = _statx()
            ret = lib.ceph_ll_getattr(
                self._cmount, out[0], stx, c.CEPH_STATX_INO, c.AT_STATX_DONT_SYNC,
                self._perm(ROOT),
            )
            if ret < 0:
                lib.ceph_ll_put(self._cmount, out[0])
                check(ret, "ll_getattr")
            return self._inode(stx, out[0])

    def _inode(self, stx: Any, ptr: Any) -> Inode:
        return Inode(self._numbers.number(stx.stx_ino, stx.stx_dev), ptr)

    def _stat(self, stx: Any) -> StatX:
        """The attributes in `stx`; libcephfs puts the snapshot id in `stx_dev`."""
        return StatX.from_cdata(stx, self._numbers.number(stx.stx_ino, stx.stx_dev))

    def lookup(self, parent: Inode, name: bytes, cred: Credentials) -> tuple[Inode, StatX]:
        """The entry `name` in `parent` (one reference) and its attributes."""
        return self._new_inode("ll_lookup", lib.ceph_ll_lookup, cred, parent.ptr, name)

    def _new_inode(self, op: str, func: Any, cred: Credentials, *args: Any) -> tuple[Inode, StatX]:
        """Call `func(cmount, *args, &inode, &statx, want, flags, perms)`.

        The signature shared by ll_lookup, ll_mkdir, ll_mknod and ll_symlink.
        """
        with self._gate:
            out, stx = _inode_out(), _statx()
            check(func(self._cmount, *args, out, stx, c.CEPH_STATX_ALL_STATS, 0,
                       self._perm(cred)), op)
            return self._inode(stx, out[0]), self._stat(stx)

    def lookup_inode(self, number: int) -> Inode:
        """The inode of `number` (one reference), asking the MDS if not cached.

        ESTALE if no such inode exists. A snapshot's number is looked up by
        its inode number and snapshot id (see vino.py); ESTALE for one whose
        tag this client never gave.
        """
        ino, snap = self._numbers.vino(number)
        with self._gate:
            out = _inode_out()
            if snap == NOSNAP:
                check(lib.ceph_ll_lookup_inode(self._cmount, ffi.new("inodeno_t *", [ino])[0],
                                               out), "ll_lookup_inode")
            else:
                vino = ffi.new("vinodeno_t *", [[ino], [snap]])
                check(lib.ceph_ll_lookup_vino(self._cmount, vino[0], out), "ll_lookup_vino")
            return Inode(number, out[0])

    def for_each_inode(self, numbers: Sequence[int],
                       call: Callable[[Inode], R]) -> list[R | CephError]:
        """`call` on the inode of each number, in one call (one thread hop in aio).

        Each inode is held by a reference of its own meanwhile (libcephfs finds a
        cached one by number without asking the MDS), so that a concurrent forget
        of the caller's cannot free it; a failure is returned in its place.
        """
        results: list[R | CephError] = []
        for number in numbers:
            try:
                inode = self.lookup_inode(number)
            except CephError as exc:
                results.append(exc)
                continue
            try:
                results.append(call(inode))
            except CephError as exc:
                results.append(exc)
            finally:
                self.put(inode)
        return results

    def put(self, inode: Inode) -> None:
        """Give back one reference."""
        with self._gate:
            lib.ceph_ll_put(self._cmount, inode.ptr)

    def forget(self, inode: Inode, count: int) -> None:
        """Give back `count` references at once (like FUSE's forget)."""
        with self._gate:
            lib.ceph_ll_forget(self._cmount, inode.ptr, count)

    def getattr(self, inode: Inode, cred: Credentials) -> StatX:
        """Current attributes (from cache when the client holds the caps)."""
        with self._gate:
            stx = _statx()
            check(
                lib.ceph_ll_getattr(self._cmount, inode.ptr, stx, c.CEPH_STATX_ALL_STATS, 0,
                                    self._perm(cred)),
                "ll_getattr",
            )
            return self._stat(stx)

    def setattr(
        self,
        inode: Inode,
        cred: Credentials,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        size: int | None = None,
        atime_ns: TimeArg = None,
        mtime_ns: TimeArg = None,
    ) -> StatX:
        """Change the given attributes; times take nanoseconds or `NOW`.

        A truncate (`size`) removes the file's capabilities first
        (`_clear_capabilities`), as the kernel's does."""
        stx = _statx()
        mask = 0
        for value, bit, fieldname in (
            (mode, c.CEPH_SETATTR_MODE, "stx_mode"),
            (uid, c.CEPH_SETATTR_UID, "stx_uid"),
            (gid, c.CEPH_SETATTR_GID, "stx_gid"),
            (size, c.CEPH_SETATTR_SIZE, "stx_size"),
        ):
            if value is not None:
                setattr(stx, fieldname, value)
                mask |= bit
        mask |= _set_time(stx.stx_atime, atime_ns, c.CEPH_SETATTR_ATIME, c.CEPH_SETATTR_ATIME_NOW)
        mask |= _set_time(stx.stx_mtime, mtime_ns, c.CEPH_SETATTR_MTIME, c.CEPH_SETATTR_MTIME_NOW)
        with self._gate:
            if size is not None:
                self._clear_capabilities(inode.ptr)
            check(lib.ceph_ll_setattr(self._cmount, inode.ptr, stx, mask, self._perm(cred)),
                  "ll_setattr")
        return self.getattr(inode, cred)

    def statfs(self, inode: Inode) -> os.statvfs_result:
        """File system usage as seen from `inode` (quotas apply)."""
        with self._gate:
            buf = ffi.new("struct statvfs *")
            check(lib.ceph_ll_statfs(self._cmount, inode.ptr, buf), "ll_statfs")
        return os.statvfs_result((
            buf.f_bsize, buf.f_frsize, buf.f_blocks, buf.f_bfree, buf.f_bavail, buf.f_files,
            buf.f_ffree, buf.f_favail, buf.f_flag, buf.f_namemax, buf.f_fsid,
        ))

    def cached_getattr(self, inode: Inode) -> StatX:
        """The attributes as this client holds them, without asking the MDS.

        They include this client's own writes; another client's changes show
        only once the MDS has told this one. Touches memory only.
        """
        with self._gate:
            stx = _statx()
            check(lib.ceph_ll_getattr(self._cmount, inode.ptr, stx, c.CEPH_STATX_ALL_STATS,
                                      c.AT_STATX_DONT_SYNC, self._perm(ROOT)), "ll_getattr")
            return self._stat(stx)

    def object_size(self, inode: Inode) -> int:
        """The RADOS object size of the file's layout (a good cache block size)."""
        with self._gate:
            layout = ffi.new("struct ceph_file_layout *")
            lib.ceph_ll_file_layout(self._cmount, inode.ptr, layout)
            return layout.fl_object_size or lib.ceph_ll_stripe_unit(self._cmount, inode.ptr)

    def file_caps(self, path: bytes) -> int:
        """The caps this client holds on `path` (relative to the mount root).

        A debugging aid (ceph_debug_get_file_caps): e.g. whether the client
        may still cache a file's data (CEPH_CAP_FILE_CACHE, 0x400).
        """
        with self._gate:
            return check(lib.ceph_debug_get_file_caps(self._cmount, path), "debug_get_file_caps")

    # --- files -----------------------------------------------------------

    def open(self, inode: Inode, flags: int, cred: Credentials) -> FileHandle:
        """Open with open(2) `flags` (O_CREAT is not for here: see `create`)."""
        with self._gate:
            out = ffi.new("struct Fh **")
            check(lib.ceph_ll_open(self._cmount, inode.ptr, flags, out, self._perm(cred)),
                  "ll_open")
            return FileHandle(inode.ino, out[0], inode.ptr)

    def create(
        self, parent: Inode, name: bytes, mode: int, flags: int, cred: Credentials
    ) -> tuple[Inode, StatX, FileHandle]:
        """Create (or with `flags` lacking O_EXCL, open) `name` and open it.

        O_CREAT is implied. Returns the inode (one reference), its attributes
        and the open file.
        """
        with self._gate:
            out, fh, stx = _inode_out(), ffi.new("struct Fh **"), _statx()
            check(
                lib.ceph_ll_create(self._cmount, parent.ptr, name, mode, flags | os.O_CREAT, out,
                                   fh, stx, c.CEPH_STATX_ALL_STATS, 0, self._perm(cred)),
                "ll_create",
            )
            inode = self._inode(stx, out[0])
            return inode, self._stat(stx), FileHandle(inode.ino, fh[0], inode.ptr)

    def read_into(self, fh: FileHandle, offset: int, buffer: Any) -> int:
        """Read up to len(buffer) bytes at `offset` into a writable buffer.

        Returns the count, short at end of file.
        """
        with self._gate:
            return self._read(fh, offset, ffi.from_buffer(buffer, require_writable=True))

    def read(self, fh: FileHandle, offset: int, size: int) -> memoryview:
        """Up to `size` bytes at `offset` (fewer at end of file), read-only.

        libcephfs reads straight into a buffer of the read's own, not zeroed first:
        no copy. Most of a short read's buffer would be held for nothing (a small
        file's block in the cache), so its data are copied into one of their size.
        """
        with self._gate:
            buffer = _unzeroed("char[]", size)
            count = self._read(fh, offset, buffer)
        data = memoryview(ffi.buffer(buffer, count))
        return data.toreadonly() if 2 * count >= size else memoryview(bytes(data))

    def _read(self, fh: FileHandle, offset: int, target: Any) -> int:
        return check(lib.ceph_ll_read(self._cmount, fh.ptr, offset, len(target), target),
                     "ll_read")

    def native_file(self, fh: FileHandle,
                    unsynced_mark: tuple[int, int] | None = None) -> tuple[int, Any]:
        """The address of the `struct cm_file` pyfuse3's native handlers of `fh` are
        called with (ceph/native_build.py), and its owner, which must outlive them.
        They must be cleared before this client is closed: they bypass its gate.
        `unsynced_mark` is the (file descriptor, offset) of the byte the first
        native write sets; None when it is set already."""
        root = self._perm(ROOT)
        address, file = _native_struct("struct cm_file *", {
            "cmount": self._live(), "fh": fh.ptr, "inode": fh.inode, "root": root})
        if unsynced_mark is None:
            file.mark_fd, file.marked = -1, 1
        else:
            file.mark_fd, file.mark_offset = unsynced_mark
        return address, (file, root)  # the UserPerm too: our LRU of them may free it

    def native_inode(self, inode: Inode, fuse_ino: int, ttl: float) -> tuple[int, Any]:
        """As `native_file`, a `struct cm_inode` for `inode`, known to the kernel as
        `fuse_ino`, whose attributes are checked against the MDS at most once a `ttl`
        (seconds). The owner's first item is the struct."""
        address, node = _native_struct("struct cm_inode *", {})
        return address, (node, self._fill_node(node, inode, fuse_ino, ttl))

    def _fill_node(self, node: Any, inode: Inode, fuse_ino: int, ttl: float) -> Any:
        """Fill in a `struct cm_inode` (`native_inode`): the root UserPerm it holds,
        which its owner must keep (our LRU of them may free it)."""
        root = self._perm(ROOT)
        _set_pointers(node, {"cmount": self._live(), "inode": inode.ptr, "root": root})
        node.fuse_ino, node.ttl_ns = fuse_ino, int(ttl * 1e9)
        return root

    def native_dir(self, inode: Inode, fuse_ino: int, root_ino: int, entry_timeout: float,
                   attr_timeout: float, ttl: float) -> tuple[int, Any]:
        """As `native_inode` (whose struct it begins with, a directory's), a `struct
        cm_dir` for the directory `inode`, whose lookups are asked on pyfuse3's
        threads; entries are answered with the timeouts given, but that of the mount
        root (`root_ino`). The owner's first item is its struct cm_inode."""
        import cephmount.ceph._native_io as _native_io

        address, directory = _native_struct("struct cm_dir *", {})
        node = _native_io.ffi.addressof(directory, "node")
        root = self._fill_node(node, inode, fuse_ino, ttl)
        node.dir = 1
        directory.root_ino = root_ino
        directory.entry_timeout = entry_timeout
        directory.attr_timeout = attr_timeout
        return address, (node, directory, root)

    def take_created(self, parent: int, name: bytes, pid: int
                     ) -> tuple[Inode, StatX, FileHandle] | None:
        """The file a create function (`native_dir`) made and opened as `name` in the
        directory the kernel knows as `parent` for the caller `pid`: as `create`
        returns it, else None (always, once the client is closed)."""
        taken = self._take(True, parent, name, pid)
        if taken is None:
            return None
        inode, stx, file = taken
        opened = ffi.cast("struct Fh *", file)
        return inode, stx, FileHandle(inode.ino, opened, inode.ptr)

    def take_lookup(self, parent: int, name: bytes, pid: int) -> tuple[Inode, StatX] | None:
        """The entry `name` in the directory the kernel knows as `parent`, if a lookup
        handler (`native_dir`) found it for the caller `pid`: as `lookup` returns it,
        else None (always, once the client is closed: its calls then say why)."""
        taken = self._take(False, parent, name, pid)
        return None if taken is None else taken[:2]

    def _take(self, made: bool, parent: int, name: bytes, pid: int
              ) -> tuple[Inode, StatX, int] | None:
        """What a create (`made`) or lookup function left for the caller `pid`: the
        inode, its attributes and the address of the open file (a create's)."""
        native = self._native_mount()
        if native is None:
            return None
        module, cmount = native
        stx, out, file = _statx(), module.ffi.new("void **"), module.ffi.new("void **")
        into = module.ffi.cast("void *", _address(stx))
        if not (module.lib.cm_take_made(cmount, parent, name, pid, out, into, file) if made
                else module.lib.cm_take_lookup(cmount, parent, name, pid, out, into)):
            return None
        pointer = ffi.cast("struct Inode *", int(module.ffi.cast("uintptr_t", out[0])))
        return (self._inode(stx, pointer), self._stat(stx),
                int(module.ffi.cast("uintptr_t", file[0])))

    def waiting_lookups(self) -> int:
        """How many entries lookup handlers found wait for their request to take them."""
        native = self._native_mount()
        return 0 if native is None else int(native[0].lib.cm_waiting_lookups(native[1]))

    def drop_lookups(self) -> int:
        """Free the entries lookup handlers found that nobody took (their references go
        with this client): how many. Only once no lookup handler of it can run."""
        native = self._native_mount()
        return 0 if native is None else int(native[0].lib.cm_drop_lookups(native[1]))

    def _native_mount(self) -> tuple[Any, Any] | None:
        """ceph/native_build.py's module and this client's mount as its functions take
        it; None once the client is closed (no lookup entry of it is left then)."""
        import cephmount.ceph._native_io as _native_io

        if self._cmount is None:
            return None
        return _native_io, _native_io.ffi.cast("void *", _address(self._cmount))

    def write(self, fh: FileHandle, offset: int, data: Any) -> int:
        """Write `data` (any bytes-like object) at `offset`; returns the count.

        The file loses its capabilities first (`_clear_capabilities`)."""
        with self._gate:
            self._clear_capabilities(fh.inode)
            source = ffi.from_buffer(data)
            return check(lib.ceph_ll_write(self._cmount, fh.ptr, offset, len(source), source),
                         "ll_write")

    def append(self, fh: FileHandle, data: Any, owner: int) -> int:
        """Write `data` at the end of the file as the cluster knows it; the offset used.

        Atomic against every other `append` to the file, from this client or
        any other: under an exclusive POSIX lock it reads the size, writes
        there and fsyncs before unlocking. Writers that do not take the lock
        (plain `write`, other CephFS clients) are not serialised.

        The lock is `owner`'s, on the file's last possible byte, so only
        locks running to the end of the file conflict with it: then this
        waits for them (polling, holding its thread; `try_append` does not wait).
        """
        for delay in lock_poll_delays():
            offset = self.try_append(fh, data, owner)
            if offset is not None:
                return offset
            time.sleep(delay)
        raise AssertionError("lock_poll_delays never ends")

    def try_append(self, fh: FileHandle, data: Any, owner: int,
                   covering_owners: Collection[int] = ()) -> int | None:
        """`append` if no other client's lock is in the way, else None (nothing written).

        A lock of one of `covering_owners` (owners of this client) on the append
        byte does not stand in the way: it keeps every other client's append out
        as well as the append lock would. Without this, a process that locks the
        whole file and then appends would wait for itself.
        """
        with self._appends.hold(fh.ino), self._gate:
            locked = self._try_lock(fh, Lock(fcntl.F_WRLCK, _APPEND_LOCK_START, 1), owner)
            if not locked and not self._covered(fh, covering_owners):
                return None
            try:
                offset = self._cluster_size(fh)
                self._clear_capabilities(fh.inode)
                self._write_all(fh, offset, data)
                check(lib.ceph_ll_fsync(self._cmount, fh.ptr, 0), "ll_fsync")
            finally:
                if locked:
                    check(lib.ceph_ll_setlk(self._cmount, fh.ptr,
                                            _flock(Lock(fcntl.F_UNLCK, _APPEND_LOCK_START, 1)),
                                            owner, 0), "ll_setlk", "the append lock")
            return offset

    def _try_lock(self, fh: FileHandle, lock: Lock, owner: int) -> bool:
        """Take a POSIX lock without waiting; False when another owner's lock conflicts."""
        ret = lib.ceph_ll_setlk(self._cmount, fh.ptr, _flock(lock), owner, 0)
        if ret == -errno.EAGAIN:
            return False
        check(ret, "ll_setlk")
        return True

    def _covered(self, fh: FileHandle, owners: Collection[int]) -> bool:
        """Whether one of `owners` holds every lock that conflicts with the append lock."""
        for owner in owners:
            flock = _flock(Lock(fcntl.F_WRLCK, _APPEND_LOCK_START, 1))
            check(lib.ceph_ll_getlk(self._cmount, fh.ptr, flock, owner), "ll_getlk")
            if flock.l_type == fcntl.F_UNLCK:
                return True
        return False

    def _cluster_size(self, fh: FileHandle) -> int:
        """The file's size, current for whoever holds the append lock.

        ll_getattr answers from the cache while this client holds the Fs cap
        (no other client can then hold Fw, so the size is exact), else asks
        the MDS. The MDS answers at once, without recalling the writers' Fw
        caps and their unreported sizes, while its file lock is in a
        readable transition (MIX->LOCK): so every appender fsyncs, which
        reports its size, before it unlocks.
        """
        stx = _statx()
        check(lib.ceph_ll_getattr(self._cmount, fh.inode, stx, c.CEPH_STATX_SIZE, 0,
                                  self._perm(ROOT)), "ll_getattr")
        return stx.stx_size

    def _clear_capabilities(self, inode: Any) -> None:
        """Remove the file capabilities of `inode` (an `Inode *`), as the kernel does
        before a write or a truncate: a changed program must not keep its privileges.

        The kernel decides from its own getxattr of them, which may have been
        answered from a cache, and never decides for a `direct_io` write. libcephfs
        answers from its xattr caps, coherent across nodes (no MDS round trip while
        it holds them). As root, since the kernel removes them whoever writes.
        """
        perm = self._perm(ROOT)
        found = lib.ceph_ll_getxattr(self._cmount, inode, CAPABILITY_XATTR, ffi.NULL, 0, perm)
        if found == -errno.ENODATA:
            return
        check(found, "ll_getxattr", CAPABILITY_XATTR.decode())
        removed = lib.ceph_ll_removexattr(self._cmount, inode, CAPABILITY_XATTR, perm)
        if removed != -errno.ENODATA:  # another writer removed them first
            check(removed, "ll_removexattr", CAPABILITY_XATTR.decode())

    def _write_all(self, fh: FileHandle, offset: int, data: Any) -> None:
        """ll_write all of `data`: it writes at most INT_MAX bytes a call."""
        source = ffi.from_buffer(data)
        done = 0
        while done < len(source):
            done += check(lib.ceph_ll_write(self._cmount, fh.ptr, offset + done,
                                            len(source) - done, source + done), "ll_write")

    def fsync(self, fh: FileHandle, datasync: bool = False) -> None:
        """Make the file's data (and unless `datasync`, its metadata) durable."""
        with self._gate:
            check(lib.ceph_ll_fsync(self._cmount, fh.ptr, int(datasync)), "ll_fsync")

    def sync_inode(self, inode: Inode, datasync: bool = False) -> None:
        """fsync(2) without an open file: a directory's changes made durable."""
        with self._gate:
            check(lib.ceph_ll_sync_inode(self._cmount, inode.ptr, int(datasync)),
                  "ll_sync_inode")

    def release(self, fh: FileHandle) -> None:
        """Close an open file, returning errors of earlier buffered writes.

        (Named after FUSE's release: `close()` closes the whole client.)
        """
        with self._gate:
            check(lib.ceph_ll_close(self._cmount, fh.ptr), "ll_close")

    def getlk(self, fh: FileHandle, lock: Lock, owner: int) -> Lock:
        """The first lock that conflicts with `lock`, or `lock` with type F_UNLCK."""
        with self._gate:
            flock = _flock(lock)
            check(lib.ceph_ll_getlk(self._cmount, fh.ptr, flock, owner), "ll_getlk")
            return Lock(flock.l_type, flock.l_start, flock.l_len, flock.l_pid)

    def setlk(self, fh: FileHandle, lock: Lock, owner: int) -> None:
        """Take or release (F_UNLCK) a POSIX lock for `owner`, without waiting.

        A lock of another owner in the way raises CephError(EAGAIN): wait by
        trying again (see `lock_poll_delays`).
        """
        with self._gate:
            if not self._try_lock(fh, lock, owner):
                raise CephError(errno.EAGAIN, "ll_setlk")

    def fallocate(self, fh: FileHandle, mode: int, offset: int, length: int) -> None:
        """fallocate(2) on an open file: libcephfs takes modes 0, KEEP_SIZE and
        PUNCH_HOLE|KEEP_SIZE, and answers EOPNOTSUPP to the others. The file
        loses its capabilities first (`_clear_capabilities`), as for a write."""
        with self._gate:
            self._clear_capabilities(fh.inode)
            check(lib.ceph_ll_fallocate(self._cmount, fh.ptr, mode, offset, length),
                  "ll_fallocate")

    # --- directories -------------------------------------------------------

    def opendir(self, inode: Inode, cred: Credentials) -> DirHandle:
        """Open a directory for `readdir`."""
        with self._gate:
            out = ffi.new("struct ceph_dir_result **")
            check(lib.ceph_ll_opendir(self._cmount, inode.ptr, out, self._perm(cred)),
                  "ll_opendir")
            return DirHandle(inode.ino, out[0])

    def releasedir(self, dirh: DirHandle) -> None:
        with self._gate:
            check(lib.ceph_ll_releasedir(self._cmount, dirh.ptr), "ll_releasedir")

    def readdir(
        self, dirh: DirHandle, offset: int = 0, *, want_inodes: bool = False,
        dots: bool = False,
    ) -> Iterator[DirEntry]:
        """Entries from `offset` on ("." and ".." only with `dots`).

        `offset` is 0 or an entry's `offset` from an earlier call on the same
        handle. Attributes come from the client's cache without asking the
        MDS (readdir replies carry them): check `stat.mask`. With
        `want_inodes` each entry carries one reference on its inode, taken
        only when the entry is produced: stop early and nothing leaks.
        "." and ".." never carry one (FUSE counts no lookup for them).
        """
        de, stx = ffi.new("struct dirent *"), _statx()
        out = _inode_out() if want_inodes else ffi.NULL
        while True:
            with self._gate:
                self._seekdir(dirh, offset)
                got = check(
                    lib.ceph_readdirplus_r(self._cmount, dirh.ptr, de, stx,
                                           c.CEPH_STATX_ALL_STATS, c.AT_STATX_DONT_SYNC, out),
                    "readdirplus_r",
                )
                if not got:
                    return
                offset = lib.ceph_telldir(self._cmount, dirh.ptr)
                entry = self._dir_entry(de, stx, offset, out, dots)
            if entry is not None:
                yield entry

    def _dir_entry(self, de: Any, stx: Any, offset: int, out: Any,
                   dots: bool) -> DirEntry | None:
        name = ffi.string(de.d_name)
        inode = None if out == ffi.NULL else self._inode(stx, out[0])
        if name in _DOTS:
            if inode is not None:
                lib.ceph_ll_put(self._cmount, inode.ptr)
            return DirEntry(name, self._stat(stx), offset) if dots else None
        return DirEntry(name, self._stat(stx), offset, inode)

    def readdir_batch(
        self, dirh: DirHandle, offset: int, limit: int, *, want_inodes: bool = False,
        dots: bool = False,
    ) -> list[DirEntry]:
        """At most `limit` entries of `readdir` at once (one thread hop in aio)."""
        entries = self.readdir(dirh, offset, want_inodes=want_inodes, dots=dots)
        return list(itertools.islice(entries, limit))

    def _seekdir(self, dirh: DirHandle, offset: int) -> None:
        """Go to `offset` (an entry's, or 0) unless the handle is there already."""
        if lib.ceph_telldir(self._cmount, dirh.ptr) != offset:
            lib.ceph_seekdir(self._cmount, dirh.ptr, offset)

    def readdir_names(self, dirh: DirHandle, offset: int, limit: int) -> NameBatch:
        """At most `limit` entries from `offset` ("." and ".." included) with their
        numbers and types only, in one libcephfs call (`ceph_getdents`) instead of
        three per entry. In a snapshot, whose numbers need its snap id (see vino.py),
        they are read with `readdir_batch` and renumbered. A short batch (the end of
        a directory) is copied into bytes of its size rather than hold the buffer.
        """
        if self._numbers.vino(dirh.ino)[1] != NOSNAP:
            return NameBatch.of(self.readdir_batch(dirh, offset, limit, dots=True))
        dirents = _unzeroed("struct dirent[]", limit)
        with self._gate:
            self._seekdir(dirh, offset)
            size = check(lib.ceph_getdents(self._cmount, dirh.ptr, ffi.cast("char *", dirents),
                                           ffi.sizeof(dirents)), "getdents")
        records = memoryview(ffi.buffer(dirents, size))
        if 2 * size < ffi.sizeof(dirents):
            return NameBatch(memoryview(bytes(records)))
        return NameBatch(records.toreadonly())

    # --- names -----------------------------------------------------------

    def mkdir(
        self, parent: Inode, name: bytes, mode: int, cred: Credentials
    ) -> tuple[Inode, StatX]:
        """Make a directory; returns it (one reference) and its attributes."""
        return self._new_inode("ll_mkdir", lib.ceph_ll_mkdir, cred, parent.ptr, name, mode)

    def mknod(
        self, parent: Inode, name: bytes, mode: int, rdev: int, cred: Credentials
    ) -> tuple[Inode, StatX]:
        """Make a node (file, FIFO, socket, device) as mknod(2) does."""
        return self._new_inode("ll_mknod", lib.ceph_ll_mknod, cred, parent.ptr, name, mode, rdev)

    def symlink(
        self, parent: Inode, name: bytes, target: bytes, cred: Credentials
    ) -> tuple[Inode, StatX]:
        """Make a symbolic link `name` -> `target`."""
        return self._new_inode("ll_symlink", lib.ceph_ll_symlink, cred, parent.ptr, name, target)

    def readlink(self, inode: Inode, cred: Credentials) -> bytes:
        with self._gate:
            buf = ffi.new("char[]", _PATH_MAX)
            count = check(lib.ceph_ll_readlink(self._cmount, inode.ptr, buf, _PATH_MAX,
                                               self._perm(cred)), "ll_readlink")
            return ffi.unpack(buf, count)

    def link(
        self, inode: Inode, newparent: Inode, newname: bytes, cred: Credentials
    ) -> StatX:
        """Add the hard link `newname` in `newparent`; returns the new attributes.

        No reference is taken: the caller already holds `inode`.
        """
        with self._gate:
            check(lib.ceph_ll_link(self._cmount, inode.ptr, newparent.ptr, newname,
                                   self._perm(cred)), "ll_link")
        return self.getattr(inode, cred)

    def unlink(self, parent: Inode, name: bytes, cred: Credentials) -> None:
        with self._gate:
            check(lib.ceph_ll_unlink(self._cmount, parent.ptr, name, self._perm(cred)),
                  "ll_unlink")

    def rmdir(self, parent: Inode, name: bytes, cred: Credentials) -> None:
        with self._gate:
            check(lib.ceph_ll_rmdir(self._cmount, parent.ptr, name, self._perm(cred)),
                  "ll_rmdir")

    def rename(
        self, parent: Inode, name: bytes, newparent: Inode, newname: bytes, cred: Credentials
    ) -> None:
        """rename(2): replaces an existing `newname`.

        libcephfs takes no flags: RENAME_NOREPLACE and RENAME_EXCHANGE must be
        emulated (or refused) above this layer.
        """
        with self._gate:
            check(lib.ceph_ll_rename(self._cmount, parent.ptr, name, newparent.ptr, newname,
                                     self._perm(cred)), "ll_rename")

    # --- extended attributes ---------------------------------------------

    def getxattr(self, inode: Inode, name: bytes, cred: Credentials) -> bytes:
        perm = self._perm(cred)

        def fetch(buf: Any, size: int) -> int:
            return lib.ceph_ll_getxattr(self._cmount, inode.ptr, name, buf, size, perm)

        return self._sized("ll_getxattr", fetch)

    def listxattr(self, inode: Inode, cred: Credentials) -> list[bytes]:
        perm = self._perm(cred)
        size_out = ffi.new("size_t *")

        def fetch(buf: Any, size: int) -> int:
            ret = lib.ceph_ll_listxattr(self._cmount, inode.ptr, buf, size, size_out, perm)
            return ret if ret < 0 else size_out[0]

        return self._sized("ll_listxattr", fetch).split(b"\0")[:-1]

    def _sized(self, op: str, fetch: Any) -> bytes:
        """Ask for the size with an empty buffer, then fetch; retry if it grew."""
        with self._gate:
            for _ in range(_XATTR_ATTEMPTS):
                size = check(fetch(ffi.NULL, 0), op)
                buf = ffi.new("char[]", size)
                count = fetch(buf, size)
                if count != -errno.ERANGE:
                    return ffi.unpack(buf, check(count, op))
        raise CephError(errno.ERANGE, op, "the value kept growing")

    def setxattr(
        self, inode: Inode, name: bytes, value: bytes, cred: Credentials, *, flags: int = 0
    ) -> None:
        """Set an attribute; `flags` 0, os.XATTR_CREATE or os.XATTR_REPLACE."""
        with self._gate:
            check(lib.ceph_ll_setxattr(self._cmount, inode.ptr, name, value, len(value), flags,
                                       self._perm(cred)), "ll_setxattr")

    def removexattr(self, inode: Inode, name: bytes, cred: Credentials) -> None:
        with self._gate:
            check(lib.ceph_ll_removexattr(self._cmount, inode.ptr, name, self._perm(cred)),
                  "ll_removexattr")

    # --- introspection -------------------------------------------------------

    def admin_command(self, prefix: str, **args: Any) -> Any:
        """A command to this client's admin socket (needs `admin_socket`)."""
        path = self.conf_get("admin_socket")
        if not path:
            raise CephError(errno.ENOTSUP, "admin_command", "no admin_socket configured")
        return admin_socket_command(path, prefix, **args)

    def ref_counts(self) -> RefCounts:
        """Cached inodes, low-level references and open files (for leak checks)."""
        inodes = [i for i in self.admin_command("dump_cache")["cache"] if "ll_ref" in i]
        return RefCounts(
            inodes=len(inodes),
            ll_refs=sum(i["ll_ref"] for i in inodes),
            open_files=sum(m["refs"] for i in inodes for m in i.get("open_by_mode", ())),
        )


def _set_time(ts: Any, value: TimeArg, bit: int, now_bit: int) -> int:
    """Fill `ts` from `value`; the setattr mask bits to use.

    libcephfs 16.2 ignores the *_NOW bits (with the plain bit it stores the
    timespec given, without it nothing), so NOW is the local clock, which is
    also what libcephfs itself stamps writes with.
    """
    if value is None:
        return 0
    if value is NOW:
        value = time.time_ns()
        bit |= now_bit
    ts.tv_sec, ts.tv_nsec = divmod(value, 1_000_000_000)
    return bit


def _flock(lock: Lock) -> Any:
    return ffi.new("struct flock *", {
        "l_type": lock.type, "l_whence": os.SEEK_SET, "l_start": lock.start,
        "l_len": lock.length, "l_pid": lock.pid,
    })
