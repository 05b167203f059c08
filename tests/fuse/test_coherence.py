"""Coherence across nodes: separate mounts (processes, libcephfs clients) of one subvolume.

Node A and B are cephmount mounts in the default mode, S one in strict mode; the
`cephfs` module is an outside writer that knows nothing of cephmount.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import json
import mmap
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import cephfs
import pytest

from cephmount.devcluster import ClientEnv
from cephmount.fs.coherence import POLICIES
from cephmount.fs.mount import LIBCEPHFS_OBJECT_CACHE
from cephmount.fs.native import WRITES_BEFORE_NATIVE
from cephmount.fs.options import Coherence
from tests.fuse.conftest import cephmount_at, cephmount_cli
from tests.soak.churn import rss_bytes, status_bytes

pytestmark = [pytest.mark.fuse, pytest.mark.cluster]

OPEN_READER_BOUND = 1.0  # seconds: what the default mode promises a reader with the file open


class Node:
    def __init__(self, root: Path) -> None:
        self.root = root

    def stats(self) -> dict[str, int]:
        return json.loads(os.getxattr(self.root, "cephmount.stats"))

    def pid(self) -> int:
        listing = json.loads(cephmount_cli("list", "--json").stdout)
        return next(m["pid"] for m in listing if m["mountpoint"] == str(self.root))


@pytest.fixture(scope="module")
def nodes(client_env: ClientEnv, mount_root: Path) -> Iterator[dict[str, Node]]:
    with contextlib.ExitStack() as mounts:
        yield {name: Node(mounts.enter_context(
                   cephmount_at(client_env, mount_root / f"coherence-{name}", extra)))
               for name, extra in (("a", ""), ("b", ""), ("c", ""),
                                   ("strict", "coherence=strict"),
                                   ("small", "cache_size=32M"), ("nocache", "cache_size=0"))}


@pytest.fixture
def shared(nodes: dict[str, Node]) -> Iterator[str]:
    """A fresh directory name, present on every node."""
    name = f"c-{uuid.uuid4().hex[:10]}"
    (nodes["a"].root / name).mkdir()
    try:
        yield name
    finally:
        subprocess.run(["rm", "-rf", str(nodes["a"].root / name)], timeout=120, check=False)


@pytest.fixture(scope="module")
def outside(client_env: ClientEnv) -> Iterator[cephfs.LibCephFS]:
    """An independent libcephfs client rooted at the subvolume (the `cephfs` module)."""
    fs = cephfs.LibCephFS(conffile=str(client_env.conf), auth_id=client_env.client_id,
                          conf={"keyring": str(client_env.keyring)})
    fs.mount(filesystem_name=client_env.fs_name.encode(),
             mount_root=client_env.subvolume_path.encode())
    try:
        yield fs
    finally:
        fs.unmount()
        fs.shutdown()


def wait_for(predicate: Callable[[], bool], limit: float, step: float = 0.01) -> float:
    """Seconds until `predicate` holds; +inf if it did not within `limit`."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    return float("inf")


def test_strict_mode_reads_every_completed_write(nodes: dict[str, Node], shared: str) -> None:
    path_a = nodes["a"].root / shared / "f"
    path_s = nodes["strict"].root / shared / "f"
    fd = os.open(path_s.parent / "f", os.O_RDONLY | os.O_CREAT, 0o644)  # S has it open
    try:
        for trial in range(20):
            payload = f"version {trial}\n".encode() * (trial + 1)
            path_a.write_bytes(payload)
            assert os.pread(fd, 1 << 16, 0) == payload
            assert path_s.read_bytes() == payload
    finally:
        os.close(fd)


def test_default_mode_close_to_open(nodes: dict[str, Node], shared: str) -> None:
    path_a = nodes["a"].root / shared / "f"
    path_b = nodes["b"].root / shared / "f"
    for trial in range(20):
        payload = os.urandom(64 << 10) if trial % 2 else f"small {trial}".encode()
        path_a.write_bytes(payload)
        assert path_b.read_bytes() == payload, f"trial {trial}: B read stale data after open"


def test_open_reader_sees_writes_within_the_bound(nodes: dict[str, Node], shared: str) -> None:
    """`tail -f` on a shared log: B keeps the file open and polls; A appends and closes."""
    path_a = nodes["a"].root / shared / "log"
    path_a.write_bytes(b"")
    windows = []
    with open(nodes["b"].root / shared / "log", "rb") as reader:
        reader.read()  # B has read the file (and may cache it)
        content = b""
        for trial in range(10):
            line = f"line {trial} {'x' * trial}\n".encode()
            with open(path_a, "ab") as writer:
                writer.write(line)
            expected = content + line

            def seen(expected: bytes = expected) -> bool:
                reader.seek(0)
                return reader.read() == expected

            windows.append(wait_for(seen, limit=5.0))
            content = expected
    assert max(windows) < OPEN_READER_BOUND, f"windows: {windows}"


