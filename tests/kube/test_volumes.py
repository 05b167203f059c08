"""`cephmount volume`: from nothing to a pod's mount with a user confined to its subvolume."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cephmount.ceph.admin import AdminClient, CephAdminError
from cephmount.devcluster import ClientEnv
from tests.daemon.conftest import DaemonProcess
from tests.kube import kubelet

pytestmark = [pytest.mark.cluster, pytest.mark.fuse]


def volume_cli(env: ClientEnv, *args: str,
               socket: str = "/nonexistent") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cephmount.cli", "volume", *args,
                           "--conf", str(env.conf), "--group", env.group],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "CEPHMOUNT_SOCKET": socket})


def load(path: Path) -> dict[str, Any]:
    body = yaml.safe_load(path.read_text())
    assert isinstance(body, dict)
    return body


def holders_of(secret: bytes, root: Path) -> list[str]:
    """Every process whose argv or environment, and every file under `root`, holding it."""
    found = []
    for proc in Path("/proc").iterdir():
        for part in ("cmdline", "environ"):
            try:
                if secret in (proc / part).read_bytes():
                    found.append(str(proc / part))
            except OSError:
                continue
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue
            if secret in path.read_bytes() and (info.st_uid != 0 or info.st_mode & 0o077):
                found.append(f"{path} (mode {info.st_mode & 0o777:o})")
    return found


@pytest.fixture
def volume_name(client_env: ClientEnv) -> Iterator[str]:
    """A fresh name; whatever the test leaves of that volume is deleted after it."""
    name = f"kv{os.getpid()}"
    yield name
    volume_cli(client_env, "delete", name, "--force")


def test_create_mount_confined_delete(client_env: ClientEnv, kube_daemon: DaemonProcess,
                                      tmp_path: Path, volume_name: str) -> None:
    name = volume_name
    created = volume_cli(client_env, "create", name, "--size", "64Mi", "--namespace", "team",
                         "--output-dir", str(tmp_path))
    assert created.returncode == 0, created.stderr
    secret, pv, pvc = (load(tmp_path / f"{name}-{kind}.yaml")
                       for kind in ("secret", "pv", "pvc"))
    assert stat.S_IMODE((tmp_path / f"{name}-secret.yaml").stat().st_mode) == 0o600
    assert pv["spec"]["capacity"]["storage"] == "64Mi"
    assert pv["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    assert pv["spec"]["claimRef"] == {"namespace": "team", "name": name}
    key = base64.b64decode(secret["data"]["key"])
    assert key not in (tmp_path / f"{name}-pv.yaml").read_bytes()

    flex = pv["spec"]["flexVolume"]
    pod = kube_daemon.root / "pods" / "p1" / "vol"
    outside = kube_daemon.root / "pods" / "p2" / "vol"
    try:
        call = kubelet.mount(pod, kubelet.options(flex["options"], secret=secret),
                             kube_daemon.socket)
        assert (call.code, call.status) == (0, "Success"), call.output
        (pod / "data").write_text("confined")
        assert holders_of(key, kube_daemon.root) == []
        assert holders_of(base64.b64encode(key), kube_daemon.root) == []
        assert key.decode() not in kube_daemon.logs()

        kube_daemon.expected_errors.append("cannot mount")
        for elsewhere in (client_env.subvolume_path, f"/volumes/{client_env.group}"):
            stolen = kubelet.options({**flex["options"], "path": elsewhere}, secret=secret)
            call = kubelet.mount(outside, stolen, kube_daemon.socket)
            assert (call.code, call.status) == (1, "Failure"), call.output
            assert "caps of client.cephmount" in call.reply["message"]

        refused = volume_cli(client_env, "delete", name, socket=kube_daemon.socket)
        assert refused.returncode == 1
        assert refused.stderr.splitlines() == [
            f"cephmount: volume {name} is mounted on this node at {pod}; "
            "unmount it first (or --force)"]
    finally:
        kubelet.unmount(pod, kube_daemon.socket)
    resized = volume_cli(client_env, "resize", name, "--size", "128Mi", "--namespace", "team",
                         "--output-dir", str(tmp_path))
    assert resized.returncode == 0, resized.stderr
    assert load(tmp_path / f"{name}-pv.yaml")["spec"]["capacity"]["storage"] == "128Mi"
    listed = json.loads(volume_cli(client_env, "list", "--json").stdout)
    assert [row["size"] for row in listed if row["name"] == name] == [128 << 20]

    deleted = volume_cli(client_env, "delete", name, socket=kube_daemon.socket)
    assert deleted.returncode == 0, deleted.stderr
    listed = json.loads(volume_cli(client_env, "list", "--json").stdout)
    assert name not in [row["name"] for row in listed]
    with AdminClient(str(client_env.conf)) as admin, pytest.raises(CephAdminError):
        admin.auth_key(f"cephmount.{client_env.group}.{name}")
