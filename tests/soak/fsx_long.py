"""The long fsx-style run: 20,000 operations on one file per mode, and on ceph-fuse.

    python -m tests.soak.fsx_long --dir DEV_CLUSTER_DIR [--ops 20000] [--seed 1]

Mounts the dev cluster's subvolume with cephmount in the default and strict modes
and with ceph-fuse, runs tests/fuse/fsx.py's exerciser on each (ceph-fuse without
O_DIRECT: see tests/fuse/test_direct_io.py) and prints one JSON line per mount; the
lines are the result recorded in docs/reliability.md. Exits non-zero on a mismatch.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cephmount.devcluster import DevCluster
from tests.fuse.conftest import mount_ceph_fuse, mount_cephmount, scratch_dir, unmount
from tests.fuse.fsx import Exerciser, Mismatch

MOUNTS = {"default": "", "strict": "coherence=strict", "ceph-fuse": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, type=Path, help="a running dev cluster's dir")
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    env = DevCluster(args.dir).client_env()
    failed = False
    for name, extra in MOUNTS.items():
        mountpoint = Path(tempfile.mkdtemp(prefix=f"cm-fsx-{name}.", dir="/tmp"))
        if extra is None:
            mount_ceph_fuse(env, mountpoint)
        else:
            mount_cephmount(env, mountpoint, extra)
        started = time.monotonic()
        result: dict[str, object] = {"mount": name, "seed": args.seed, "ops": args.ops}
        try:
            with scratch_dir(mountpoint, "fsx") as directory:
                exerciser = Exerciser(directory / "f", args.seed, shared_maps=name != "strict",
                                      direct=extra is not None)
                result["counts"] = dict(sorted(exerciser.run(args.ops).items()))
                result["fallocate"] = sorted(exerciser.fallocate_modes)
        except Mismatch as exc:
            result["mismatch"] = str(exc)
            failed = True
        finally:
            unmount(mountpoint)
            mountpoint.rmdir()
        result["seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
