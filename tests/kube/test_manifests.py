"""The manifests `volume create` writes are what the Kubernetes API accepts."""

from __future__ import annotations

import base64

import pytest

from cephmount.kube import manifests
from cephmount.kube.manifests import ManifestError, VolumeObjects

VOLUME = VolumeObjects("logs", "team", "cephfs", "csi", "cephmount.csi.logs", 10 << 30,
                       "/volumes/csi/logs/0a1b")


def test_objects_validate_against_the_api_models() -> None:
    secret = manifests.secret(VOLUME, "AQBkey==")
    assert secret["type"] == "cephmount/cephfs"
    assert base64.b64decode(secret["data"]["key"]) == b"AQBkey=="
    pv = manifests.persistent_volume(VOLUME)
    assert pv["spec"]["flexVolume"] == {
        "driver": "cephmount/cephfs", "fsType": "cephfs",
        "options": {"fsName": "cephfs", "path": "/volumes/csi/logs/0a1b",
                    "clientId": "cephmount.csi.logs"},
        "secretRef": {"name": "cephmount-logs", "namespace": "team"}}
    assert pv["spec"]["capacity"] == {"storage": "10Gi"}
    pvc = manifests.persistent_volume_claim(VOLUME)
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]


@pytest.mark.parametrize("model, body, field", [
    ("V1PersistentVolume", {"kind": "PersistentVolume", "metadata": {"name": "x"},
                            "spec": {"accessModes": "ReadWriteMany"}}, "accessModes"),
    ("V1PersistentVolume", {"kind": "PersistentVolume", "metadata": {"name": "x"},
                            "spec": {"flexVolume": {"options": {}}}}, "driver"),
    ("V1PersistentVolumeClaim", {"kind": "PersistentVolumeClaim", "metadata": {"name": "x"},
                                 "spec": {"volumName": "typo"}}, "volumName"),
])
def test_what_the_api_refuses_is_refused(model: str, body: dict, field: str) -> None:
    with pytest.raises(ManifestError, match=field):
        manifests._checked(model, body)


@pytest.mark.parametrize("size, text", [(10 << 30, "10Gi"), (1 << 40, "1Ti"),
                                        (1536 << 20, "1536Mi"), (1000, "1000")])
def test_quantity(size: int, text: str) -> None:
    assert manifests.quantity(size) == text
