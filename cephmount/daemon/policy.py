"""Node policy: which filesystems, paths, subvolume groups and cephx users clients may mount.

Pods choose their flexVolume options, so the node's administrator restricts
them here, in /etc/cephmount/policy.json (the daemon's `--policy`), and the
daemon checks every mount against it. A field left out allows anything; an
empty list allows nothing. No file: no restriction beyond the cephx caps.

    {"filesystems": ["cephfs"], "clients": ["kube"],
     "subvolume_groups": ["csi"], "paths": ["/volumes/csi"]}

`subvolume_groups` names the groups a subvolume may be in (`_nogroup` for
none); `paths` the prefixes a path may be at or under.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from cephmount.daemon.protocol import AbsolutePath, Name, ProtocolError, VolumeRequest

DEFAULT_POLICY = "/etc/cephmount/policy.json"
NO_GROUP = "_nogroup"


class PolicyError(Exception):
    """The policy file cannot be read or is not a policy."""


class Policy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    filesystems: list[Name] | None = None
    clients: list[Name] | None = None
    subvolume_groups: list[Name] | None = None
    paths: list[AbsolutePath] | None = None

    def check(self, volume: VolumeRequest) -> None:
        """Raise ProtocolError("forbidden") unless the node allows this volume."""
        _allow(self.filesystems, volume.fs_name, "filesystem")
        _allow(self.clients, volume.client_id, "cephx user")
        if volume.path is not None:
            if self.paths is not None and not any(_under(volume.path, prefix)
                                                  for prefix in self.paths):
                raise ProtocolError(f"path {volume.path} is not under a path this node "
                                    "allows", "forbidden")
        else:
            _allow(self.subvolume_groups, volume.group or NO_GROUP, "subvolume group")


def _allow(allowed: list[str] | None, value: str, what: str) -> None:
    if allowed is not None and value not in allowed:
        raise ProtocolError(f"{what} {value} is not allowed on this node", "forbidden")


def _under(path: str, prefix: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def load_policy(path: Path) -> Policy:
    """The policy in `path`; no restriction when there is no such file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Policy()
    except OSError as exc:
        raise PolicyError(f"cannot read the policy {path}: {exc.strerror}") from None
    try:
        return msgspec.json.decode(data, type=Policy)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise PolicyError(f"policy {path}: {exc}") from None
