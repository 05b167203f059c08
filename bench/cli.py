"""`python -m bench`: measure every target on one cluster, write JSON, Markdown, PNGs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from bench.charts import write_charts
from bench.cluster import Cluster, dev_cluster
from bench.jobfile import JobFileError, parse_size
from bench.layout import QuotaError
from bench.procs import REPO
from bench.progress import Progress
from bench.provenance import PublishError, check_publishable, is_under_docs, publish_docs
from bench.report import Document, write_json, write_markdown
from bench.run import Plan, Runner
from bench.targets import TARGET_NAMES, DirectError, make_targets
from bench.workloads import WORKLOAD_NAMES, Sizes
from bench.workloads import select as select_workloads
from cephmount.devcluster import DEFAULT_PORT, DevClusterError

RESULTS = Path(__file__).resolve().parent / "results"
MiB = 1 << 20

# name -> (sizes, N values, rounds). The default profile measures every cell three
# times and keeps the median: between runs ceph-fuse's own figures move by up to 40%.
PROFILES: dict[str, tuple[Sizes, tuple[int, ...], int]] = {
    "default": (Sizes(seq_size=160 * MiB, rand_size=128 * MiB, verify_size=16 * MiB,
                      files=400, runtime=5, cap=60, dir_entries=50_000), (1, 2, 4), 3),
    "quick": (Sizes(seq_size=32 * MiB, rand_size=32 * MiB, verify_size=8 * MiB,
                    files=100, runtime=1, cap=30, dir_entries=5_000), (1, 4), 1),
    "tiny": (Sizes(seq_size=4 * MiB, rand_size=4 * MiB, verify_size=1 * MiB,
                   files=40, runtime=1, cap=30, dir_entries=200), (1, 2), 1),
}
USER_ERRORS = (DevClusterError, QuotaError, JobFileError, DirectError, PublishError, ValueError,
               OSError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="fio benchmarks of one CephFS subvolume mounted "
        "N times (N separate clients) with cephmount, ceph-fuse and libcephfs called "
        "directly, interleaved in one run. Writes results.json, results.md and PNG charts "
        "under --out/<time>/ and a copy under --out/latest/.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="profile", action="store_const", const="quick",
                      help="small sizes, short jobs, N=1,4: about 2 minutes")
    size.add_argument("--tiny", dest="profile", action="store_const", const="tiny",
                      help="tiny sizes, N=1,2: seconds per target, for the test suite")
    parser.set_defaults(profile="default")
    sizes = parser.add_argument_group("sizes and durations (override the profile)")
    sizes.add_argument("--seq-size", type=parse_size, help="sequential file per client (160M)")
    sizes.add_argument("--rand-size", type=parse_size, help="the shared random-I/O file (128M)")
    sizes.add_argument("--verify-size", type=parse_size, help="data the verify job writes (16M)")
    sizes.add_argument("--files", type=int, help="metadata files per client (400)")
    sizes.add_argument("--dir-entries", type=int,
                       help="entries of the large directory listed at N=1 (50000)")
    sizes.add_argument("--runtime", type=int, help="seconds per time-based job (5)")
    sizes.add_argument("--cap", type=int, help="most seconds a size-based job may take (60)")
    sizes.add_argument("--clients", type=_int_list, help="the values of N (1,2,4)")
    sizes.add_argument("--rounds", type=int,
                       help="times every cell is measured, the median kept (3)")
    what = parser.add_argument_group("what to measure")
    what.add_argument("--targets", type=_name_list, default=list(TARGET_NAMES),
                      help=f"comma-separated, from {','.join(TARGET_NAMES)} (all)")
    what.add_argument("--workloads", type=_name_list, default=None,
                      help=f"comma-separated, from {','.join(WORKLOAD_NAMES)} (all)")
    what.add_argument("--no-verify", dest="verify", action="store_false",
                      help="skip the correctness job")
    dev = parser.add_argument_group("the dev cluster (default; started when absent)")
    dev.add_argument("--dir", type=Path, default=None,
                     help="its data dir (default: as `cephmount dev-cluster`)")
    dev.add_argument("--port", type=int, default=DEFAULT_PORT, help="its mon port")
    dev.add_argument("--keep-cluster", action="store_true",
                     help="leave a dev cluster the bench started running")
    other = parser.add_argument_group("any other cluster (instead of the dev cluster)")
    other.add_argument("--conf", type=Path, help="ceph.conf")
    other.add_argument("--keyring", type=Path, help="the client's keyring file")
    other.add_argument("--id", default="kube", help="client id (%(default)s)")
    other.add_argument("--fs-name", default="cephfs", help="file system (%(default)s)")
    other.add_argument("--subvolume-path", help="e.g. /volumes/csi/vol1/<uuid>")
    other.add_argument("--admin-keyring", type=Path,
                       help="client.admin keyring, to drop OSD caches for cold reads")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results dir (bench/results)")
    parser.add_argument("--publish", action="store_true",
                        help="also copy results.md and by_workload.png to docs/bench/latest.md "
                        "and docs/bench/by_workload.png; refused from a tree with uncommitted "
                        "changes")
    parser.add_argument("--mount-root", type=Path, default=None,
                        help="where the FUSE targets mount (default: a new dir under /tmp)")
    return parser


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _name_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def sizes_from(args: argparse.Namespace) -> tuple[Sizes, tuple[int, ...], int]:
    sizes, clients, rounds = PROFILES[args.profile]
    overrides = {key: getattr(args, key) for key in
                 ("seq_size", "rand_size", "verify_size", "files", "runtime", "cap",
                  "dir_entries")
                 if getattr(args, key) is not None}
    clients = tuple(args.clients or clients)
    if min(clients) < 1:
        raise ValueError("--clients: every N must be at least 1")
    rounds = rounds if args.rounds is None else args.rounds
    if rounds < 1:
        raise ValueError("--rounds must be at least 1")
    return dataclasses.replace(sizes, **overrides), clients, rounds


@contextmanager
def cluster_from(args: argparse.Namespace, log: Progress) -> Iterator[Cluster]:
    if args.conf is None:
        with dev_cluster(args.dir, args.port, args.keep_cluster, log.note) as cluster:
            yield cluster
        return
    if args.keyring is None or args.subvolume_path is None:
        raise ValueError("--conf needs --keyring and --subvolume-path")
    yield Cluster(conf=args.conf.absolute(), keyring=args.keyring.absolute(),
                  client_id=args.id, fs_name=args.fs_name, subvolume_path=args.subvolume_path,
                  admin_keyring=args.admin_keyring)


def publish(document: Document, run_dir: Path, out: Path) -> Path:
    """results.json, results.md, summary.md and charts in `run_dir`; a copy in `out`/latest."""
    write_json(document, run_dir / "results.json")
    reports = write_markdown(document, run_dir)
    charts = write_charts(document, run_dir)
    latest = out / "latest"
    if latest.is_symlink() or latest.is_file():
        latest.unlink()
    shutil.rmtree(latest, ignore_errors=True)
    latest.mkdir(parents=True)
    for path in (run_dir / "results.json", *reports, *charts):
        shutil.copy2(path, latest / path.name)
    return latest


def measure(args: argparse.Namespace, progress: Progress, run_dir: Path) -> Document:
    sizes, clients, rounds = sizes_from(args)
    workloads = select_workloads(args.workloads)
    with cluster_from(args, progress) as cluster:
        mount_root = args.mount_root or Path(tempfile.mkdtemp(prefix="cmbench.", dir="/tmp"))
        mount_root.mkdir(parents=True, exist_ok=True)
        try:
            chosen = make_targets(args.targets, cluster, mount_root)
            skipped = {t.name: why for t in chosen if (why := t.unavailable())}
            for name, why in skipped.items():
                progress.note(f"{name} is skipped: {why}")
            targets = [t for t in chosen if t.name not in skipped]
            if not targets:
                raise ValueError("no target can run here")
            plan = Plan(args.profile, sizes, clients, workloads, targets, skipped, args.verify,
                        rounds)
            progress.estimates = plan.estimates()
            return Runner(cluster, plan, run_dir / "raw", progress).run()
        finally:
            if args.mount_root is None:
                with contextlib.suppress(OSError):
                    mount_root.rmdir()  # only if empty: never remove a live mount


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: every mount is undone


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    progress = Progress([])
    run_dir = args.out / datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        if args.publish or is_under_docs(args.out, REPO):
            check_publishable(REPO)  # before an hour of measuring, not after
        run_dir.mkdir(parents=True, exist_ok=True)
        document = measure(args, progress, run_dir)
    except USER_ERRORS as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; everything it mounted is unmounted", file=sys.stderr)
        return 130
    latest = publish(document, run_dir, args.out)
    print(f"bench: results in {run_dir} (copied to {latest})")
    print((run_dir / "results.md").read_text())
    if args.publish:
        try:
            published = publish_docs(run_dir, document["versions"]["commit"], REPO)
        except PublishError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
        print(f"bench: published {', '.join(str(p) for p in published)}")
    failed = any(not v["passed"] for v in document["verify"]) or any(
        r["errors"] for r in document["results"])
    return 1 if failed else 0
