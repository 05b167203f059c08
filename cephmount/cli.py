"""The `cephmount` command line.

`mount`, `umount` and `list` go through the node daemon when its socket
answers, and work standalone (one detached process per mount) when no daemon
runs; the output says which. Heavy modules (libcephfs, pyfuse3, trio) are
imported only by the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from cephmount.daemon import client as daemon_client
from cephmount.fs.options import (
    MountOptionError,
    MountOptions,
    Source,
    parse_options,
    parse_size,
    parse_source,
)
from cephmount.kube import commands as kube_commands

DEFAULT_CONF = "/etc/ceph/ceph.conf"
LAZY_USER_ERRORS = (
    ("cephmount.fs.mount", "MountError"), ("cephmount.ceph.errors", "CephError"),
    ("cephmount.ceph.admin", "CephAdminError"), ("cephmount.devcluster", "DevClusterError"),
    ("cephmount.daemon.policy", "PolicyError"), ("cephmount.kube.volumes", "VolumeError"))


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user can act on: printed as one line, never as a traceback."""
    errors: list[type[BaseException]] = [MountOptionError, daemon_client.DaemonError, OSError]
    for module, name in LAZY_USER_ERRORS:  # only modules loaded can have raised them
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def _daemon_socket(args: argparse.Namespace) -> str | None:
    """The daemon's socket when a daemon answers there, else None (standalone)."""
    path = daemon_client.socket_path(getattr(args, "socket", None))
    return path if daemon_client.answers(path) else None


def _volume_request(source: Source, options: MountOptions) -> daemon_client.VolumeRequest:
    conf = options.conf or os.environ.get("CEPH_CONF") or DEFAULT_CONF
    return daemon_client.VolumeRequest(
        fs_name=source.fs_name, client_id=source.client_id, path=source.path,
        group=source.group if source.subvolume else None, subvolume=source.subvolume,
        conf=os.path.abspath(conf),
        keyring=os.path.abspath(options.keyring) if options.keyring else None,
        coherence=options.coherence.value, cache_bytes=options.cache_bytes,
        timeout=options.timeout, allow_other=options.allow_other,
        default_permissions=options.default_permissions)


def _mount(args: argparse.Namespace) -> int:
    options, client_id = parse_options(args.options or "")
    source = parse_source(args.source, client_id)
    target = os.path.abspath(args.mountpoint)
    socket = None if args.foreground else _daemon_socket(args)
    if socket is not None:
        reply = daemon_client.call(socket, daemon_client.Mount(
            _volume_request(source, options), target, read_only=options.read_only))
        assert reply.mount is not None
        print(f"mounted {source} at {target} through the node daemon "
              f"(volume {reply.mount.mount_id}, worker pid {reply.mount.worker_pid})")
        return 0
    from cephmount.fs import mount as fs_mount

    if args.foreground:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        fs_mount.run_foreground(source, options, args.mountpoint, args.ready_fd)
        fs_mount.exit_stopped()
    fs_mount.check_mountpoint(args.mountpoint)
    argv = [args.source, args.mountpoint] + (["-o", args.options] if args.options else [])
    log_path = fs_mount.run_detached(argv, args.mountpoint, timeout=options.timeout + 15)
    print(f"mounted {source} at {target} standalone: no node daemon answers at "
          f"{daemon_client.socket_path(args.socket)} (log: {log_path})")
    return 0


