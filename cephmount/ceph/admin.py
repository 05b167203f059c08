"""Mon and mgr commands through the `rados` module.

The `rados` module is the right tool here: it speaks the same command protocol
as the `ceph` CLI without a Python interpreter start per command, and its
timeouts are ours to set (the CLI waits 300 s when no mon answers).
"""

from __future__ import annotations

import errno
import json
from typing import Any

import rados

from cephmount.ceph import preflight
from cephmount.ceph.errors import CephError


class CephAdminError(Exception):
    """A mon/mgr command failed; `errno` is the positive error number."""

    def __init__(self, message: str, err: int = errno.EIO) -> None:
        super().__init__(message)
        self.errno = err


class AdminClient:
    """A rados connection used only to send mon and mgr commands."""

    def __init__(
        self,
        conf_path: str,
        name: str = "client.admin",
        keyring: str | None = None,
        timeout: float = 15.0,
        key: str | None = None,
    ) -> None:
        conf = {
            "client_mount_timeout": str(int(timeout)),
            "rados_mon_op_timeout": str(int(timeout)),
        }
        if keyring:
            conf["keyring"] = keyring
        if key:
            conf["key"] = key
        self._timeout = timeout
        try:
            preflight.readable(conf_path, "conf")
            self._cluster = rados.Rados(conffile=conf_path, name=name, conf=conf)
        except CephError as exc:
            raise CephAdminError(str(exc), exc.errno or errno.EIO) from None
        except rados.Error as exc:
            raise CephAdminError(f"cannot read {conf_path}: {exc}", errno.EINVAL) from exc
        try:
            if "cephx" in self._cluster.conf_get("auth_client_required"):
                preflight.check_keyring(self._cluster.conf_get("keyring"), name)
        except CephError as exc:
            self._cluster.shutdown()
            raise CephAdminError(str(exc), exc.errno or errno.EIO) from None
        try:
            self._cluster.connect(timeout=int(timeout))
        except rados.Error as exc:
            self._cluster.shutdown()
            raise CephAdminError(
                f"cannot reach the cluster of {conf_path} as {name}: {exc}",
                getattr(exc, "errno", None) or errno.ETIMEDOUT,
            ) from exc

    def close(self) -> None:
        self._cluster.shutdown()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def mon(self, prefix: str, **args: Any) -> Any:
        """Run a mon command and return its JSON answer (None when it has none)."""
        return self._run(self._cluster.mon_command, prefix, args)

    def mgr(self, prefix: str, **args: Any) -> Any:
        """Run a mgr command (e.g. `fs subvolume getpath`) and return its answer."""
        return self._run(self._cluster.mgr_command, prefix, args)

    def _run(self, send: Any, prefix: str, args: dict[str, Any]) -> Any:
        command = {"prefix": prefix, "format": "json", **args}
        try:
            ret, out, err = send(json.dumps(command), b"", timeout=int(self._timeout))
        except rados.Error as exc:
            raise CephAdminError(f"{prefix}: {exc}", getattr(exc, "errno", errno.EIO)) from exc
        if ret != 0:
            raise CephAdminError(f"{prefix}: {err.strip() or 'failed'}", -ret)
        text = out.decode().strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    def subvolume_path(self, fs_name: str, subvolume: str, group: str | None) -> str:
        """The path of a subvolume inside its filesystem, as the mgr reports it."""
        args = {"vol_name": fs_name, "sub_name": subvolume}
        if group:
            args["group_name"] = group
        return str(self.mgr("fs subvolume getpath", **args)).strip()
