"""mountinfo lines as the kernel writes them, escapes included."""

from __future__ import annotations

from pathlib import Path

from cephmount.host import mountinfo

FUSE_LINE = ("812 29 0:77 / /mnt/with\\040space\\011tab rw,nosuid,nodev,relatime shared:400 - "
             "fuse.cephmount kube@cephfs:/volumes/csi/vol1 rw,user_id=0,group_id=0,"
             "default_permissions,allow_other\n")
BIND_LINE = ("900 29 0:77 / /var/lib/kubelet/pods/x/vol ro,nosuid,nodev,relatime - "
             "fuse.cephmount kube@cephfs:/volumes/csi/vol1 rw,user_id=0\n")
BACKSLASH_LINE = "901 29 0:12 / /tmp/a\\134b rw - tmpfs tmpfs rw\n"


def test_a_line_with_optional_fields_and_escapes() -> None:
    entry = mountinfo.parse_line(FUSE_LINE)
    assert entry.mountpoint == "/mnt/with space\ttab"
    assert entry.fs_type == "fuse.cephmount"
    assert entry.source == "kube@cephfs:/volumes/csi/vol1"
    assert entry.device == "0:77"
    assert not entry.read_only
    assert "allow_other" in entry.super_options


def test_read_only_bind_and_backslash() -> None:
    assert mountinfo.parse_line(BIND_LINE).read_only
    assert mountinfo.parse_line(BACKSLASH_LINE).mountpoint == "/tmp/a\\b"


def test_mounted_at_finds_a_mountpoint_with_a_space(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(FUSE_LINE + BIND_LINE + BACKSLASH_LINE)
    found = mountinfo.mounted_at("/mnt/with space\ttab", table)
    assert [entry.mount_id for entry in found] == [812]
    assert mountinfo.mounted_at("/mnt/with\\040space\\011tab", table) == []


def test_this_hosts_table_parses() -> None:
    entries = mountinfo.mounts()
    assert any(entry.mountpoint == "/" for entry in entries)
    assert mountinfo.is_mountpoint("/proc")