def _umount(args: argparse.Namespace) -> int:
    target = os.path.abspath(args.mountpoint)
    socket = _daemon_socket(args)
    if socket is not None:
        try:
            daemon_client.call(socket, daemon_client.Unmount(target, force=args.force))
            print(f"unmounted {target} (node daemon)")
            return 0
        except daemon_client.DaemonError as exc:
            if exc.code != "not-mounted":
                raise
    from cephmount.fs import mount as fs_mount

    fs_mount.unmount(target)
    print(f"unmounted {target}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from cephmount.fs import mount as fs_mount

    fs_mount.forget_dead_mounts()
    socket = _daemon_socket(args)
    rows: list[dict[str, object]] = []
    daemon_paths: set[str] = set()
    if socket is not None:
        for info in daemon_client.call(socket, daemon_client.List()).mounts or []:
            daemon_paths.add(info.staging)
            for target in info.targets:
                daemon_paths.add(target.path)
                rows.append({"mountpoint": target.path, "source": info.source,
                             "pid": info.worker_pid, "coherence": info.coherence,
                             "state": info.state, "read_only": target.read_only,
                             "daemon": True, "volume": info.mount_id})
    for record in fs_mount.list_mounts():
        if record.mountpoint not in daemon_paths:
            rows.append({**record.__dict__, "state": _standalone_state(record.pid),
                         "daemon": False})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        how = "daemon" if row["daemon"] else "standalone"
        print(f"{row['mountpoint']}\t{row['source']}\tpid={row['pid'] or '?'}\t"
              f"coherence={row['coherence'] or '?'}\t{row['state']}\t{how}")
    return 0


def _standalone_state(pid: int) -> str:
    """A standalone mount's: its process serves it, or is gone; unknown without a record
    (a mount of another daemon, or of a process that kept none)."""
    if not pid:
        return "unknown"
    return "serving" if os.path.exists(f"/proc/{pid}") else "dead"


def _status(args: argparse.Namespace) -> int:
    socket = daemon_client.socket_path(args.socket)
    reply = daemon_client.call(socket, daemon_client.Status())
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(reply), indent=2).decode())
        return 0
    assert reply.daemon is not None
    daemon = reply.daemon
    print(f"daemon: pid {daemon.pid}, version {daemon.version}, up {_age(daemon.started)}, "
          f"socket {daemon.socket}, metrics {daemon.metrics or 'off'}")
    for info in reply.mounts or []:
        print(f"\nvolume {info.mount_id}: {info.source} ({info.coherence}) {info.state}")
        print(f"  worker pid {info.worker_pid or '-'}, up {_age(info.worker_started)}, "
              f"restarts {info.restarts}, takeovers {info.takeovers}, "
              f"sessions lost {info.session_losses}")
        for target in info.targets:
            print(f"  target {target.path}{' (read-only)' if target.read_only else ''}")
        print("  " + _usage(info.stats, info.cache_share))
    return 0


def _age(started: float) -> str:
    if not started:
        return "-"
    seconds = int(time.time() - started)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def _usage(stats: dict[str, object] | None, share: int) -> str:
    if stats is None:
        return "no answer from the worker"
    cache: dict[str, int] = stats.get("cache", {})  # type: ignore[assignment]
    ops: dict[str, dict[str, int]] = stats.get("ops", {})  # type: ignore[assignment]
    looked = cache.get("hits", 0) + cache.get("misses", 0)
    ratio = f"{100 * cache.get('hits', 0) / looked:.0f}%" if looked else "-"
    top = sorted(ops.items(), key=lambda item: -item[1]["count"])[:6]
    counts = ", ".join(f"{name} {counter['count']}" for name, counter in top) or "none"
    return (f"cache {cache.get('cache_bytes', 0) >> 20}/{share >> 20} MiB, hit ratio {ratio}; "
            f"ops: {counts}")


def _daemon(args: argparse.Namespace) -> int:
    socket = daemon_client.socket_path(args.socket)
    if args.shutdown_mounts:
        reply = daemon_client.call(socket, daemon_client.ShutdownMounts(), timeout=600)
        print(f"unmounted {len(reply.mounts or [])} targets")
        return 0
    from cephmount.daemon.main import DaemonConfig, run

    budget = parse_size(args.memory_budget) if args.memory_budget else None
    return run(DaemonConfig(Path(args.state_dir), Path(socket), args.metrics_address, budget,
                            os.environ.get("CEPH_CONF", DEFAULT_CONF), Path(args.policy)))


