"""The systemd unit, sd_notify, and mount(8)'s helper for /etc/fstab."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cephmount.daemon import client as daemon_client
from cephmount.devcluster import ClientEnv
from cephmount.fstab import filter_options
from cephmount.host import mountinfo
from tests.daemon.conftest import DaemonProcess


def install(root: Path) -> tuple[Path, Path]:
    result = subprocess.run([sys.executable, "-m", "cephmount.cli", "install-systemd",
                             "--root", str(root), "--no-enable"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return (root / "etc/systemd/system/cephmountd.service",
            root / "usr/sbin/mount.fuse.cephmount")


def test_the_unit_verifies_and_keeps_workers_on_restart(tmp_path: Path) -> None:
    unit, helper = install(tmp_path)
    text = unit.read_text()
    for line in ("Type=notify", "KillMode=process", "Restart=on-failure", "WatchdogSec="):
        assert line in text
    executable = next(line for line in text.splitlines()
                      if line.startswith("ExecStart=")).split("=", 1)[1].split()[0]
    assert Path(executable).exists()
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                              text=True, timeout=60, check=False)
    assert verified.returncode == 0, verified.stderr
    assert helper.stat().st_mode & 0o111
    assert "@PYTHON@" not in helper.read_text() and sys.executable in helper.read_text()


def test_fstab_options_meant_for_others_are_dropped() -> None:
    assert filter_options("conf=/c,id=kube,_netdev,nofail,x-systemd.requires=cephmountd."
                          "service,defaults,noauto,ro,coherence=strict") == \
        "conf=/c,id=kube,ro,coherence=strict"


@pytest.mark.cluster
@pytest.mark.fuse
def test_an_fstab_line_mounts_through_the_daemon(daemon: DaemonProcess, target_dir: Path,
                                                 client_env: ClientEnv, tmp_path: Path) -> None:
    _, helper = install(tmp_path)
    target = target_dir / "fstab"
    target.mkdir()
    options = (f"conf={client_env.conf},keyring={client_env.keyring},_netdev,nofail,"
               "x-systemd.requires=cephmountd.service")
    source = f"{client_env.client_id}@{client_env.fs_name}:{client_env.subvolume_path}"
    result = subprocess.run([str(helper), source, str(target), "-o", options],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={"PATH": "/usr/bin:/bin", "CEPHMOUNT_SOCKET": daemon.socket})
    assert result.returncode == 0, result.stderr
    assert "through the node daemon" in result.stdout
    assert [t.path for info in daemon.mounts() for t in info.targets] == [str(target)]
    assert mountinfo.mounted_at(target)[-1].fs_type == "fuse.cephmount"


@pytest.mark.cluster
def test_the_daemon_tells_systemd_it_is_ready_alive_and_stopping(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    daemon.stop()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.settimeout(30)
    with listener:
        daemon.start(env={"NOTIFY_SOCKET": str(tmp_path / "notify"),
                          "WATCHDOG_USEC": "400000"})
        messages = {listener.recv(256).decode() for _ in range(3)}
        assert {"READY=1", "WATCHDOG=1"} <= messages
        assert daemon_client.answers(daemon.socket)
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        while (message := listener.recv(256).decode()) == "WATCHDOG=1":
            pass
        assert message == "STOPPING=1"
        daemon.stop()
