"""The kubelet FlexVolume driver: `cephmount-flexvolume init | mount DIR JSON | unmount DIR`.

kubelet runs the driver for every call and reads one JSON object from its
stdout. The PV's `flexVolume.options` name what to mount:

    fsName: cephfs              # the CephFS filesystem
    path: /volumes/csi/vol1/... # or subvolume: vol1 (+ subvolumeGroup: csi)
    clientId: kube              # the cephx user (its keyring must be on the node)
    conf: /etc/ceph/ceph.conf   # optional
    keyring: /etc/ceph/ceph.client.kube.keyring   # optional
    coherence: default          # optional: strict | default | relaxed

Secrets passed by kubelet (`kubernetes.io/secret/*`) are refused: a key is
read from a keyring file on the node, never handed around.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from cephmount.ceph.errors import CephError
from cephmount.fs import mount as fs_mount
from cephmount.fs.options import MountOptionError, parse_options, parse_source

SUCCESS, FAILURE, NOT_SUPPORTED = "Success", "Failure", "Not supported"


def _reply(status: str, message: str = "", **extra: Any) -> int:
    body: dict[str, Any] = {"status": status, **extra}
    if message:
        body["message"] = message
    print(json.dumps(body))
    return 1 if status == FAILURE else 0


def mount_arguments(options: dict[str, str]) -> tuple[str, str]:
    """SOURCE and `-o` text for `cephmount mount` from a PV's flexVolume options."""
    if any(key.startswith("kubernetes.io/secret/") for key in options):
        raise MountOptionError("secrets are not accepted: put the client's keyring on the node "
                               "and name it with the keyring option")
    fs_name = options.get("fsName", "cephfs")
    if "path" in options:
        what = options["path"]
    elif "subvolume" in options:
        group = options.get("subvolumeGroup")
        what = f"{group}/{options['subvolume']}" if group else options["subvolume"]
    else:
        raise MountOptionError("the volume needs a path or a subvolume option")
    mount_options = [f"id={options.get('clientId', 'admin')}"]
    mount_options += [f"{key}={options[key]}" for key in ("conf", "keyring", "coherence")
                      if key in options]
    if options.get("kubernetes.io/readwrite") == "ro":
        mount_options.append("ro")
    return f"{fs_name}:{what}", ",".join(mount_options)


def _mount(target: str, raw_options: str) -> int:
    source_text, option_text = mount_arguments(json.loads(raw_options))
    options, client_id = parse_options(option_text)
    source = parse_source(source_text, client_id)
    fs_mount.check_mountpoint(target)
    fs_mount.run_detached([source_text, target, "-o", option_text],
                          timeout=options.timeout + 15)
    return _reply(SUCCESS, f"mounted {source} at {target}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    try:
        if command == "init":
            return _reply(SUCCESS, capabilities={"attach": False})
        if command == "mount" and len(args) == 3:
            return _mount(args[1], args[2])
        if command == "unmount" and len(args) == 2:
            fs_mount.unmount(args[1])
            return _reply(SUCCESS)
        return _reply(NOT_SUPPORTED, f"{command or 'no command'} is not supported")
    except (MountOptionError, fs_mount.MountError, CephError, OSError,
            json.JSONDecodeError) as exc:
        return _reply(FAILURE, str(exc))


if __name__ == "__main__":
    sys.exit(main())
