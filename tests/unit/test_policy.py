"""The node policy: what a pod may ask the daemon to mount."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cephmount.daemon.policy import Policy, load_policy
from cephmount.daemon.protocol import ProtocolError, VolumeRequest


def volume(**fields: object) -> VolumeRequest:
    return VolumeRequest(**{"fs_name": "cephfs", "client_id": "kube", **fields})  # type: ignore[arg-type]


POLICY = Policy(filesystems=["cephfs"], clients=["kube"], subvolume_groups=["csi"],
                paths=["/volumes/csi"])


@pytest.mark.parametrize("request_", [
    volume(path="/volumes/csi"), volume(path="/volumes/csi/vol1/abc"),
    volume(subvolume="vol1", group="csi")])
def test_allowed(request_: VolumeRequest) -> None:
    POLICY.check(request_)


@pytest.mark.parametrize("request_, message", [
    (volume(path="/volumes/csi-other"), "not under"),
    (volume(path="/"), "not under"),
    (volume(subvolume="vol1"), "subvolume group _nogroup"),
    (volume(subvolume="vol1", group="other"), "subvolume group other"),
    (volume(client_id="admin", path="/volumes/csi"), "cephx user admin"),
    (volume(fs_name="fs2", path="/volumes/csi"), "filesystem fs2"),
])
def test_refused(request_: VolumeRequest, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as refused:
        POLICY.check(request_)
    assert refused.value.code == "forbidden"


def test_no_file_no_restriction_and_an_empty_list_allows_nothing(tmp_path: Path) -> None:
    load_policy(tmp_path / "absent.json").check(volume(client_id="admin", path="/"))
    (tmp_path / "p.json").write_text('{"paths": []}')
    with pytest.raises(ProtocolError):
        load_policy(tmp_path / "p.json").check(volume(path="/volumes"))


def test_a_bad_policy_stops_the_daemon_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"client": ["kube"]}')
    done = subprocess.run(
        [sys.executable, "-m", "cephmount.cli", "daemon", "--state-dir", str(tmp_path / "s"),
         "--socket", str(tmp_path / "sock"), "--metrics-address", "",
         "--policy", str(tmp_path / "p.json")],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"cephmount: policy {tmp_path / 'p.json'}: Object contains unknown field `client`"]
