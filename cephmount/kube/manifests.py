"""The Kubernetes objects of a volume: its Secret, PersistentVolume and PersistentVolumeClaim.

Each is checked against the Kubernetes API's own schema (the `kubernetes`
client's models: every field typed, unknown fields refused) before it is
written, so a cluster admin applies what the API server accepts.
"""

from __future__ import annotations

import base64
import warnings
from dataclasses import dataclass
from typing import Any

from cephmount.kube.options import DRIVER, SECRET_KEY

_UNITS = ("Ti", "Gi", "Mi", "Ki")


class ManifestError(ValueError):
    """An object the Kubernetes API would refuse."""


@dataclass(frozen=True)
class VolumeObjects:
    """What the manifests say of one volume."""

    name: str
    namespace: str
    fs_name: str
    group: str | None
    client_id: str
    size: int
    path: str

    @property
    def pv_name(self) -> str:
        return f"cephmount-{self.namespace}-{self.name}"

    @property
    def secret_name(self) -> str:
        return f"cephmount-{self.name}"


def quantity(size: int) -> str:
    """`size` bytes as a Kubernetes quantity: `10Gi`, or plain bytes."""
    for index, unit in enumerate(_UNITS):
        scale = 1 << (10 * (len(_UNITS) - index))
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def secret(volume: VolumeObjects, key: str) -> dict[str, Any]:
    """The cephx key, as kubelet hands it to a FlexVolume driver of type cephmount/cephfs."""
    return _checked("V1Secret", {
        "apiVersion": "v1", "kind": "Secret", "type": DRIVER,
        "metadata": {"name": volume.secret_name, "namespace": volume.namespace},
        "data": {SECRET_KEY: base64.b64encode(key.encode()).decode()}})


def persistent_volume(volume: VolumeObjects) -> dict[str, Any]:
    """The subvolume by its path: its confined user may not ask the mgr where it is."""
    options = {"fsName": volume.fs_name, "path": volume.path, "clientId": volume.client_id}
    return _checked("V1PersistentVolume", {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": volume.pv_name,
                     "labels": {"cephmount.io/volume": volume.name,
                                "cephmount.io/group": volume.group or "_nogroup"}},
        "spec": {
            "capacity": {"storage": quantity(volume.size)},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "claimRef": {"namespace": volume.namespace, "name": volume.name},
            "flexVolume": {"driver": DRIVER, "fsType": "cephfs", "options": options,
                           "secretRef": {"name": volume.secret_name,
                                         "namespace": volume.namespace}}}})


def persistent_volume_claim(volume: VolumeObjects) -> dict[str, Any]:
    return _checked("V1PersistentVolumeClaim", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": volume.name, "namespace": volume.namespace},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "",
                 "volumeName": volume.pv_name,
                 "resources": {"requests": {"storage": quantity(volume.size)}}}})


def _checked(model_name: str, body: dict[str, Any]) -> dict[str, Any]:
    model = getattr(_models(), model_name)
    try:
        model.model_validate(body)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ManifestError(f"{body['kind']} {body['metadata']['name']}: {exc}") from None
    return body


def _models() -> Any:
    with warnings.catch_warnings():  # requests warns about its own dependencies' versions
        warnings.simplefilter("ignore")
        from kubernetes.client import models
    return models