def test_a_nodes_own_writes_show_in_stat_at_once(nodes: dict[str, Node], shared: str) -> None:
    """Size and mtime after a write, even while the attributes are cached."""
    path = nodes["a"].root / shared / "grows"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        for i in range(50):
            before = os.stat(path)  # fills the caches
            offset = i * 100 if i % 2 else 0  # extend, or overwrite in place
            os.pwrite(fd, b"x" * 100, offset)
            after = os.stat(path)
            assert after.st_size == max(before.st_size, offset + 100), i
            assert after.st_mtime_ns > before.st_mtime_ns, i
    finally:
        os.close(fd)


def test_a_nodes_own_directory_changes_show_in_stat_at_once(nodes: dict[str, Node],
                                                           shared: str) -> None:
    """A directory's mtime moves with every entry this node adds or removes."""
    directory = nodes["a"].root / shared / "d"
    directory.mkdir()
    changes: list[Callable[[int], object]] = [
        lambda i: (directory / f"f{i}").write_bytes(b""),
        lambda i: (directory / f"f{i}").rename(directory / f"g{i}"),
        lambda i: os.mkdir(directory / f"sub{i}"),
        lambda i: os.rmdir(directory / f"sub{i}"),
        lambda i: os.symlink("g", directory / f"l{i}"),
        lambda i: os.link(directory / f"g{i}", directory / f"h{i}"),
        lambda i: os.unlink(directory / f"g{i}"),
    ]
    for i in range(5):
        for change in changes:
            before = os.stat(directory)  # fills the caches
            change(i)
            assert os.stat(directory).st_mtime_ns > before.st_mtime_ns, (i, changes.index(change))


def test_directory_attributes_are_answered_in_c_and_show_another_nodes_changes(
        nodes: dict[str, Node], shared: str) -> None:
    """Once a directory's lookups are answered in C, so are its GETATTRs: this node's
    changes show at once, with no trip to Python, and another node's within the
    default mode's bound (cache_ttl, then the kernel's attr_timeout)."""
    mine, theirs = nodes["a"].root / shared / "watched", nodes["b"].root / shared / "watched"
    mine.mkdir()
    assert not (mine / "warm-up").exists()  # a lookup in it: its handlers are set

    def getattrs() -> tuple[int, int]:
        stats = nodes["a"].stats()
        return stats["op_stats"]["ops"]["getattr"]["count"], stats["native_getattrs"]

    (before, native_before), mtime = getattrs(), os.stat(mine).st_mtime_ns
    for i in range(20):
        (mine / f"f{i}").write_bytes(b"")
        now = os.stat(mine).st_mtime_ns
        assert now > mtime, i
        mtime = now
    total, native = getattrs()
    assert native - native_before >= 20
    assert (total - before) - (native - native_before) <= 1  # the rest went to Python
    os.mkdir(theirs / "from-b")
    policy = POLICIES[Coherence.DEFAULT]
    seen = wait_for(lambda: os.stat(mine).st_nlink == 3, limit=5.0)
    assert seen < policy.cache_ttl + policy.attr_timeout + 0.5, seen


def test_xattrs_set_on_this_node_or_another_are_seen(nodes: dict[str, Node],
                                                     shared: str) -> None:
    """security.* answers are cached (the kernel asks before every write), never past the bound."""
    here, there = nodes["a"].root / shared / "x", nodes["b"].root / shared / "x"
    here.write_bytes(b"")
    name = "security.cephmount-test"

    def value_on_a() -> bytes | None:
        try:
            return os.getxattr(here, name)
        except OSError as exc:
            assert exc.errno == errno.ENODATA
            return None

    assert value_on_a() is None  # now cached as absent
    os.setxattr(here, name, b"here")
    assert value_on_a() == b"here"
    os.setxattr(there, name, b"there")
    assert wait_for(lambda: value_on_a() == b"there", limit=5.0) < OPEN_READER_BOUND
    os.removexattr(there, name)
    assert wait_for(lambda: value_on_a() is None, limit=5.0) < OPEN_READER_BOUND


def test_outside_writer_is_seen_after_open(nodes: dict[str, Node], shared: str,
                                           outside: cephfs.LibCephFS) -> None:
    path_b = nodes["b"].root / shared / "from-outside"
    for trial in range(5):
        payload = f"outside {trial}\n".encode() * (100 * trial + 1)
        fd = outside.open(f"/{shared}/from-outside".encode(), "w", 0o644)
        outside.write(fd, payload, 0)
        outside.close(fd)
        assert path_b.read_bytes() == payload


def test_disjoint_regions_from_two_nodes(nodes: dict[str, Node], shared: str) -> None:
    block, blocks = 64 << 10, 32
    (nodes["a"].root / shared / "regions").write_bytes(bytes(block * blocks))
    script = """
import os, sys
path, first, block, blocks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_WRONLY)
for i in range(first, blocks, 2):
    os.pwrite(fd, bytes([i]) * block, i * block)
os.fsync(fd)
os.close(fd)
"""
    writers = [subprocess.Popen([sys.executable, "-c", script,
                                 str(nodes[name].root / shared / "regions"), str(first),
                                 str(block), str(blocks)])
               for name, first in (("a", 0), ("b", 1))]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]

    expected = b"".join(bytes([i]) * block for i in range(blocks))
    for name in ("a", "b", "c", "strict"):
        assert (nodes[name].root / shared / "regions").read_bytes() == expected, name