def _add_mount_commands(commands: argparse._SubParsersAction) -> None:
    mount = commands.add_parser(
        "mount", help="mount a CephFS path or subvolume",
        description="Mount SOURCE, [ID@]FSNAME:/PATH or [ID@]FSNAME:[GROUP/]SUBVOLUME, at "
        "MOUNTPOINT. Options (-o, comma separated): conf=PATH, id=NAME, keyring=PATH, ro, "
        "noallow_other, nodefault_permissions, coherence=strict|default|relaxed, "
        "cache_size=SIZE, timeout=SECONDS. Credentials come from the conf and keyring the "
        "way ceph-fuse finds them; a secret is never accepted on the command line. "
        "Through the node daemon when one answers, else standalone.")
    mount.add_argument("source")
    mount.add_argument("mountpoint")
    mount.add_argument("-o", dest="options", metavar="OPTIONS")
    mount.add_argument("-f", "--foreground", action="store_true",
                       help="serve in the foreground (standalone) until unmounted or signalled")
    mount.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    mount.set_defaults(handler=_mount)
    umount = commands.add_parser("umount", help="unmount a cephmount mount")
    umount.add_argument("mountpoint")
    umount.add_argument("--force", action="store_true",
                        help="detach a busy target (it goes when the last user lets go)")
    umount.set_defaults(handler=_umount)
    listing = commands.add_parser("list", help="list this host's cephmount mounts")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)
    status = commands.add_parser("status", help="the node daemon and its mounts")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)
    for parser in (mount, umount, listing, status):
        parser.add_argument("--socket", help="the daemon's socket (default: $CEPHMOUNT_SOCKET "
                            f"or {daemon_client.DEFAULT_SOCKET})")


def _add_daemon(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "daemon", help="run the node daemon in the foreground",
        description="The node daemon: one worker process per volume, every target a bind "
        "mount; mounts outlive the daemon and its workers. SIGTERM leaves the mounts.")
    parser.add_argument("--state-dir", default="/var/lib/cephmount")
    parser.add_argument("--socket", help="control socket (default: $CEPHMOUNT_SOCKET or "
                        f"{daemon_client.DEFAULT_SOCKET})")
    parser.add_argument("--metrics-address", default="127.0.0.1:9842",
                        help="HOST:PORT of the Prometheus endpoint ('' for none)")
    parser.add_argument("--memory-budget", metavar="SIZE",
                        help="node-wide memory for all workers (e.g. 4G); caches share it")
    parser.add_argument("--policy", default="/etc/cephmount/policy.json",
                        help="which filesystems, paths and users may be mounted "
                        "(default: %(default)s; no file: no restriction)")
    parser.add_argument("--shutdown-mounts", action="store_true",
                        help="ask the running daemon to unmount everything (node drain)")
    parser.set_defaults(handler=_daemon)


def _dev_cluster(args: argparse.Namespace) -> int:
    from cephmount.devcluster import DevCluster

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


def _install_systemd(args: argparse.Namespace) -> int:
    from cephmount.install import install_systemd

    for line in install_systemd(Path(args.root), enable=not args.no_enable):
        print(line)
    return 0


def _add_install(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "install-systemd", help="install the daemon's systemd unit and the fstab mount helper",
        description="Install cephmountd.service (running this cephmount) and "
        "mount.fuse.cephmount (so /etc/fstab lines of type fuse.cephmount mount), then "
        "enable and start the daemon when systemd runs.")
    parser.add_argument("--root", default="/", help="install under this root (default: /)")
    parser.add_argument("--no-enable", action="store_true",
                        help="only install the files; do not enable or start the unit")
    parser.set_defaults(handler=_install_systemd)


def _add_dev_cluster(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "dev-cluster", help="a throwaway one-node Ceph cluster on 127.0.0.1",
        description="Run a throwaway one-node Ceph cluster (mon, mgr, osd, mds) with CephFS "
        "`cephfs`, a subvolume csi/vol1 with a 1 GiB quota and a client `kube` confined to it.")
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    parser.add_argument("--dir", type=Path, default=None,
                        help="data dir (default: $CEPHMOUNT_DEV_DIR, "
                        "$XDG_RUNTIME_DIR/cephmount-dev or ./.dev-cluster)")
    parser.add_argument("--port", type=int, default=3300,
                        help="mon port for msgr2; msgr1 uses the next one (default: %(default)s)")
    parser.set_defaults(handler=_dev_cluster)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cephmount", description="Mount CephFS subvolumes through libcephfs and FUSE.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_mount_commands(commands)
    _add_daemon(commands)
    _add_install(commands)
    _add_dev_cluster(commands)
    kube_commands.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"cephmount: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
