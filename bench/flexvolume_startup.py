"""How long kubelet waits for the FlexVolume driver: `init`, and `mount` of a mounted volume.

    python -m bench.flexvolume_startup --cluster-dir DIR [--runs 20]

Starts a node daemon of its own on the dev cluster in DIR, installs the driver
in a scratch plugin dir and runs the installed file as kubelet does (argv, no
stdin, stdout and stderr read as one). Prints the median, min and max in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cephmount.daemon import client
from cephmount.devcluster import DevCluster
from cephmount.kube.install import install


def timed(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=env, check=False)
        times.append((time.perf_counter() - start) * 1000)
        assert json.loads(done.stdout)["status"] == "Success", done.stdout
    return times


def report(what: str, times: list[float]) -> None:
    print(f"{what}: median {statistics.median(times):.1f} ms, min {min(times):.1f}, "
          f"max {max(times):.1f} ({len(times)} runs)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster-dir", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    env_info = DevCluster(args.cluster_dir).client_env()
    root = Path(tempfile.mkdtemp(prefix="cmb.", dir="/tmp"))
    socket = str(root / "sock")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "cephmount.cli", "daemon", "--state-dir", str(root / "state"),
         "--socket", socket, "--metrics-address", "", "--policy", str(root / "none.json")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "CEPH_CONF": str(env_info.conf)})
    target = root / "pod" / "vol"
    target.mkdir(parents=True)
    try:
        while not client.answers(socket):
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited with status {daemon.returncode}")
            time.sleep(0.05)
        driver = str(install(root / "exec"))
        env = {**os.environ, "CEPHMOUNT_SOCKET": socket}
        options = json.dumps({"fsName": env_info.fs_name, "path": env_info.subvolume_path,
                              "clientId": env_info.client_id, "keyring": str(env_info.keyring),
                              "kubernetes.io/readwrite": "rw"})
        report("init", timed([driver, "init"], env, args.runs))
        report("first mount (starts the worker)", timed([driver, "mount", str(target), options],
                                                         env, 1))
        report("mount, already mounted", timed([driver, "mount", str(target), options], env,
                                               args.runs))
        report("unmount", timed([driver, "unmount", str(target)], env, 1))
    finally:
        client.call(socket, client.ShutdownMounts())
        daemon.terminate()
        daemon.wait(30)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
