"""The FlexVolume driver's replies and how it reads a PV's options."""

from __future__ import annotations

import json

import pytest

from cephmount.flexvolume import main, mount_arguments
from cephmount.fs.options import MountOptionError


def reply(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_init_declares_no_attach(capsys: pytest.CaptureFixture[str]) -> None:
    assert reply(capsys, "init") == (0, {"status": "Success", "capabilities": {"attach": False}})


@pytest.mark.parametrize("argv", [["attach", "{}", "node"], ["getvolumename", "{}"], []])
def test_other_calls_are_not_supported(capsys: pytest.CaptureFixture[str],
                                       argv: list[str]) -> None:
    code, body = reply(capsys, *argv)
    assert code == 0 and body["status"] == "Not supported"


def test_bad_json_is_a_failure_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, body = reply(capsys, "mount", "/tmp/x", "{not json")
    assert code == 1 and body["status"] == "Failure" and body["message"]


def test_path_and_subvolume_options() -> None:
    assert mount_arguments({"fsName": "fs1", "path": "/a/b", "clientId": "kube",
                            "keyring": "/k", "kubernetes.io/readwrite": "ro"}) == (
        "fs1:/a/b", "id=kube,keyring=/k,ro")
    assert mount_arguments({"subvolume": "vol1", "subvolumeGroup": "csi",
                            "coherence": "strict"}) == (
        "cephfs:csi/vol1", "id=admin,coherence=strict")


@pytest.mark.parametrize("options, message", [
    ({"path": "/x", "kubernetes.io/secret/key": "QVFE"}, "keyring"),
    ({"fsName": "cephfs"}, "path or a subvolume"),
])
def test_refusals(options: dict[str, str], message: str) -> None:
    with pytest.raises(MountOptionError, match=message):
        mount_arguments(options)