APPENDER = """
import os, sys
path, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
for i in range(count):
    os.write(fd, (f"{tag} {i:05d} " + "." * (i * 997 % 6000) + "\\n").encode())
os.close(fd)
"""


@pytest.mark.parametrize("writers", [("a", "b"), ("a", "b", "c"), ("a", "a", "b")],
                         ids=["two-nodes", "three-nodes", "two-writers-on-one-node"])
def test_appends_keep_every_line_whole(nodes: dict[str, Node], shared: str,
                                       writers: tuple[str, ...]) -> None:
    """A shared log: every line of every writer is there once and whole, on every node.

    Lines run up to 6 KB, so many cross a page boundary wherever the kernel thinks the
    end of the file is.
    """
    count = 200
    (nodes["a"].root / shared / "log").write_bytes(b"")
    tags = [f"{name}{k}" for k, name in enumerate(writers)]
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER,
                               str(nodes[name].root / shared / "log"), tag, str(count)])
             for name, tag in zip(writers, tags, strict=True)]
    assert [p.wait(timeout=300) for p in procs] == [0] * len(writers)

    expected = sorted(f"{tag} {i:05d} " + "." * (i * 997 % 6000)
                      for tag in tags for i in range(count))
    contents = {name: (nodes[name].root / shared / "log").read_text() for name in ("a", "b", "c")}
    assert len(set(contents.values())) == 1, "nodes disagree on the file"
    assert sorted(contents["a"].splitlines()) == expected


def test_unlink_and_rename_are_seen_by_other_nodes(nodes: dict[str, Node], shared: str) -> None:
    a, b = nodes["a"].root / shared, nodes["b"].root / shared
    (a / "doomed").write_text("old")
    (a / "moving").write_text("payload")
    assert (b / "doomed").read_text() == "old" and (b / "moving").read_text() == "payload"

    (a / "doomed").unlink()
    (a / "moving").rename(a / "moved")

    assert wait_for(lambda: not (b / "doomed").exists(), OPEN_READER_BOUND) < OPEN_READER_BOUND
    assert wait_for(lambda: not (b / "moving").exists(), OPEN_READER_BOUND) < OPEN_READER_BOUND
    with pytest.raises(FileNotFoundError):
        (b / "doomed").read_text()
    assert (b / "moved").read_text() == "payload"


def test_a_name_another_node_makes_is_found_right_after_a_miss(nodes: dict[str, Node],
                                                              shared: str) -> None:
    """Lookups of absent names are answered in C (ENOENT), and nothing caches the
    absence: a file another node or an outside client makes is found at once."""
    a, b = nodes["a"].root / shared, nodes["b"].root / shared
    assert not (a / "warm-up").exists()  # the directory's first lookup: Python's
    before = nodes["a"].stats()
    for name in ("from-b", "from-outside"):
        for _ in range(3):
            assert not (a / name).exists()
    assert nodes["a"].stats()["native_lookups"] - before["native_lookups"] >= 6

    (b / "from-b").write_text("made on b")
    assert (a / "from-b").read_text() == "made on b"


def test_a_name_an_outside_client_makes_is_found_right_after_a_miss(
        nodes: dict[str, Node], shared: str, outside: cephfs.LibCephFS) -> None:
    a = nodes["a"].root / shared
    for _ in range(3):
        assert not (a / "outside").exists()
    fd = outside.open(f"/{shared}/outside".encode(), os.O_CREAT | os.O_WRONLY, 0o644)
    outside.write(fd, b"made outside", 0)
    outside.close(fd)
    assert (a / "outside").read_text() == "made outside"


def test_names_found_by_lookups_in_c_are_answered_counted_and_forgotten(
        nodes: dict[str, Node], shared: str) -> None:
    """A name found by a lookup in C is answered there, and the mount is told of it
    before the next request: the kernel's lookup is counted in the inode table (its
    later forget puts the reference) and nothing is left waiting."""
    a, b = nodes["a"].root / shared, nodes["b"].root / shared
    for i in range(50):
        (b / f"f{i}").write_text(str(i))  # made on another node: new to node A
    assert not (a / "warm-up").exists()  # the directory's first lookup: Python's
    before = nodes["a"].stats()
    for i in range(50):
        assert (a / f"f{i}").stat().st_size == len(str(i))
    after = nodes["a"].stats()
    assert after["native_lookups"] - before["native_lookups"] >= 50
    assert after["native_lookup_fallbacks"] == before["native_lookup_fallbacks"]
    assert after["native_lookups_waiting"] == 0
    assert after["inodes"] - before["inodes"] >= 50
    drop_kernel_caches()  # the kernel forgets the inodes
    assert wait_for(lambda: nodes["a"].stats()["inodes"] <= after["inodes"] - 40, 10) < 10


