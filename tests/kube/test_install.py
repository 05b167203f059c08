"""`cephmount install-flexvolume` puts a driver kubelet can execute where kubelet looks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kube import kubelet


def install(plugin_dir: Path, *args: str) -> Path:
    done = subprocess.run([sys.executable, "-m", "cephmount.cli", "install-flexvolume",
                           "--plugin-dir", str(plugin_dir), *args],
                          capture_output=True, text=True, timeout=60, check=True)
    driver = plugin_dir / "cephmount~cephfs" / "cephfs"
    assert str(driver) in done.stdout
    return driver


@pytest.mark.parametrize("namespace", [False, True])
def test_the_installed_driver_answers_init(tmp_path: Path, namespace: bool) -> None:
    args: list[str] = []
    if namespace:  # as in the DaemonSet: the driver runs in a mount namespace with cephmount
        (tmp_path / "daemon.pid").write_text(f"{os.getpid()}\n")
        args = ["--mount-namespace-of", str(tmp_path / "daemon.pid")]
    driver = install(tmp_path / "exec", *args)
    assert stat.S_IMODE(driver.stat().st_mode) == 0o755
    assert sorted(p.name for p in driver.parent.iterdir()) == ["cephfs"]  # no dot-file left
    call = kubelet.run("init", socket="/nonexistent", driver=[str(driver)])
    assert (call.code, call.reply) == (0, {"status": "Success", "capabilities": {
        "attach": False, "selinuxRelabel": False, "fsGroup": False}})


def test_installing_again_replaces_the_driver(tmp_path: Path) -> None:
    driver = install(tmp_path)
    driver.write_text("#!/bin/sh\necho old\n")
    install(tmp_path)
    assert "cephmount.kube.flexvolume" in driver.read_text()
