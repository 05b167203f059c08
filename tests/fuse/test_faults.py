"""Faults a mount rides out: an MDS or an OSD killed and started again, its client evicted.

A writer on a cephmount mount writes, fsyncs and reads back files while the daemon
dies and comes back; it must see no error and every file must verify afterwards.
The longest stall of one operation is printed (docs/reliability.md records it); no
bound is asserted on it. Each test returns with the cluster healthy again.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cephmount.devcluster import ClientEnv, DevCluster
from cephmount.fs import mount as fs_mount
from tests.conftest import evict_client_of
from tests.fuse.conftest import cephmount_at, scratch_dir

pytestmark = [pytest.mark.fuse, pytest.mark.cluster]

FILE_BYTES = 256 << 10
SETTLE_AFTER = 3.0  # seconds of workload after the cluster is ready again


@dataclass
class Workload:
    """Write, fsync, read back and verify files until stopped; count errors and stalls."""

    directory: Path
    written: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    longest_stall: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        index = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self._one(f"f{index}")
            except OSError as exc:
                self.errors.append(f"f{index}: {exc}")
            self.longest_stall = max(self.longest_stall, time.monotonic() - started)
            index += 1

    def _one(self, name: str) -> None:
        data = os.urandom(FILE_BYTES)
        path = self.directory / name
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.written[name] = hashlib.sha256(data).hexdigest()
        if path.read_bytes() != data:
            self.errors.append(f"{name}: read back differs")

    def verify(self) -> list[str]:
        return [name for name, digest in self.written.items()
                if hashlib.sha256((self.directory / name).read_bytes()).hexdigest() != digest]


@pytest.fixture
def fault_mount(client_env: ClientEnv, mount_root: Path) -> Iterator[Path]:
    with cephmount_at(client_env, mount_root / "faults") as mountpoint:
        yield mountpoint


@pytest.mark.parametrize("daemon", ["mds.a", "osd.0"])
def test_a_daemon_restart_loses_nothing_and_fails_nothing(
        daemon: str, dev_cluster: DevCluster, fault_mount: Path) -> None:
    with scratch_dir(fault_mount, "fault") as directory:
        workload = Workload(directory)
        writer = threading.Thread(target=workload.run)
        writer.start()
        try:
            time.sleep(1.0)
            restarted = time.monotonic()
            dev_cluster.restart_daemon(daemon)
            ready = time.monotonic() - restarted
            time.sleep(SETTLE_AFTER)
        finally:
            workload.stop.set()
            writer.join(timeout=300)
        print(f"{daemon}: ready again after {ready:.1f} s; longest stall "
              f"{workload.longest_stall:.1f} s; {len(workload.written)} files")
        assert not writer.is_alive()
        assert workload.errors == []
        assert len(workload.written) > 0
        assert workload.verify() == []


READS_WAITING = 12  # more than the threads that read the kernel's requests (8)


def test_reads_waiting_for_a_stopped_osd_leave_the_mount_answering(
        dev_cluster: DevCluster, client_env: ClientEnv, mount_root: Path,
        cephmount_mount: Path) -> None:
    """Strict mode's reads are answered in C on the threads that read the kernel's
    requests; while they wait for an OSD, a stat and a listing still get answers."""
    with scratch_dir(cephmount_mount, "osdstop") as directory:
        data = {f"f{i}": os.urandom(4096) for i in range(READS_WAITING)}
        for name, content in data.items():
            (directory / name).write_bytes(content)
        with cephmount_at(client_env, mount_root / "osdstop", "coherence=strict") as strict:
            here = strict / directory.name
            files = {name: open(here / name, "rb") for name in data}  # noqa: SIM115
            read: dict[str, bytes] = {}
            readers = [threading.Thread(target=lambda n=name: read.update({n: files[n].read()}))
                       for name in data]
            answered = threading.Event()
            with dev_cluster.paused("osd.0"):
                for reader in readers:
                    reader.start()
                time.sleep(2.0)
                waiting = len(data) - len(read)
                asker = threading.Thread(
                    target=lambda: (os.stat(here), os.listdir(here), answered.set()), daemon=True)
                asker.start()
                answered_while_paused = answered.wait(15.0)
            for reader in readers:
                reader.join(timeout=120)
            for f in files.values():
                f.close()
            asker.join(timeout=60)
        assert waiting == len(data)  # every read waited for the OSD
        assert answered_while_paused
        assert read == data


def mount_pid(mountpoint: Path) -> int:
    (record,) = [r for r in fs_mount.list_mounts() if r.mountpoint == str(mountpoint)]
    return record.pid


def mount_stats(mountpoint: Path) -> dict[str, int]:
    return json.loads(os.getxattr(mountpoint, "cephmount.stats"))


def test_an_evicted_mount_goes_on_with_a_new_session(client_env: ClientEnv,
                                                      fault_mount: Path) -> None:
    """As the kernel client's recover_session=clean: no person needed, nothing stale."""
    log = fs_mount.state_dir() / "log" / "mounts.log"
    logged_before = log.stat().st_size
    with scratch_dir(fault_mount, "evict") as directory:
        (directory / "before").write_text("written before")
        with open(directory / "before", "rb") as still_open:
            evict_client_of(client_env, mount_pid(fault_mount))
            started = time.monotonic()
            (directory / "after").write_text("written after")
            print(f"first request answered {time.monotonic() - started:.2f} s after the "
                  "eviction")
            assert sorted(os.listdir(directory)) == ["after", "before"]
            # the kernel's cached pages dropped: the read must come from the mount
            os.posix_fadvise(still_open.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            assert still_open.read() == b"written before"
        assert mount_stats(fault_mount)["session_losses"] == 1
    with log.open("rb") as lines:
        lines.seek(logged_before)
        assert f"{fault_mount}: the Ceph session was lost".encode() in lines.read()


def test_lookups_in_c_go_on_with_the_new_session(client_env: ClientEnv,
                                                 fault_mount: Path) -> None:
    """The lookup handlers of a lost session's directories go with it; the new session's
    directories get their own, and no entry found by the old ones is left behind."""
    with scratch_dir(fault_mount, "evict") as directory:
        (directory / "kept").write_text("kept")

        def absent_names_answered_in_c() -> int:
            before = mount_stats(fault_mount)["native_lookups"]
            for n in range(3):
                assert not (directory / f"absent-{n}").exists()
            return mount_stats(fault_mount)["native_lookups"] - before

        assert absent_names_answered_in_c() >= 2
        evict_client_of(client_env, mount_pid(fault_mount))
        (directory / "after").write_text("written after")  # the loss is seen here
        assert mount_stats(fault_mount)["session_losses"] >= 1
        assert absent_names_answered_in_c() >= 2
        assert (directory / "kept").read_text() == "kept"
        stats = mount_stats(fault_mount)
        assert stats["native_lookups_waiting"] == 0


def test_writes_the_lost_session_held_are_reported_once(client_env: ClientEnv,
                                                         fault_mount: Path) -> None:
    """Written, not yet fsynced, when the session went: fsync says so, then works again."""
    with scratch_dir(fault_mount, "evict") as directory:
        path = directory / "unsynced"
        with open(path, "wb", buffering=0) as file:
            file.write(b"may be lost")
            evict_client_of(client_env, mount_pid(fault_mount))
            with pytest.raises(OSError) as lost:
                os.fsync(file.fileno())
            assert lost.value.errno == errno.EIO
            os.pwrite(file.fileno(), b"written again", 0)
            os.fsync(file.fileno())
        assert path.read_bytes() == b"written again"