def test_an_unlink_answered_in_c_leaves_nothing_stale(nodes: dict[str, Node],
                                                      shared: str) -> None:
    """Unlinks in a directory whose lookups are answered in C are answered there
    too; the mount then forgets what the name stood for before its next request:
    a file held open shows no link left at once, and keeps its data."""
    a = nodes["a"].root / shared
    assert not (a / "warm-up").exists()  # the directory's first lookup: Python's
    before = nodes["a"].stats()
    for i in range(20):
        path = a / f"f{i}"
        path.write_text("doomed")
        with open(path, "rb") as held:
            assert os.fstat(held.fileno()).st_nlink == 1  # cached
            path.unlink()
            assert os.fstat(held.fileno()).st_nlink == 0, i
            assert held.read() == b"doomed"
        assert not path.exists()
    after = nodes["a"].stats()
    assert after["native_unlinks"] - before["native_unlinks"] == 20
    assert after["native_unlink_fallbacks"] == before["native_unlink_fallbacks"]


def test_an_unlink_that_fails_in_c_is_answered_by_python(
        nodes: dict[str, Node], shared: str, outside: cephfs.LibCephFS) -> None:
    """A name another client removed while this kernel still held its entry: the
    unlink in C fails, and the Python handler answers ENOENT."""
    a = nodes["a"].root / shared
    assert not (a / "warm-up").exists()
    before = nodes["a"].stats()
    for i in range(5):
        (a / f"g{i}").write_text("taken")
        os.stat(a / f"g{i}")  # the kernel's entry, valid for its timeout
        outside.unlink(f"/{shared}/g{i}".encode())
        with pytest.raises(FileNotFoundError):
            os.unlink(a / f"g{i}")
    after = nodes["a"].stats()
    assert after["native_unlink_fallbacks"] > before["native_unlink_fallbacks"]
    assert after["native_unlinks"] == before["native_unlinks"]


def drop_kernel_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed_read(path: Path) -> float:
    start = time.monotonic()
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass
    return time.monotonic() - start


def test_hot_reread_is_served_from_our_cache(nodes: dict[str, Node], shared: str) -> None:
    (nodes["a"].root / shared / "data").write_bytes(os.urandom(48 << 20))
    path_b = nodes["b"].root / shared / "data"
    drop_kernel_caches()
    before = nodes["b"].stats()
    cold = timed_read(path_b)
    after_cold = nodes["b"].stats()
    drop_kernel_caches()  # the kernel's copy is gone: the re-read reaches cephmount
    hot = timed_read(path_b)
    after_hot = nodes["b"].stats()

    assert after_cold["bytes_fetched"] - before["bytes_fetched"] >= 48 << 20
    assert after_hot["bytes_fetched"] == after_cold["bytes_fetched"], "re-read went to Ceph"
    assert after_hot["bytes_from_cache"] - after_cold["bytes_from_cache"] == 48 << 20
    assert after_cold["readahead_used"] > before["readahead_used"]
    assert hot < cold, f"hot {hot:.3f}s, cold {cold:.3f}s"


def test_cache_stays_within_its_limit(nodes: dict[str, Node], shared: str) -> None:
    small = nodes["small"]
    for i in range(3):
        (nodes["a"].root / shared / f"part{i}").write_bytes(os.urandom(40 << 20))
    rss_before = rss_bytes(small.pid())
    for _ in range(2):
        for i in range(3):
            drop_kernel_caches()
            timed_read(small.root / shared / f"part{i}")
            stats = small.stats()
            assert stats["cache_bytes"] <= stats["cache_limit"] == 32 << 20
    stats = small.stats()
    assert stats["evictions"] > 0
    # 240 MiB went through a 32 MiB cache: the process grew by no more than its caches
    # (ours and libcephfs's own object cache) and some slack for buffers.
    grown = rss_bytes(small.pid()) - rss_before
    assert grown < stats["cache_limit"] + LIBCEPHFS_OBJECT_CACHE + (32 << 20), grown


def test_small_files_in_the_cache_hold_little_memory(nodes: dict[str, Node],
                                                     shared: str) -> None:
    """A block is fetched 1 MiB at a time; a small file's block keeps only its data.

    Measured on the heap's size (VmData): pages of a buffer never written are not
    resident, but they stay the buffer's, and the heap can use them for nothing else.
    """
    files = [nodes["a"].root / shared / f"small-{i}" for i in range(300)]
    for path in files:
        path.write_bytes(b"x" * 100)
    reader = nodes["c"]
    heap_before = status_bytes(reader.pid(), "VmData")
    fetched_before = reader.stats()["bytes_fetched"]
    for path in files:
        assert (reader.root / shared / path.name).read_bytes() == b"x" * 100
    assert reader.stats()["bytes_fetched"] - fetched_before == 300 * 100  # all cached
    grown = status_bytes(reader.pid(), "VmData") - heap_before
    assert grown < 64 << 20, grown


