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
        return str(self.mgr("fs subvolume getpath",
                            **_subvolume_args(fs_name, subvolume, group))).strip()

    # -- subvolumes through the mgr's volumes module ------------------------------------

    def subvolume_create(self, fs_name: str, subvolume: str, size: int,
                         group: str | None) -> None:
        """A new subvolume with a quota of `size` bytes; EEXIST if it is there already."""
        if group:
            self.mgr("fs subvolumegroup create", vol_name=fs_name, group_name=group)
        if subvolume in self.subvolume_names(fs_name, group):
            raise CephAdminError(f"subvolume {_named(subvolume, group)} exists already",
                                 errno.EEXIST)
        self.mgr("fs subvolume create", **_subvolume_args(fs_name, subvolume, group),
                 size=size)

    def subvolume_names(self, fs_name: str, group: str | None) -> list[str]:
        args = {"vol_name": fs_name, **({"group_name": group} if group else {})}
        return [entry["name"] for entry in self.mgr("fs subvolume ls", **args) or []]

    def subvolume_info(self, fs_name: str, subvolume: str, group: str | None) -> dict[str, Any]:
        """What `fs subvolume info` says: `bytes_quota`, `bytes_used`, `path`, ..."""
        info: dict[str, Any] = self.mgr("fs subvolume info",
                                        **_subvolume_args(fs_name, subvolume, group))
        return info

    def subvolume_resize(self, fs_name: str, subvolume: str, size: int,
                         group: str | None) -> None:
        self.mgr("fs subvolume resize", **_subvolume_args(fs_name, subvolume, group),
                 new_size=str(size), no_shrink=False)

    def subvolume_remove(self, fs_name: str, subvolume: str, group: str | None) -> None:
        self.mgr("fs subvolume rm", **_subvolume_args(fs_name, subvolume, group))

    def subvolume_authorize(self, fs_name: str, subvolume: str, auth_id: str,
                            group: str | None) -> str:
        """Create `client.<auth_id>` confined to the subvolume (rw); its key."""
        self.mgr("fs subvolume authorize", **_subvolume_args(fs_name, subvolume, group),
                 auth_id=auth_id, access_level="rw")
        return self.auth_key(auth_id)

    def subvolume_deauthorize(self, fs_name: str, subvolume: str, auth_id: str,
                              group: str | None) -> None:
        """Evict the user's sessions on the subvolume and take its access away.

        The mgr removes the user itself when it has no other access left.
        """
        args = {**_subvolume_args(fs_name, subvolume, group), "auth_id": auth_id}
        self.mgr("fs subvolume evict", **args)
        self.mgr("fs subvolume deauthorize", **args)

    def auth_key(self, auth_id: str) -> str:
        """The cephx key of `client.<auth_id>`."""
        answer = self.mon("auth get-key", entity=f"client.{auth_id}")
        return str(answer["key"] if isinstance(answer, dict) else answer).strip()


def _subvolume_args(fs_name: str, subvolume: str, group: str | None) -> dict[str, str]:
    args = {"vol_name": fs_name, "sub_name": subvolume}
    if group:
        args["group_name"] = group
    return args


def _named(subvolume: str, group: str | None) -> str:
    return f"{group}/{subvolume}" if group else subvolume
