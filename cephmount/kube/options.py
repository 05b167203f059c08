"""A PV's flexVolume options, as kubelet hands them to the driver, checked field by field.

kubelet passes one JSON object of strings: its own `kubernetes.io/*` keys, the
PV's (or inline volume's) `options`, and each key of the PV's Secret as
`kubernetes.io/secret/<key>`, base64-encoded. Every value is data: it becomes
one field of the daemon's `VolumeRequest`, never a piece of mount option text.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Literal

import msgspec

from cephmount.daemon.client import Mount

KUBELET_PREFIX = "kubernetes.io/"
SECRET_PREFIX = KUBELET_PREFIX + "secret/"
SECRET_KEY = "key"
DRIVER = "cephmount/cephfs"

KubeName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")]
Text = Annotated[str, msgspec.Meta(max_length=253, pattern=r"^[\x20-\x7e]*$")]
Digits = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,10}$")]
Size = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,13}([KMGT]i?)?$")]
_SIZE = re.compile(r"^(?P<number>[0-9]+)(?P<unit>[KMGT]?)(?P<binary>i?)$")
_SECRET = re.compile(r"^[A-Za-z0-9+/=]{1,256}$")


class OptionError(ValueError):
    """Options that cannot be mounted; the message names the field, never a secret."""


class FlexOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every option the driver knows. Unknown options of the PV are refused."""

    fs_name: str = msgspec.field(name="fsName")
    client_id: str = msgspec.field(name="clientId")
    path: str | None = None
    group: str | None = msgspec.field(default=None, name="subvolumeGroup")
    subvolume: str | None = None
    conf: str | None = None
    keyring: str | None = None
    coherence: Literal["strict", "default", "relaxed"] = "default"
    cache_size: Size | None = msgspec.field(default=None, name="cacheSize")
    # kubelet's own
    fs_type: Literal["", "cephfs"] = msgspec.field(default="", name="kubernetes.io/fsType")
    readwrite: Literal["ro", "rw"] = msgspec.field(default="rw", name="kubernetes.io/readwrite")
    volume_name: Text = msgspec.field(default="", name="kubernetes.io/pvOrVolumeName")
    pod_name: Text = msgspec.field(default="", name="kubernetes.io/pod.name")
    pod_namespace: Text = msgspec.field(default="", name="kubernetes.io/pod.namespace")
    pod_uid: Text = msgspec.field(default="", name="kubernetes.io/pod.uid")
    service_account: Text = msgspec.field(default="",
                                          name="kubernetes.io/serviceAccount.name")
    fs_group: Digits | None = msgspec.field(default=None,
                                            name="kubernetes.io/mounterArgs.FsGroup")
    fs_group_legacy: Digits | None = msgspec.field(default=None, name="kubernetes.io/fsGroup")


_KNOWN = {field.encode_name for field in msgspec.structs.fields(FlexOptions)}


def parse_size(text: str) -> int:
    """`10Gi` or `10G` (both binary, as Kubernetes quantities and ceph-fuse sizes read)."""
    match = _SIZE.match(text)
    if match is None:
        raise OptionError(f"size {text!r} is not a number with an optional K, M, G or T (or Ki...)")
    return int(match["number"]) << (10 * "_KMGT".index(match["unit"] or "_"))


def decode(raw: str) -> tuple[FlexOptions, str | None]:
    """The options and the cephx key of the PV's Secret (None without one)."""
    try:
        values = msgspec.json.decode(raw.encode(errors="surrogateescape"), type=dict[str, str])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise OptionError(f"the options are not a JSON object of strings: {exc}") from None
    secrets = {name[len(SECRET_PREFIX):]: values.pop(name)
               for name in list(values) if name.startswith(SECRET_PREFIX)}
    for name in list(values):  # kubelet's keys of later versions tell nothing to mount
        if name.startswith(KUBELET_PREFIX) and name not in _KNOWN:
            del values[name]
    try:
        options = msgspec.convert(values, FlexOptions)
    except msgspec.ValidationError as exc:
        raise OptionError(f"options: {exc}") from None
    return options, _key(secrets)


def _key(secrets: dict[str, str]) -> str | None:
    """The cephx key from a Secret of type cephmount/cephfs; its only data is `key`."""
    unknown = sorted(set(secrets) - {SECRET_KEY})
    if unknown:
        raise OptionError(f"the volume's Secret holds {', '.join(map(repr, unknown))}: a "
                          f"Secret of type {DRIVER} holds only {SECRET_KEY!r}, the cephx key")
    if SECRET_KEY not in secrets:
        return None
    try:
        key = base64.b64decode(secrets[SECRET_KEY], validate=True).decode("ascii").strip()
    except (binascii.Error, UnicodeDecodeError):
        key = ""
    if not _SECRET.match(key):
        raise OptionError(f"the Secret's {SECRET_KEY!r} is not a cephx key (base64 text)")
    return key


def mount_request(target: str, options: FlexOptions, key: str | None) -> Mount:
    """The daemon's request; each field is checked once more by the protocol's own schema."""
    volume: dict[str, object] = {
        "fs_name": options.fs_name, "client_id": options.client_id, "path": options.path,
        "group": options.group, "subvolume": options.subvolume, "conf": options.conf,
        "keyring": options.keyring, "coherence": options.coherence}
    if options.cache_size is not None:
        volume["cache_bytes"] = parse_size(options.cache_size)
    request = {"volume": volume, "target": target,
               "read_only": options.readwrite == "ro", "key": key}
    try:
        return msgspec.convert(request, Mount)
    except msgspec.ValidationError as exc:
        raise OptionError(_field_names(str(exc))) from None


_FIELDS = {"fs_name": "fsName", "client_id": "clientId", "group": "subvolumeGroup",
           "cache_bytes": "cacheSize", "volume": "options", "target": "the target dir"}


def _field_names(message: str) -> str:
    """A protocol error in the PV's terms: `$.volume.client_id` reads as `clientId`."""
    def rename(match: re.Match[str]) -> str:
        return "`" + _FIELDS.get(match[1], match[1]) + "`"
    return re.sub(r"`\$(?:\.volume)?\.(\w+)`", rename, message)