def test_no_stale_handle_after_a_listing_of_another_nodes_directories(
        nodes: dict[str, Node], shared: str) -> None:
    """A plain `ls` hands the kernel every entry (READDIRPLUS); each stays usable."""
    a, b = nodes["a"].root / shared, nodes["b"].root / shared
    for trial in range(10):
        (b / f"sub{trial}").mkdir()
        assert f"sub{trial}" in os.listdir(a)  # plain `ls`: no lookup of sub
        os.symlink("target", a / f"sub{trial}" / "link")
        assert os.readlink(b / f"sub{trial}" / "link") == "target"


def test_no_stale_handle_after_listing_an_outside_writers_directory(
        nodes: dict[str, Node], shared: str, outside: cephfs.LibCephFS) -> None:
    a = nodes["a"].root / shared
    for trial in range(10):
        outside.mkdir(f"/{shared}/out{trial}".encode(), 0o755)
        assert f"out{trial}" in os.listdir(a)
        os.symlink("file", a / f"out{trial}" / "link")
        (a / f"out{trial}" / "file").write_bytes(b"x")
        assert (a / f"out{trial}" / "link").read_bytes() == b"x"


def listed_sizes(directory: Path) -> dict[str, int]:
    """What `ls -l` shows: a listing, then an lstat of each entry."""
    return {name: os.lstat(directory / name).st_size for name in os.listdir(directory)}


def test_a_listing_shows_sizes_written_and_closed_on_another_node(
        nodes: dict[str, Node], shared: str) -> None:
    """Close-to-open for listings: `ls -l`, `du`, log collectors polling a directory."""
    a, b = nodes["a"].root / shared, nodes["b"].root / shared
    for trial in range(3):
        listed_sizes(a)  # A polls the directory (and caches what it saw)
        expected = {f"f{i}": 100 * trial + i + 1 for i in range(20)}
        for name, size in expected.items():
            (b / name).write_bytes(b"x" * size)
        assert listed_sizes(a) == expected, f"trial {trial}"


def test_a_reader_holding_a_file_reads_the_change_a_listing_shows(
        nodes: dict[str, Node], shared: str) -> None:
    """Once `ls -l` shows another node's change (a listing is an open of every
    entry), a reader that kept the file open reads the new content, not our blocks
    of the old: the stat answered in C tells the block cache of the change."""
    a, b = nodes["a"].root / shared, nodes["b"].root / shared
    (b / "f").write_bytes(b"0" * 4096)
    # B keeps the file open for writing: A's libcephfs then gets no cache caps, and
    # no callback of theirs drops our blocks.
    writer = os.open(b / "f", os.O_RDWR)
    try:
        with open(a / "f", "rb") as reader:
            assert reader.read() == b"0" * 4096
            for trial in range(1, 21):
                content = str(trial % 10).encode() * (4096 * (trial % 3 + 1) + trial)
                os.pwrite(writer, content, 0)
                os.ftruncate(writer, len(content))
                os.fsync(writer)
                (b / f"new-{trial}").touch()  # a changed directory: not listed by the kernel
                assert listed_sizes(a)["f"] == len(content), f"trial {trial}"
                reader.seek(0)
                assert reader.read() == content, f"trial {trial}"
    finally:
        os.close(writer)


def listing_requests(node: Node) -> int:
    ops = node.stats()["op_stats"]["ops"]
    return ops.get("readdir", {}).get("count", 0)


def test_a_listing_shows_every_change_by_another_node_at_once(
        nodes: dict[str, Node], shared: str, outside: cephfs.LibCephFS) -> None:
    """`ls` twice is served by the kernel's cache the second time, yet never stale:
    creates, unlinks and renames by another node or an outside client show at once."""
    a, b = nodes["a"].root / shared, nodes["b"].root / shared
    for name in ("keep", "doomed", "moving"):
        (b / name).write_text(name)
    expected = {"keep", "doomed", "moving"}
    changes: list[tuple[Callable[[], None], Callable[[set[str]], set[str]]]] = [
        (lambda: (b / "new").write_text("new"), lambda names: names | {"new"}),
        (lambda: (b / "doomed").unlink(), lambda names: names - {"doomed"}),
        (lambda: (b / "moving").rename(b / "moved"),
         lambda names: names - {"moving"} | {"moved"}),
        (lambda: outside.mkdir(f"/{shared}/outside".encode(), 0o755),
         lambda names: names | {"outside"}),
    ]
    for change, effect in changes:
        assert set(os.listdir(a)) == expected
        assert set(os.listdir(a)) == expected  # this one may come from the kernel's cache
        change()
        expected = effect(expected)
        assert set(os.listdir(a)) == expected


def test_an_unchanged_listing_is_served_by_the_kernel(nodes: dict[str, Node],
                                                       shared: str) -> None:
    """Repeated listings of a directory nobody changes cost no requests.

    Not necessarily the second one: the kernel drops a cache whose mtime it doubts,
    and every callback from libcephfs about the directory (its caps settling after
    the creates) drops it too.
    """
    a = nodes["a"].root / shared
    for i in range(300):
        (a / f"entry-{i}").touch()
    first = sorted(os.listdir(a))
    free_listings = 0
    for _ in range(10):
        requests = listing_requests(nodes["a"])
        assert sorted(os.listdir(a)) == first
        free_listings += listing_requests(nodes["a"]) == requests
    assert free_listings >= 5
    assert sorted(os.listdir(nodes["strict"].root / shared)) == first


