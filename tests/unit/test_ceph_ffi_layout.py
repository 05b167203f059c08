"""The cffi declarations agree with gcc and the installed libcephfs headers.

In ABI mode cffi trusts our cdef blindly: a wrong field type or prototype
corrupts memory without an error. Here gcc compiles the real headers and
reports every struct's size and field offsets, and it also re-reads our
function prototypes after the headers (C rejects a conflicting redeclaration).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cephmount.ceph._libcephfs import PROTOTYPES, ffi
from cephmount.ceph.structs import DIRENT_FORMAT, STATX_FORMAT, NameBatch, StatX

HEADERS = """
#define _FILE_OFFSET_BITS 64
#include <stddef.h>
#include <stdio.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <cephfs/libcephfs.h>
"""

STRUCTS = [
    "struct ceph_statx",
    "struct dirent",
    "struct ceph_client_callback_args",
    "struct statvfs",
    "struct flock",
    "struct ceph_file_layout",
    "struct timespec",
    "vinodeno_t",
]

SCALARS = ["mode_t", "uid_t", "gid_t", "pid_t", "dev_t", "off_t", "time_t"]

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or not Path("/usr/include/cephfs/libcephfs.h").exists(),
    reason="needs gcc and libcephfs-dev",
)


def _fields(ctype: str) -> list[str]:
    return [name for name, _ in ffi.typeof(ctype).fields]


def _c_program() -> str:
    lines = [HEADERS, "int main(void) {", 'printf("{");']
    for ctype in STRUCTS:
        lines.append(f'printf("\\"{ctype}\\": %zu, ", sizeof({ctype}));')
        for field in _fields(ctype):
            key = f"{ctype}.{field}"
            member = f"(({ctype} *)0)->{field}"
            lines.append(
                f'printf("\\"{key}\\": [%zu, %zu], ", offsetof({ctype}, {field}), '
                f"sizeof({member}));"
            )
    for scalar in SCALARS:
        lines.append(f'printf("\\"{scalar}\\": %zu, ", sizeof({scalar}));')
    lines += ['printf("\\"end\\": 0}");', "return 0;", "}"]
    return "\n".join(lines)


def _cffi_layout() -> dict[str, object]:
    layout: dict[str, object] = {}
    for ctype in STRUCTS:
        layout[ctype] = ffi.sizeof(ctype)
        for name, field in ffi.typeof(ctype).fields:
            layout[f"{ctype}.{name}"] = [field.offset, ffi.sizeof(field.type)]
    for scalar in SCALARS:
        layout[scalar] = ffi.sizeof(scalar)
    return layout


def _gcc(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    c_file = tmp_path / "probe.c"
    c_file.write_text(source)
    return subprocess.run(
        ["gcc", "-std=gnu11", "-Wall", "-Werror", *args, str(c_file)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )


def test_struct_layouts_match_gcc(tmp_path: Path) -> None:
    built = _gcc(tmp_path, _c_program(), "-o", str(tmp_path / "probe"))
    assert built.returncode == 0, built.stderr
    out = subprocess.run([str(tmp_path / "probe")], capture_output=True, text=True, check=True)
    from_gcc = json.loads(out.stdout)
    del from_gcc["end"]
    assert _cffi_layout() == from_gcc


def test_known_sizes() -> None:
    assert ffi.sizeof("struct ceph_statx") == 136
    assert ffi.sizeof("struct dirent") == 280
    assert ffi.sizeof("struct ceph_client_callback_args") == 56


def test_statx_unpacking_matches_the_struct() -> None:
    """StatX.from_cdata reads the raw bytes: every field must land right (the number
    stands for the inode number: see vino.py)."""
    assert STATX_FORMAT.size == ffi.sizeof("struct ceph_statx")
    stx = ffi.new("struct ceph_statx *")
    values = {"stx_mask": 0x1FFF, "stx_blksize": 4096, "stx_nlink": 3, "stx_uid": 1001,
              "stx_gid": 1002, "stx_mode": 0o100644, "stx_ino": 2**40 + 5, "stx_size": 2**33,
              "stx_blocks": 77, "stx_dev": 2**64 - 2, "stx_rdev": 0x0801,
              "stx_version": 2**63 + 9}
    for name, value in values.items():
        setattr(stx, name, value)
    for index, name in enumerate(("stx_atime", "stx_ctime", "stx_mtime", "stx_btime")):
        getattr(stx, name).tv_sec = 1_700_000_000 + index
        getattr(stx, name).tv_nsec = 100 + index
    assert StatX.from_cdata(stx, 2**40 + 5) == StatX(
        ino=2**40 + 5, mode=0o100644, nlink=3, uid=1001, gid=1002, rdev=0x0801, size=2**33,
        blocks=77, blksize=4096,
        atime_ns=1_700_000_000_000_000_100, ctime_ns=1_700_000_001_000_000_101,
        mtime_ns=1_700_000_002_000_000_102, btime_ns=1_700_000_003_000_000_103,
        version=2**63 + 9, mask=0x1FFF,
    )


def test_dirent_unpacking_matches_the_struct() -> None:
    """CephClient.readdir_names reads getdents' records as raw bytes: the number,
    the next offset, the type and the name must each land right."""
    assert DIRENT_FORMAT.size == ffi.sizeof("struct dirent")
    dirents = ffi.new("struct dirent[]", 2)
    for index, name in enumerate((b"a", b"n" * 255)):
        dirents[index].d_ino = 2**40 + index
        dirents[index].d_off = 2**62 + index
        dirents[index].d_reclen = 0xFFFF
        dirents[index].d_type = 4 + index
        dirents[index].d_name = name
    records = list(DIRENT_FORMAT.iter_unpack(ffi.buffer(dirents)))
    assert [(number, offset, kind, name.rstrip(b"\0"))
            for number, offset, kind, name in records] == [
        (2**40, 2**62, 4, b"a"), (2**40 + 1, 2**62 + 1, 5, b"n" * 255)]
    batch = NameBatch(memoryview(ffi.buffer(dirents)).toreadonly())
    assert len(batch) == 2 and list(batch.numbers(2)) == [2**40, 2**40 + 1]
    assert [batch.offset_after(0), batch.since(1).offset_after(0)] == [2**62, 2**62 + 1]
    assert [(e.name, e.stat.ino, e.stat.mode, e.offset) for e in batch.since(1).entries()] == [
        (b"n" * 255, 2**40 + 1, 5 << 12, 2**62 + 1)]
    assert NameBatch.of(batch.entries()).entries() == batch.entries()


def test_prototypes_agree_with_headers(tmp_path: Path) -> None:
    """Redeclaring each prototype after the header is an error if any type differs."""
    checked = _gcc(tmp_path, HEADERS + PROTOTYPES, "-fsyntax-only")
    assert checked.returncode == 0, checked.stderr


def test_a_wrong_prototype_is_caught(tmp_path: Path) -> None:
    """The redeclaration check itself is able to fail."""
    wrong = PROTOTYPES.replace(
        "int ceph_ll_forget(struct ceph_mount_info *cmount, struct Inode *in, int count);",
        "int ceph_ll_forget(struct ceph_mount_info *cmount, struct Inode *in, long count);",
    )
    assert wrong != PROTOTYPES
    checked = _gcc(tmp_path, HEADERS + wrong, "-fsyntax-only")
    assert checked.returncode != 0
    assert "ceph_ll_forget" in checked.stderr
