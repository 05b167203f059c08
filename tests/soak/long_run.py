"""The long soak run: one mount, a few hundred thousand files created, statted and removed.

    python -m tests.soak.long_run --dir DEV_CLUSTER_DIR [--files 300000] [--round 20000]

Mounts the dev cluster's subvolume, churns files in rounds and prints, after each
round, the mount's per-inode counters, its RSS and how much the RSS moved since the
round before (`rss_delta_mib`: a leak keeps it positive, a heap settling at its size
brings it to zero) as one JSON line; the last line is the result recorded in
docs/reliability.md. Exits non-zero if anything grew past the first round's level
by more than the CI soak test allows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from cephmount.devcluster import DevCluster
from tests.fuse.conftest import cephmount_cli, mount_cephmount, scratch_dir, unmount
from tests.fuse.test_soak import PER_INODE, SLACK_INODES, SLACK_RSS
from tests.soak.churn import churn, rss_bytes, stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, type=Path, help="a running dev cluster's dir")
    parser.add_argument("--files", type=int, default=300_000)
    parser.add_argument("--round", type=int, default=20_000)
    args = parser.parse_args()
    env = DevCluster(args.dir).client_env()
    mountpoint = Path(tempfile.mkdtemp(prefix="cm-soak.", dir="/tmp"))
    mount_cephmount(env, mountpoint)
    try:
        listing = json.loads(cephmount_cli("list", "--json").stdout)
        pid = next(m["pid"] for m in listing if m["mountpoint"] == str(mountpoint))
        first: dict[str, float] | None = None
        rss_before = rss_bytes(pid)
        started = time.monotonic()
        with scratch_dir(mountpoint, "soak") as directory:
            for done in range(args.round, args.files + args.round, args.round):
                churn(directory, min(args.round, args.files - done + args.round))
                counters, rss = stats(mountpoint), rss_bytes(pid)
                line = {"files": min(done, args.files),
                        "seconds": round(time.monotonic() - started),
                        "rss_mib": round(rss / (1 << 20), 1),
                        "rss_delta_mib": round((rss - rss_before) / (1 << 20), 1),
                        **{name: counters[name] for name in PER_INODE}}
                print(json.dumps(line), flush=True)
                first, rss_before = first or line, rss
        grew = [name for name in PER_INODE if line[name] - first[name] > SLACK_INODES]
        if (line["rss_mib"] - first["rss_mib"]) * (1 << 20) > SLACK_RSS:
            grew.append("rss")
        print(f"grew: {', '.join(grew) or 'nothing'}")
        return 1 if grew else 0
    finally:
        unmount(mountpoint)
        mountpoint.rmdir()


if __name__ == "__main__":
    sys.exit(main())