def test_a_directory_listed_and_statted_is_listed_afresh(nodes: dict[str, Node],
                                                         shared: str) -> None:
    """`ls -l` again gets a fresh READDIRPLUS, not the kernel's cached listing (whose
    stats would be LOOKUPs, mostly MDS round trips), though its stats are answered
    in C (the entries are this node's)."""
    a = nodes["a"].root / shared
    for i in range(40):
        (a / f"entry-{i}").touch()
    listed_sizes(a)
    for _ in range(3):
        requests = listing_requests(nodes["a"])
        listed_sizes(a)
        assert listing_requests(nodes["a"]) > requests


def test_ls_l_gets_the_attributes_of_entries_listed_next_in_batches(
        nodes: dict[str, Node], shared: str) -> None:
    """After a listing, one stat fetches the attributes of the entries listed next,
    whose stats are then answered in C: GETATTRs, or LOOKUPs where the kernel's
    entry from the listing expired (`entry_timeout`) before the stat came."""
    for i in range(200):
        (nodes["b"].root / shared / f"entry-{i}").touch()
    before = nodes["c"].stats()
    assert len(listed_sizes(nodes["c"].root / shared)) == 200
    after = nodes["c"].stats()
    in_c = sum(after[f"native_{op}s"] - before[f"native_{op}s"] for op in ("getattr", "lookup"))
    assert in_c >= 150
    assert in_python(after, "getattr") - in_python(before, "getattr") <= 50


def test_ls_l_is_answered_in_c_and_shows_every_change(
        nodes: dict[str, Node], shared: str) -> None:
    """A second `ls -l` asks nothing of Python per entry (GETATTR and the GETXATTR
    of `security.selinux` answered in C), and still shows sizes written on another
    node since the first."""
    a, b = nodes["a"].root / shared, nodes["b"].root / shared
    for i in range(100):
        (b / f"f{i}").write_bytes(b"x" * i)
    assert listed_sizes(a) == {f"f{i}": i for i in range(100)}
    for i in range(0, 100, 10):
        (b / f"f{i}").write_bytes(b"y" * (i + 1000))
    time.sleep(POLICIES[Coherence.DEFAULT].attr_timeout)  # the kernel's own cache of them
    before = nodes["a"].stats()
    listed = {name: (os.lstat(a / name).st_size, xattr_absent(a / name))
              for name in os.listdir(a)}
    after = nodes["a"].stats()
    assert listed == {f"f{i}": (i + 1000 if i % 10 == 0 else i, True) for i in range(100)}
    def native(stats: dict, *ops: str) -> int:
        return sum(stats[f"native_{op}s"] for op in ops)

    # Each stat is a GETATTR, or a LOOKUP with the attributes when the kernel served
    # the listing from its cache: answered in C either way, as is each GETXATTR.
    assert native(after, "getattr", "lookup") - native(before, "getattr", "lookup") >= 100
    assert native(after, "getxattr") - native(before, "getxattr") >= 100
    for op in ("getattr", "getxattr", "lookup"):
        # Python's: the directories' own (the path walks) and the stats reads'
        assert in_python(after, op) - in_python(before, op) <= 4


def in_python(stats: dict, op: str) -> int:
    """Requests of `op` answered in Python (`op_stats` counts those answered in C too)."""
    return int(stats["op_stats"]["ops"].get(op, {}).get("count", 0) - stats[f"native_{op}s"])


def xattr_absent(path: Path) -> bool:
    """What `ls -l` asks of each entry: its security label (none here)."""
    try:
        os.getxattr(path, "security.selinux", follow_symlinks=False)
    except OSError as exc:
        return exc.errno == errno.ENODATA
    return False


def test_large_listings_read_their_next_names_ahead_and_lose_nothing(
        nodes: dict[str, Node], shared: str) -> None:
    """Two listings of a 3,000-entry directory, interleaved on one node: each gets
    every name once, its next names read while the kernel took the last reply."""
    a = nodes["a"].root / shared
    names = {f"entry-{i:05d}" for i in range(3000)}
    for name in names:
        (a / name).touch()
    before = nodes["a"].stats()["names_read_ahead"]
    with os.scandir(a) as first, os.scandir(a) as second:
        listed: tuple[list[str], list[str]] = ([], [])
        for one, other in itertools.zip_longest(first, second):
            for seen, entry in zip(listed, (one, other), strict=True):
                if entry is not None:
                    seen.append(entry.name)
    for seen in listed:
        assert len(seen) == len(names) and set(seen) == names
    assert nodes["a"].stats()["names_read_ahead"] - before >= 2


# struct vfs_cap_data, revision 2: CAP_NET_BIND_SERVICE (10) permitted, effective.
FILE_CAPABILITY = (0x02000000 | 1).to_bytes(4, "little") + (1 << 10).to_bytes(4, "little") \
    + bytes(12)


def append(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"#")


