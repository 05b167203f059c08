"""The `install-flexvolume` and `volume` commands of the `cephmount` command line.

Only argparse here: the command line starts fast, and what a command needs
(rados, the kubernetes models) is imported when it runs.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cephmount.kube.volumes import Cluster

DEFAULT_CONF = "/etc/ceph/ceph.conf"


def _install(args: argparse.Namespace) -> int:
    from cephmount.kube.install import install

    path = install(Path(args.plugin_dir), args.mount_namespace_of)
    print(f"installed the FlexVolume driver cephmount/cephfs at {path}")
    return 0


def _cluster(args: argparse.Namespace) -> Cluster:
    from cephmount.kube.volumes import Cluster

    conf = args.conf or os.environ.get("CEPH_CONF") or DEFAULT_CONF
    return Cluster(conf, f"client.{args.id}", args.keyring, args.fs)


def _size(text: str) -> int:
    from cephmount.kube.options import OptionError, parse_size

    try:
        return parse_size(text)
    except OptionError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _create(args: argparse.Namespace) -> int:
    from cephmount.kube import volumes

    paths = volumes.create(_cluster(args), args.name, args.size, args.group,
                           args.namespace, Path(args.output_dir))
    print(f"volume {args.name}: subvolume and cephx user client."
          f"{volumes.client_id(args.name, args.group)} created; apply with\n  kubectl apply "
          + " ".join(f"-f {path}" for path in paths))
    return 0


def _resize(args: argparse.Namespace) -> int:
    from cephmount.kube import volumes

    path = volumes.resize(_cluster(args), args.name, args.size, args.group,
                          args.namespace, Path(args.output_dir))
    print(f"volume {args.name}: quota set; apply the PV's new capacity with\n"
          f"  kubectl apply -f {path}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from cephmount.kube import volumes

    volumes.delete(_cluster(args), args.name, args.group, args.force,
                   args.socket)
    print(f"volume {args.name}: subvolume, data and cephx user removed")
    return 0


def _list(args: argparse.Namespace) -> int:
    from cephmount.kube import volumes

    rows = volumes.listing(_cluster(args), args.group)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']}\tsize={row['size']}\tused={row['used']}\t{row['path']}")
    return 0


def _add_volume(commands: argparse._SubParsersAction) -> None:
    volume = commands.add_parser(
        "volume", help="CephFS subvolumes for Kubernetes pods (and their manifests)",
        description="Subvolumes with a quota and a cephx user confined to each, through "
        "the mgr; `create` writes the Secret, PersistentVolume (ReadWriteMany, Retain, "
        "flexVolume cephmount/cephfs) and PersistentVolumeClaim to apply.")
    actions = volume.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a new volume and its manifests")
    resize = actions.add_parser("resize", help="a new quota; writes the PV again")
    delete = actions.add_parser("delete", help="remove a volume, its data and its user")
    listing = actions.add_parser("list", help="name, size, used and path of each volume")
    for parser in (create, resize, delete):
        parser.add_argument("name")
    for parser in (create, resize):
        parser.add_argument("--size", type=_size, required=True, help="e.g. 10Gi")
        parser.add_argument("--namespace", default="default",
                            help="of the Secret and the claim (default: %(default)s)")
        parser.add_argument("--output-dir", default=".",
                            help="where the manifests go (default: the current dir)")
    for parser in (create, resize, delete, listing):
        parser.add_argument("--group", help="the subvolume group (default: none)")
        parser.add_argument("--fs", default="cephfs", help="the filesystem (default: cephfs)")
        parser.add_argument("--conf", help="ceph.conf (default: $CEPH_CONF or "
                            f"{DEFAULT_CONF})")
        parser.add_argument("--id", default="admin",
                            help="the cephx user sending mgr commands (default: admin)")
        parser.add_argument("--keyring", help="its keyring (default: as the conf says)")
    delete.add_argument("--force", action="store_true",
                        help="delete even while this node mounts it")
    delete.add_argument("--socket", help="the node daemon's socket")
    listing.add_argument("--json", action="store_true")
    for parser, handler in ((create, _create), (resize, _resize), (delete, _delete),
                            (listing, _list)):
        parser.set_defaults(handler=handler)


def add_commands(commands: argparse._SubParsersAction) -> None:
    from cephmount.kube.install import DEFAULT_PLUGIN_DIR

    install = commands.add_parser(
        "install-flexvolume", help="install the kubelet FlexVolume driver cephmount/cephfs",
        description="Write <plugin dir>/cephmount~cephfs/cephfs atomically; kubelet "
        "finds it without a restart.")
    install.add_argument("--plugin-dir", default=DEFAULT_PLUGIN_DIR,
                         help="kubelet's --volume-plugin-dir (default: %(default)s)")
    install.add_argument("--mount-namespace-of", metavar="PIDFILE",
                         help="run the driver in the mount namespace of the process whose "
                         "pid is in PIDFILE (cephmount in a container)")
    install.set_defaults(handler=_install)
    _add_volume(commands)

