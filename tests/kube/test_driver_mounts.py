"""Pods on one node share a volume through the driver and the node daemon."""

from __future__ import annotations

import errno
import json
import os

import pytest

from cephmount.devcluster import ClientEnv
from tests.daemon.conftest import DaemonProcess
from tests.kube import kubelet

pytestmark = [pytest.mark.cluster, pytest.mark.fuse]


def pv_options(env: ClientEnv, **extra: str) -> dict[str, str]:
    return {"fsName": env.fs_name, "path": env.subvolume_path, "clientId": env.client_id,
            "keyring": str(env.keyring), **extra}


def test_pods_share_one_fuse_mount_and_a_ro_pod_cannot_write(
        client_env: ClientEnv, kube_daemon: DaemonProcess) -> None:
    socket = kube_daemon.socket
    pods = {name: kube_daemon.root / "pods" / name / "volumes" / "cephmount~cephfs" / "vol"
            for name in ("a", "b", "c")}
    for name, target in pods.items():
        call = kubelet.mount(target, kubelet.options(pv_options(client_env),
                                                     read_only=name == "c", pod=name), socket)
        assert (call.code, call.status) == (0, "Success"), call.output
    log = f"shared-{os.getpid()}.log"
    try:
        with open(pods["a"] / log, "a") as out:
            out.write("from a\n")
        with open(pods["b"] / log, "a") as out:
            out.write("from b\n")
        assert (pods["c"] / log).read_text() == "from a\nfrom b\n"
        with pytest.raises(OSError) as refused:
            (pods["c"] / "nope").write_text("x")
        assert refused.value.errno == errno.EROFS
        mounts = kube_daemon.mounts()
        assert len(mounts) == 1
        assert sorted((t.path, t.read_only) for t in mounts[0].targets) == [
            (str(pods["a"]), False), (str(pods["b"]), False), (str(pods["c"]), True)]

        again = kubelet.mount(pods["a"], kubelet.options(pv_options(client_env)), socket)
        assert (again.code, again.status) == (0, "Success"), again.output

        gone = kubelet.unmount(pods["a"], socket)
        assert (gone.code, gone.status) == (0, "Success"), gone.output
        assert not os.path.ismount(pods["a"])
        with open(pods["b"] / log, "a") as out:
            out.write("b still\n")
        assert (pods["c"] / log).read_text().endswith("b still\n")
        assert [len(m.targets) for m in kube_daemon.mounts()] == [2]
    finally:
        (pods["b"] / log).unlink(missing_ok=True)
        for target in pods.values():
            kubelet.unmount(target, socket)
    assert kube_daemon.mounts() == []


def test_unmount_of_a_target_never_mounted_succeeds(kube_daemon: DaemonProcess) -> None:
    """kubelet unmounts after a reboot; anything but Success and it retries for ever."""
    target = kube_daemon.root / "after-reboot"
    target.mkdir()
    call = kubelet.unmount(target, kube_daemon.socket)
    assert (call.code, call.status) == (0, "Success"), call.output


@pytest.mark.parametrize("options, message", [
    ({"fsName": "cephfs", "path": "/volumes/csi", "clientId": "admin"}, "not allowed"),
    ({"fsName": "cephfs", "path": "/", "clientId": "kube"}, "not under a path"),
    ({"fsName": "cephfs", "subvolume": "vol1", "clientId": "kube"}, "_nogroup"),
    ({"fsName": "other", "path": "/volumes/csi", "clientId": "kube"}, "filesystem other"),
])
def test_node_policy_is_enforced_by_the_daemon(
        client_env: ClientEnv, kube_daemon: DaemonProcess, options: dict[str, str],
        message: str) -> None:
    (kube_daemon.root / "policy.json").write_text(json.dumps(
        {"filesystems": ["cephfs"], "clients": ["kube"], "subvolume_groups": ["csi"],
         "paths": ["/volumes/csi"]}))
    kube_daemon.stop()
    kube_daemon.start()
    call = kubelet.mount(kube_daemon.root / "pod", kubelet.options(options),
                         kube_daemon.socket)
    assert (call.code, call.status) == (1, "Failure"), call.output
    assert message in call.reply["message"]
    assert kube_daemon.mounts() == []
