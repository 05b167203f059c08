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


class CallbackSet:
    """A `struct ceph_client_callback_args` and the cffi callbacks it points to."""

    def __init__(
        self,
        on_inode_invalidate: InodeInvalidate | None = None,
        on_dentry_invalidate: DentryInvalidate | None = None,
        on_inode_release: InodeRelease | None = None,
    ) -> None:
        self.args = ffi.new("struct ceph_client_callback_args *")
        self._keep: list[Any] = []
        if on_inode_invalidate is not None:
            self.args.ino_cb = self._wrap("client_ino_callback_t", _ino_cb(on_inode_invalidate))
        if on_dentry_invalidate is not None:
            self.args.dentry_cb = self._wrap(
                "client_dentry_callback_t", _dentry_cb(on_dentry_invalidate)
            )
        if on_inode_release is not None:
            self.args.ino_release_cb = self._wrap(
                "client_ino_release_t", _release_cb(on_inode_release)
            )

    def _wrap(self, ctype: str, func: Callable[..., None]) -> Any:
        callback = ffi.callback(ctype, func, onerror=_log_error)
        self._keep.append(callback)
        return callback


def _ino_cb(func: InodeInvalidate) -> Callable[[Any, Any, int, int], None]:
    def ino_cb(_handle: Any, vino: Any, offset: int, length: int) -> None:
        func(vino.ino.val, offset, length)

    return ino_cb


def _dentry_cb(func: DentryInvalidate) -> Callable[[Any, Any, Any, Any, int], None]:
    def dentry_cb(_handle: Any, dir_vino: Any, vino: Any, name: Any, length: int) -> None:
        func(dir_vino.ino.val, vino.ino.val, ffi.unpack(name, length))

    return dentry_cb


def _release_cb(func: InodeRelease) -> Callable[[Any, Any], None]:
    def release_cb(_handle: Any, vino: Any) -> None:
        func(vino.ino.val)

    return release_cb
