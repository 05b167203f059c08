"""libcephfs cache-coherence callbacks as cffi callbacks.

libcephfs calls them on its own finisher threads (cffi takes the GIL). An
exception must never unwind into C: cffi's `onerror` logs it instead. There
is no way to unregister callbacks, so the cffi objects and the args struct
must outlive the mount: CallbackSet keeps them together, and the client keeps
every CallbackSet it registered until it is shut down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

from cephmount.ceph._libcephfs import ffi

log = logging.getLogger(__name__)

InodeInvalidate = Callable[[int, int, int], None]
"""(ino, offset, length): drop cached data of the range; length 0 means all."""

DentryInvalidate = Callable[[int, int, bytes], None]
"""(dir_ino, ino, name): the entry `name` in `dir_ino` is gone or changed."""

InodeRelease = Callable[[int], None]
"""(ino): the MDS wants caps back; drop references to the inode if possible."""


def _log_error(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    log.error("libcephfs callback failed", exc_info=(exc_type, exc, tb))


Number = Callable[[int, int], "int | None"]
"""(ino, snapid): the number the client gave that inode (see vino.py), None if none."""


class CallbackSet:
    """A `struct ceph_client_callback_args` and the cffi callbacks it points to.

    Callbacks get inodes by the client's numbers (`number`); an event about
    an inode the client never numbered concerns nothing it handed out, and
    is dropped.
    """

    def __init__(
        self,
        number: Number,
        on_inode_invalidate: InodeInvalidate | None = None,
        on_dentry_invalidate: DentryInvalidate | None = None,
        on_inode_release: InodeRelease | None = None,
    ) -> None:
        self.args = ffi.new("struct ceph_client_callback_args *")
        self._keep: list[Any] = []
        if on_inode_invalidate is not None:
            self.args.ino_cb = self._wrap("client_ino_callback_t",
                                          _ino_cb(number, on_inode_invalidate))
        if on_dentry_invalidate is not None:
            self.args.dentry_cb = self._wrap(
                "client_dentry_callback_t", _dentry_cb(number, on_dentry_invalidate)
            )
        if on_inode_release is not None:
            self.args.ino_release_cb = self._wrap(
                "client_ino_release_t", _release_cb(number, on_inode_release)
            )

    def _wrap(self, ctype: str, func: Callable[..., None]) -> Any:
        callback = ffi.callback(ctype, func, onerror=_log_error)
        self._keep.append(callback)
        return callback


def _ino_cb(number: Number, func: InodeInvalidate) -> Callable[[Any, Any, int, int], None]:
    def ino_cb(_handle: Any, vino: Any, offset: int, length: int) -> None:
        ino = number(vino.ino.val, vino.snapid.val)
        if ino is not None:
            func(ino, offset, length)

    return ino_cb


def _dentry_cb(number: Number,
               func: DentryInvalidate) -> Callable[[Any, Any, Any, Any, int], None]:
    def dentry_cb(_handle: Any, dir_vino: Any, vino: Any, name: Any, length: int) -> None:
        dir_ino = number(dir_vino.ino.val, dir_vino.snapid.val)
        ino = number(vino.ino.val, vino.snapid.val)
        if dir_ino is not None and ino is not None:
            func(dir_ino, ino, ffi.unpack(name, length))

    return dentry_cb


def _release_cb(number: Number, func: InodeRelease) -> Callable[[Any, Any], None]:
    def release_cb(_handle: Any, vino: Any) -> None:
        ino = number(vino.ino.val, vino.snapid.val)
        if ino is not None:
            func(ino)

    return release_cb
