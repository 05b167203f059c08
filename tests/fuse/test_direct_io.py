"""O_DIRECT descriptors and the others of the same node see the same data."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.fuse, pytest.mark.cluster]


@pytest.mark.parametrize("mode", ["default", "strict"])
def test_a_buffered_read_sees_an_o_direct_write(mode: str, workdir: Path,
                                                strict_mount: Path) -> None:
    """Found by the exerciser: after a write through an O_DIRECT descriptor, reads
    through another descriptor of the same node (open before or after) gave the old
    data until the caps went, because libcephfs wrote past its own cache."""
    directory = workdir if mode == "default" else strict_mount / workdir.name
    path = directory / "f"
    buffered = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    direct = os.open(path, os.O_RDWR | os.O_DIRECT)
    try:
        os.pwrite(buffered, b"a" * 8192, 0)
        assert os.pread(buffered, 8192, 0) == b"a" * 8192
        with mmap.mmap(-1, 4096) as page:
            page[:] = b"b" * 4096
            assert os.pwritev(direct, [page], 0) == 4096
        assert os.pread(buffered, 8192, 0) == b"b" * 4096 + b"a" * 4096
        assert path.read_bytes() == b"b" * 4096 + b"a" * 4096
    finally:
        os.close(direct)
        os.close(buffered)
