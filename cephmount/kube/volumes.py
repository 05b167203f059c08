"""`cephmount volume create | resize | delete | list`: subvolumes for Kubernetes pods.

A volume is a CephFS subvolume with a quota (the mgr's volumes module), a
cephx user confined to it (`fs subvolume authorize`) and the objects a
cluster admin applies: a Secret holding that user's key, a ReadWriteMany
PersistentVolume with the flexVolume source, and a PersistentVolumeClaim
bound to it by name. The manifests are files: `NAME-secret.yaml` (0600,
it holds the key), `NAME-pv.yaml` and `NAME-pvc.yaml`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cephmount.ceph.admin import AdminClient
from cephmount.daemon import client as daemon_client
from cephmount.host.statedir import atomic_write
from cephmount.kube import manifests
from cephmount.kube.manifests import VolumeObjects

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class VolumeError(Exception):
    """A volume request that cannot be done; the message says why."""


@dataclass(frozen=True)
class Cluster:
    """How to reach the cluster's mgr, and the filesystem the volumes are in."""

    conf: str
    name: str
    keyring: str | None
    fs_name: str


def client_id(name: str, group: str | None) -> str:
    """The cephx user of a volume (`client.` left out): one per subvolume."""
    return f"cephmount.{group or '_nogroup'}.{name}"


def check_name(what: str, value: str) -> str:
    """Volume names and namespaces are Kubernetes labels, valid as subvolume names too."""
    if not _LABEL.match(value):
        raise VolumeError(f"{what} {value!r} must be lowercase letters, digits and '-' "
                          "(at most 63, starting and ending with a letter or digit)")
    return value


@contextmanager
def _admin(cluster: Cluster) -> Iterator[AdminClient]:
    with AdminClient(cluster.conf, cluster.name, cluster.keyring) as admin:
        yield admin


def create(cluster: Cluster, name: str, size: int, group: str | None, namespace: str,
           output: Path) -> list[Path]:
    """Make the subvolume and its user; write the manifests; their paths."""
    check_name("volume", name)
    check_name("namespace", namespace)
    with _admin(cluster) as admin:
        admin.subvolume_create(cluster.fs_name, name, size, group)
        objects = _objects(admin, cluster, name, size, group, namespace)
        key = admin.subvolume_authorize(cluster.fs_name, name, objects.client_id, group)
    return [_write(output / f"{name}-secret.yaml", manifests.secret(objects, key), 0o600),
            _write(output / f"{name}-pv.yaml", manifests.persistent_volume(objects)),
            _write(output / f"{name}-pvc.yaml", manifests.persistent_volume_claim(objects))]


def resize(cluster: Cluster, name: str, size: int, group: str | None, namespace: str,
           output: Path) -> Path:
    """Set the quota; write the PV with its new capacity (the claim's request stays)."""
    check_name("namespace", namespace)
    with _admin(cluster) as admin:
        admin.subvolume_resize(cluster.fs_name, name, size, group)
        objects = _objects(admin, cluster, name, size, group, namespace)
    return _write(output / f"{name}-pv.yaml", manifests.persistent_volume(objects))


def _objects(admin: AdminClient, cluster: Cluster, name: str, size: int, group: str | None,
             namespace: str) -> VolumeObjects:
    return VolumeObjects(name, namespace, cluster.fs_name, group, client_id(name, group), size,
                         admin.subvolume_path(cluster.fs_name, name, group))


def delete(cluster: Cluster, name: str, group: str | None, force: bool,
           socket: str | None) -> None:
    """Remove the subvolume, its data and its user; not while this node mounts it."""
    with _admin(cluster) as admin:
        path = admin.subvolume_path(cluster.fs_name, name, group)
        users = _mounted_here(cluster.fs_name, name, group, path, socket)
        if users and not force:
            raise VolumeError(f"volume {name} is mounted on this node at {', '.join(users)}; "
                              "unmount it first (or --force)")
        admin.subvolume_deauthorize(cluster.fs_name, name, client_id(name, group), group)
        admin.subvolume_remove(cluster.fs_name, name, group)


def _mounted_here(fs_name: str, name: str, group: str | None, path: str,
                  socket: str | None) -> list[str]:
    """The targets of this node's daemon that show the subvolume (by name or by path)."""
    socket_path = daemon_client.socket_path(socket)
    if not daemon_client.answers(socket_path):
        return []
    mounts = daemon_client.call(socket_path, daemon_client.List()).mounts or []
    return [target.path for info in mounts
            if _shows(info.source.partition("@")[2], fs_name, name, group, path)
            for target in info.targets]


def _shows(what: str, fs_name: str, name: str, group: str | None, path: str) -> bool:
    """Whether a daemon volume (`FS:GROUP/SUBVOLUME` or `FS:/PATH`) is this subvolume."""
    return (what in (f"{fs_name}:{group}/{name}", f"{fs_name}:{path}")
            or what.startswith(f"{fs_name}:{path}/"))


def listing(cluster: Cluster, group: str | None) -> list[dict[str, Any]]:
    """Name, quota, bytes used and path of every subvolume of the group."""
    with _admin(cluster) as admin:
        rows = []
        for name in admin.subvolume_names(cluster.fs_name, group):
            info = admin.subvolume_info(cluster.fs_name, name, group)
            rows.append({"name": name, "size": info.get("bytes_quota"),
                         "used": info.get("bytes_used"), "path": info.get("path")})
    return rows


def _write(path: Path, body: dict[str, Any], mode: int = 0o644) -> Path:
    atomic_write(path, yaml.safe_dump(body, sort_keys=False).encode(), mode)
    return path