CHANGES: dict[str, Callable[[int, Path], object]] = {
    "write": lambda fd, path: os.pwrite(fd, b"#", 0),
    "truncate": lambda fd, path: os.ftruncate(fd, 5),
    "allocate": lambda fd, path: os.posix_fallocate(fd, 0, 8192),
    "append": lambda fd, path: append(path),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("writer", ["a", "strict"])
def test_a_change_strips_capabilities_set_on_another_node(nodes: dict[str, Node], shared: str,
                                                          writer: str, change: str) -> None:
    """A changed file loses its file capabilities, as on ceph-fuse.

    Also when they were set on another node after this writer opened the file and
    learnt it had none: else anyone who may write a file could change a privileged
    program and keep its privileges. Strict mode writes past the page cache, where
    the kernel never looks for them.
    """
    here, there = nodes[writer].root / shared / "prog", nodes["b"].root / shared / "prog"
    here.write_bytes(b"#!/bin/true\n")
    fd = os.open(here, os.O_WRONLY)
    try:
        for trial in range(5):
            os.pwrite(fd, b"#", 0)  # the writer learns the file has no capabilities
            os.setxattr(there, "security.capability", FILE_CAPABILITY)
            CHANGES[change](fd, here)
            with pytest.raises(OSError) as absent:
                os.getxattr(there, "security.capability")
            assert absent.value.errno == errno.ENODATA, f"trial {trial}: not stripped"
    finally:
        os.close(fd)


def test_capabilities_read_back_where_they_were_set(nodes: dict[str, Node],
                                                    shared: str) -> None:
    """The kernel's asks before writes leave `getcap` on the setting node right."""
    path = nodes["a"].root / shared / "prog"
    path.write_bytes(b"#!/bin/true\n")
    with open(path, "r+b") as f:
        os.pwrite(f.fileno(), b"#", 0)
        os.setxattr(path, "security.capability", FILE_CAPABILITY)
        assert os.getxattr(path, "security.capability") == FILE_CAPABILITY
        os.pwrite(f.fileno(), b"#", 0)
    with pytest.raises(OSError) as absent:
        os.getxattr(path, "security.capability")
    assert absent.value.errno == errno.ENODATA


def test_a_new_file_is_written_without_a_thread_hop_for_capabilities(
        nodes: dict[str, Node], shared: str) -> None:
    """The kernel's ask before a new file's first write is answered in C."""
    before = nodes["a"].stats()
    for i in range(20):
        (nodes["a"].root / shared / f"new-{i}").write_bytes(b"x" * 4096)
    after = nodes["a"].stats()
    assert after["native_getxattrs"] - before["native_getxattrs"] >= 20
    assert after["native_getxattr_fallbacks"] == before["native_getxattr_fallbacks"]


def mmap_round_trip(path: Path, flags: int, prot: int) -> bytes:
    """Map a file, change it through the map if shared, and read back with read(2)."""
    path.write_bytes(b"a" * 8192)
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 8192, flags=flags, prot=prot) as mapped:
        if flags == mmap.MAP_SHARED:
            mapped[4096:4100] = b"bbbb"
            mapped.flush()
        assert mapped[:4] == b"aaaa"
    return path.read_bytes()[4096:4100]


