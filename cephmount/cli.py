"""The `cephmount` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cephmount.ceph.admin import CephAdminError
from cephmount.devcluster import DEFAULT_PORT, DevCluster, DevClusterError

# Errors a user can act on: printed as one line, never as a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (DevClusterError, CephAdminError, OSError)


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
