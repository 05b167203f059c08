"""The `cephmount` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cephmount.ceph.admin import CephAdminError
from cephmount.ceph.errors import CephError
from cephmount.devcluster import DEFAULT_PORT, DevCluster, DevClusterError
from cephmount.fs import mount as fs_mount
from cephmount.fs.options import MountOptionError, parse_options, parse_source

# Errors a user can act on: printed as one line, never as a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    DevClusterError, CephAdminError, CephError, MountOptionError, fs_mount.MountError, OSError)


def _mount(args: argparse.Namespace) -> int:
    options, client_id = parse_options(args.options or "")
    source = parse_source(args.source, client_id)
    if args.foreground:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        fs_mount.run_foreground(source, options, args.mountpoint, args.ready_fd)
        return 0
    fs_mount.check_mountpoint(args.mountpoint)
    argv = [args.source, args.mountpoint] + (["-o", args.options] if args.options else [])
    log_path = fs_mount.run_detached(argv, timeout=options.timeout + 15)
    print(f"mounted {source} at {os.path.abspath(args.mountpoint)} (log: {log_path})")
    return 0


def _umount(args: argparse.Namespace) -> int:
    fs_mount.unmount(args.mountpoint)
    return 0


def _list(args: argparse.Namespace) -> int:
    mounts = fs_mount.list_mounts()
    if args.json:
        print(json.dumps([m.__dict__ for m in mounts], indent=2))
    for m in [] if args.json else mounts:
        print(f"{m.mountpoint}\t{m.source}\tpid={m.pid or '?'}\tcoherence={m.coherence or '?'}")
    return 0


def _add_mount_commands(commands: argparse._SubParsersAction) -> None:
    mount = commands.add_parser(
        "mount", help="mount a CephFS path or subvolume",
        description="Mount SOURCE, [ID@]FSNAME:/PATH or [ID@]FSNAME:[GROUP/]SUBVOLUME, at "
        "MOUNTPOINT. Options (-o, comma separated): conf=PATH, id=NAME, keyring=PATH, ro, "
        "noallow_other, nodefault_permissions, coherence=strict|default|relaxed, "
        "cache_size=SIZE, timeout=SECONDS. Credentials come from the conf and keyring the "
        "way ceph-fuse finds them; a secret is never accepted on the command line.")
    mount.add_argument("source")
    mount.add_argument("mountpoint")
    mount.add_argument("-o", dest="options", metavar="OPTIONS")
    mount.add_argument("-f", "--foreground", action="store_true",
                       help="serve in the foreground until unmounted or signalled")
    mount.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    mount.set_defaults(handler=_mount)
    umount = commands.add_parser("umount", help="unmount a cephmount mount")
    umount.add_argument("mountpoint")
    umount.set_defaults(handler=_umount)
    listing = commands.add_parser("list", help="list this host's cephmount mounts")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)


def _dev_cluster(args: argparse.Namespace) -> int:
    cluster = DevCluster(args.dir, args.port)
    if args.action == "up":
        started = cluster.up()
        print(f"dev cluster {'started' if started else 'already up'} in {cluster.dir}")
    elif args.action == "down":
        cluster.down()
        print(f"dev cluster in {cluster.dir} stopped and removed")
    elif args.action == "status":
        report = cluster.status()
        print(json.dumps(report, indent=2))
        return 0 if report["state"] == "ready" else 1
    else:
        print(cluster.client_env().as_shell(), end="")
    return 0


def _add_dev_cluster(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "dev-cluster", help="a throwaway one-node Ceph cluster on 127.0.0.1",
        description="Run a throwaway one-node Ceph cluster (mon, mgr, osd, mds) with CephFS "
        "`cephfs`, a subvolume csi/vol1 with a 1 GiB quota and a client `kube` confined to it.")
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    parser.add_argument("--dir", type=Path, default=None,
                        help="data dir (default: $CEPHMOUNT_DEV_DIR, "
                        "$XDG_RUNTIME_DIR/cephmount-dev or ./.dev-cluster)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="mon port for msgr2; msgr1 uses the next one (default: %(default)s)")
    parser.set_defaults(handler=_dev_cluster)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cephmount", description="Mount CephFS subvolumes through libcephfs and FUSE.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_mount_commands(commands)
    _add_dev_cluster(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except USER_ERRORS as exc:
        print(f"cephmount: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