def test_mmap_in_every_mode(nodes: dict[str, Node], shared: str) -> None:
    """Programs map files: shared maps through the page cache, private ones in strict mode.

    Strict mode bypasses the page cache (direct_io), and the kernel refuses a
    MAP_SHARED map of such a file with ENODEV: docs/cache-and-coherence.md says so.
    """
    shared_map = (mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    private_map = (mmap.MAP_PRIVATE, mmap.PROT_READ)
    assert mmap_round_trip(nodes["a"].root / shared / "m", *shared_map) == b"bbbb"
    assert mmap_round_trip(nodes["strict"].root / shared / "p", *private_map) == b"aaaa"


def test_cache_size_zero_reads_straight_from_libcephfs(nodes: dict[str, Node],
                                                       shared: str) -> None:
    """cache_size=0 keeps no data blocks and fetches none: reads go to libcephfs as they are."""
    data = os.urandom(6 << 20)
    (nodes["a"].root / shared / "f").write_bytes(data)
    nocache = nodes["nocache"]
    before = nocache.stats()
    with open(nocache.root / shared / "f", "rb") as f:
        f.seek(5000)
        assert f.read(100_000) == data[5000:105_000]
        f.seek(0)
        assert f.read() == data
    after = nocache.stats()
    assert after["cache_limit"] == after["cache_bytes"] == 0
    assert after["bytes_fetched"] == before["bytes_fetched"]
    assert after["misses"] == before["misses"]


def test_writes_and_reads_answered_in_c_keep_every_byte(nodes: dict[str, Node],
                                                        shared: str) -> None:
    """Random 4 KiB writes and reads of a file open for writing: all but the first writes
    of a handle (and the kernel's asks around them) are answered in C (native
    handlers), and read back right, here and on another node; strict mode's reads are
    too."""
    size, rounds = 1 << 20, 400
    model = bytearray(os.urandom(size))
    path = nodes["a"].root / shared / "native"
    path.write_bytes(model)
    before = {name: nodes[name].stats() for name in ("a", "strict")}
    rng = random.Random(7)
    fd = os.open(path, os.O_RDWR)
    try:
        for _ in range(rounds):
            offset = rng.randrange(0, size - 4096)
            data = os.urandom(4096)
            assert os.pwrite(fd, data, offset) == 4096
            model[offset:offset + 4096] = data
            offset = rng.randrange(0, size - 4096)
            assert os.pread(fd, 4096, offset) == model[offset:offset + 4096]
    finally:
        os.close(fd)
    strict_copy = nodes["strict"].root / shared / "native"
    with open(strict_copy, "rb") as f:
        assert f.read() == model
    assert (nodes["b"].root / shared / "native").read_bytes() == model
    after = {name: nodes[name].stats() for name in ("a", "strict")}
    in_c = rounds - WRITES_BEFORE_NATIVE
    assert after["a"]["native_writes"] - before["a"]["native_writes"] >= in_c
    asks = {key: after["a"][key] - before["a"][key]
            for key in ("native_getxattrs", "native_getxattr_fallbacks")}
    assert asks["native_getxattrs"] >= in_c, asks  # a shortfall: handed back, or never in C
    assert after["a"]["native_getattrs"] > before["a"]["native_getattrs"]
    assert after["strict"]["native_reads"] > before["strict"]["native_reads"]
    assert after["a"]["native_handles"] == 0


def test_a_new_files_writes_are_answered_in_c_from_the_first(nodes: dict[str, Node],
                                                             shared: str) -> None:
    """A file CREATE made is written natively from its first write (a small file's
    create and write), and shows its size and data here and on another node."""
    before = nodes["a"].stats()
    written = {n: os.urandom(4096) for n in range(20)}
    for n, data in written.items():
        fd = os.open(nodes["a"].root / shared / f"new-{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                     0o644)
        try:
            assert os.write(fd, data) == 4096
        finally:
            os.close(fd)
        assert os.stat(nodes["a"].root / shared / f"new-{n}").st_size == 4096
    after = nodes["a"].stats()
    assert after["native_writes"] - before["native_writes"] == len(written)
    assert after["native_write_fallbacks"] == before["native_write_fallbacks"]
    for n, data in written.items():
        assert (nodes["a"].root / shared / f"new-{n}").read_bytes() == data
        assert (nodes["b"].root / shared / f"new-{n}").read_bytes() == data


def test_closes_are_answered_in_c_unless_the_file_has_lock_owners(nodes: dict[str, Node],
                                                                 shared: str) -> None:
    """A close (FLUSH) has nothing to write back or unlock: answered on the reading
    thread, for readers and writers alike; while the file has lock owners, every
    close goes to Python, which gives up the closing process's locks."""
    path = nodes["a"].root / shared / "closes"
    path.write_bytes(b"x")

    def flushes() -> tuple[int, int]:
        stats = nodes["a"].stats()
        return stats["native_flushes"], stats["native_flush_fallbacks"]

    answered, handed_on = flushes()
    for _ in range(10):
        with open(path, "rb") as reader:
            reader.read()
        with open(path, "r+b") as writer:
            writer.write(b"y")
    assert flushes() == (answered + 20, handed_on)
    locker = os.open(path, os.O_RDWR)
    other = os.open(path, os.O_RDONLY)  # opened before the lock was taken
    fcntl.lockf(locker, fcntl.LOCK_EX)
    os.close(other)  # POSIX: the process's lock goes with it, given up in Python
    assert flushes() == (answered + 20, handed_on + 1)
    os.close(locker)  # the file has no lock owner left
    with open(path, "rb") as reader:
        reader.read()
    assert flushes() == (answered + 22, handed_on + 1)


def test_a_reader_sees_this_nodes_writes_answered_in_c_after_the_writer_closes(
        nodes: dict[str, Node], shared: str) -> None:
    """Blocks cached before a writer's native writes are dropped when it stops, at
    once, not at the next check of the file's change counter."""
    path = nodes["a"].root / shared / "reread"
    half = 4 << 20  # a block of its own (the blocks are at most an object)
    old, new = os.urandom(2 * half), os.urandom(half)
    path.write_bytes(old)
    reader = os.open(path, os.O_RDONLY | os.O_DIRECT)  # every read reaches the mount
    try:
        assert os.pread(reader, half, half) == old[half:]  # into our block cache
        handles = nodes["a"].stats()["open_handles"]
        with open(path, "r+b", buffering=0) as writer:
            writer.write(b"x")  # through Python: drops only the first half's blocks
            writer.seek(half)
            for offset in range(0, half, 64 << 10):
                writer.write(new[offset:offset + (64 << 10)])  # answered in C
        # The kernel releases the writer after close returns; until then our reads skip
        # the block cache.
        assert wait_for(lambda: nodes["a"].stats()["open_handles"] == handles, 10) < 10
        assert os.pread(reader, half, half) == new
    finally:
        os.close(reader)
