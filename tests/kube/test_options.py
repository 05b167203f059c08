"""A PV's options become the daemon's request field by field, never option text."""

from __future__ import annotations

import base64
import json

import pytest

from cephmount.kube.options import OptionError, decode, mount_request, parse_size

KEY = "AQDjFQ5rpQmnHBAAQWSJsIhFXW0ZH0Lu0bYziA=="
BASE = {"fsName": "cephfs", "subvolume": "vol1", "subvolumeGroup": "csi", "clientId": "kube"}


def request(options: dict[str, str], target: str = "/var/lib/kubelet/pods/p/v"):
    parsed, key = decode(json.dumps(options))
    return mount_request(target, parsed, key)


def test_fields_map_to_the_volume_request() -> None:
    mount = request({**BASE, "coherence": "strict", "cacheSize": "64Mi",
                     "keyring": "/etc/ceph/k", "conf": "/etc/ceph/c.conf",
                     "kubernetes.io/readwrite": "ro", "kubernetes.io/fsType": "",
                     "kubernetes.io/mounterArgs.FsGroup": "1000",
                     "kubernetes.io/pod.name": "p", "kubernetes.io/somethingNew": "x"})
    volume = mount.volume
    assert (volume.fs_name, volume.client_id, volume.group, volume.subvolume, volume.path) == (
        "cephfs", "kube", "csi", "vol1", None)
    assert (volume.coherence, volume.cache_bytes, volume.keyring, volume.conf) == (
        "strict", 64 << 20, "/etc/ceph/k", "/etc/ceph/c.conf")
    assert mount.read_only and mount.key is None
    assert mount.target == "/var/lib/kubelet/pods/p/v"


def test_the_secret_is_the_cephx_key() -> None:
    encoded = base64.b64encode(KEY.encode()).decode()
    assert request({**BASE, "kubernetes.io/secret/key": encoded}).key == KEY


def test_commas_stay_in_their_field() -> None:
    """The old driver joined options into `-o` text: this conf also set id and keyring."""
    conf = "/etc/ceph/ceph.conf,id=admin,keyring=/etc/ceph/ceph.client.admin.keyring"
    volume = request({**BASE, "conf": conf}).volume
    assert (volume.conf, volume.client_id, volume.keyring) == (conf, "kube", None)


@pytest.mark.parametrize("options, message", [
    ({**BASE, "coherence": "default,nodefault_permissions"}, "coherence"),
    ({**BASE, "clientId": "kube,id=admin"}, "clientId"),
    ({key: value for key, value in BASE.items() if key != "clientId"}, "clientId"),
    ({**BASE, "path": "/volumes/csi"}, "either a path or a subvolume"),
    ({**BASE, "subvolume": "../vol2"}, "subvolume"),
    ({"fsName": "cephfs", "clientId": "kube", "path": "/volumes/../etc"}, "normal form"),
    ({"fsName": "cephfs", "clientId": "kube", "path": "volumes"}, "path"),
    ({**BASE, "clientID": "admin"}, "clientID"),
    ({**BASE, "kubernetes.io/readwrite": "rw,suid"}, "readwrite"),
    ({**BASE, "cacheSize": "-1"}, "cacheSize"),
    ({**BASE, "kubernetes.io/secret/key": "not base64!"}, "not a cephx key"),
    ({**BASE, "kubernetes.io/secret/keyring": "eA=="}, "'keyring'"),
])
def test_refused(options: dict[str, str], message: str) -> None:
    with pytest.raises(OptionError, match=message) as refused:
        request(options)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("raw", ["[]", "\"x\"", "3", "null", "{\"fsName\": 3}", "{", ""])
def test_options_must_be_one_object_of_strings(raw: str) -> None:
    with pytest.raises(OptionError, match="JSON object of strings"):
        decode(raw)


def test_a_bad_secret_is_never_quoted() -> None:
    bad = base64.b64encode(b"AQD secret with spaces").decode()
    with pytest.raises(OptionError) as refused:
        request({**BASE, "kubernetes.io/secret/key": bad})
    assert "secret with" not in str(refused.value) and bad not in str(refused.value)


def test_target_must_be_absolute_and_normal() -> None:
    with pytest.raises(OptionError, match="normal form"):
        request(BASE, target="/var/lib/kubelet/../x")


@pytest.mark.parametrize("text, size", [("10Gi", 10 << 30), ("10G", 10 << 30), ("5", 5),
                                        ("1Ti", 1 << 40), ("512Ki", 512 << 10)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size
