"""`CephClient.append` from separate clients: no append overwrites another.

Each writer is its own process with its own libcephfs client, as another
node would be (processes are spawned: a process with a mount must not fork).
Every line names its writer and sequence number and has a length of its own,
so a lost, duplicated or half-overwritten line shows. `append_at_cached_size`
does what FUSE's kernel side does with O_APPEND; the control test shows that
it loses lines, so a passing append test means something.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from cephmount.ceph.aio import AsyncCephClient
from cephmount.ceph.client import CephClient
from cephmount.ceph.errors import CephError
from cephmount.ceph.structs import ROOT, FileHandle, Inode
from cephmount.devcluster import ClientEnv
from tests.conftest import mounted_client

pytestmark = pytest.mark.cluster

LINES_PER_WRITER = 500
OWNER = 0x617070
WAIT_S = 240.0


def line(writer: int, seq: int) -> bytes:
    """Line `seq` of `writer`: 11 to 107 bytes, the length varying with both."""
    return b"w%d #%04d %s|\n" % (writer, seq, b"." * ((seq * 37 + writer * 11) % 97))


def append_at_cached_size(client: CephClient, fh: FileHandle, inode: Inode, data: bytes) -> int:
    """The hazard: write at the size this client believes, unlocked, as FUSE does."""
    offset = client.getattr(inode, ROOT).size
    client.write(fh, offset, data)
    return offset


@dataclass(frozen=True)
class Tally:
    """How a file's lines compare with the lines written."""

    missing: int
    duplicated: int
    garbled: int


def tally(content: bytes, expected: set[bytes]) -> Tally:
    counts = Counter(content.splitlines(keepends=True))
    return Tally(
        missing=len(expected - counts.keys()),
        duplicated=sum(n - 1 for text, n in counts.items() if text in expected and n > 1),
        garbled=sum(n for text, n in counts.items() if text not in expected),
    )


@dataclass(frozen=True)
class WriterResult:
    writer: int
    offsets: list[int]
    seconds: list[float]
    digest: str
    """sha256 of the whole file as this writer's client reads it after all writers."""


def _read_all(client: CephClient, fh: FileHandle) -> bytes:
    chunks = []
    while chunk := client.read(fh, sum(map(len, chunks)), 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _writer(env: ClientEnv, path: tuple[bytes, bytes], writer: int, locked: bool,
            barriers: tuple[Any, Any], results: Any) -> None:
    """A writer process: append its lines once all have mounted, then read the file."""
    try:
        results.put(_write_lines(env, path, writer, locked, barriers))
    except BaseException as exc:
        for barrier in barriers:
            barrier.abort()
        results.put(exc)


def _write_lines(env: ClientEnv, path: tuple[bytes, bytes], writer: int, locked: bool,
                 barriers: tuple[Any, Any]) -> WriterResult:
    start, finish = barriers
    with mounted_client(env) as client:
        root = client.root()
        directory, _ = client.lookup(root, path[0], ROOT)
        inode, _ = client.lookup(directory, path[1], ROOT)
        fh = client.open(inode, os.O_RDWR | os.O_APPEND, ROOT)
        offsets, seconds = [], []
        start.wait(WAIT_S)
        for seq in range(LINES_PER_WRITER):
            data = line(writer, seq)
            began = time.perf_counter()
            if locked:
                offsets.append(client.append(fh, data, OWNER))
            else:
                offsets.append(append_at_cached_size(client, fh, inode, data))
            seconds.append(time.perf_counter() - began)
        client.fsync(fh)
        finish.wait(WAIT_S)
        digest = hashlib.sha256(_read_all(client, fh)).hexdigest()
        client.release(fh)
        for held in (inode, directory, root):
            client.put(held)
    return WriterResult(writer, offsets, seconds, digest)


def run_writers(env: ClientEnv, path: tuple[bytes, bytes], writers: int,
                locked: bool) -> list[WriterResult]:
    """Run `writers` writer processes at once; their results, by writer."""
    ctx = multiprocessing.get_context("spawn")
    barriers = (ctx.Barrier(writers), ctx.Barrier(writers))
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_writer, args=(env, path, writer, locked, barriers, results))
        for writer in range(writers)
    ]
    for process in processes:
        process.start()
    try:
        got = [results.get(timeout=WAIT_S) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
    for result in got:
        if isinstance(result, BaseException):
            raise result
    return sorted(got, key=lambda result: result.writer)


@pytest.fixture
def client(client_env: ClientEnv) -> Iterator[CephClient]:
    with mounted_client(client_env) as client:
        yield client


@pytest.fixture
def shared_file(client: CephClient) -> Iterator[tuple[bytes, bytes]]:
    """An empty file in a fresh directory: (directory name, file name)."""
    root = client.root()
    dirname = f"app-{uuid.uuid4().hex[:12]}".encode()
    directory, _ = client.mkdir(root, dirname, 0o777, ROOT)
    inode, _, fh = client.create(directory, b"log", 0o666, os.O_WRONLY, ROOT)
    client.release(fh)
    client.put(inode)
    yield dirname, b"log"
    client.unlink(directory, b"log", ROOT)
    client.put(directory)
    client.rmdir(root, dirname, ROOT)
    client.put(root)


def _content(client: CephClient, path: tuple[bytes, bytes]) -> bytes:
    root = client.root()
    directory, _ = client.lookup(root, path[0], ROOT)
    inode, _ = client.lookup(directory, path[1], ROOT)
    fh = client.open(inode, os.O_RDONLY, ROOT)
    try:
        return _read_all(client, fh)
    finally:
        client.release(fh)
        for held in (inode, directory, root):
            client.put(held)


def _expected(writers: int) -> set[bytes]:
    return {line(writer, seq) for writer in range(writers) for seq in range(LINES_PER_WRITER)}


def _percentile(values: list[float], fraction: float) -> float:
    return sorted(values)[min(len(values) - 1, int(fraction * len(values)))]


@pytest.mark.parametrize("writers", [1, 2, 3])
def test_appends_from_separate_clients_never_overwrite(
    client: CephClient, client_env: ClientEnv, shared_file: tuple[bytes, bytes], writers: int,
    record_property: Any,
) -> None:
    results = run_writers(client_env, shared_file, writers, locked=True)
    content = _content(client, shared_file)
    assert tally(content, _expected(writers)) == Tally(0, 0, 0)
    assert len(content) == sum(map(len, _expected(writers)))
    for result in results:
        for seq, offset in enumerate(result.offsets):
            data = line(result.writer, seq)
            assert content[offset:offset + len(data)] == data
    assert {result.digest for result in results} == {hashlib.sha256(content).hexdigest()}
    seconds = [s for result in results for s in result.seconds]
    median_ms = statistics.median(seconds) * 1000
    p99_ms = _percentile(seconds, 0.99) * 1000
    record_property("append_ms", {"median": median_ms, "p99": p99_ms})
    print(f"\n{writers} writer(s): append median {median_ms:.2f} ms, p99 {p99_ms:.2f} ms")


def test_appends_at_the_cached_size_lose_lines(
    client: CephClient, client_env: ClientEnv, shared_file: tuple[bytes, bytes],
) -> None:
    """The control: without `append`, two clients overwrite each other's lines."""
    run_writers(client_env, shared_file, 2, locked=False)
    lost = tally(_content(client, shared_file), _expected(2))
    print(f"\nunlocked appends, 2 writers: {lost}")
    assert lost.missing + lost.garbled > 0


def test_appends_from_threads_of_one_client(
    client: CephClient, shared_file: tuple[bytes, bytes],
) -> None:
    """One owner, many threads: the client serialises them itself."""
    root = client.root()
    directory, _ = client.lookup(root, shared_file[0], ROOT)
    inode, _ = client.lookup(directory, shared_file[1], ROOT)
    handles = [client.open(inode, os.O_WRONLY | os.O_APPEND, ROOT) for _ in range(4)]

    def append_lines(writer: int) -> None:
        for seq in range(LINES_PER_WRITER // 5):
            client.append(handles[writer], line(writer, seq), OWNER)

    threads = [threading.Thread(target=append_lines, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for fh in handles:
        client.release(fh)
    for held in (inode, directory, root):
        client.put(held)
    expected = {line(w, seq) for w in range(4) for seq in range(LINES_PER_WRITER // 5)}
    assert tally(_content(client, shared_file), expected) == Tally(0, 0, 0)


def test_failed_append_releases_the_lock(
    client: CephClient, client_env: ClientEnv, shared_file: tuple[bytes, bytes],
) -> None:
    root = client.root()
    directory, _ = client.lookup(root, shared_file[0], ROOT)
    inode, _ = client.lookup(directory, shared_file[1], ROOT)
    reader = client.open(inode, os.O_RDONLY, ROOT)
    with pytest.raises(CephError) as failure:
        client.append(reader, b"not for a read-only handle\n", OWNER)
    assert failure.value.op == "ll_write"
    client.release(reader)
    with mounted_client(client_env) as other:
        other_root = other.root()
        other_dir, _ = other.lookup(other_root, shared_file[0], ROOT)
        other_inode, _ = other.lookup(other_dir, shared_file[1], ROOT)
        fh = other.open(other_inode, os.O_WRONLY | os.O_APPEND, ROOT)
        done = threading.Event()
        worker = threading.Thread(target=lambda: (other.append(fh, b"x\n", OWNER), done.set()))
        worker.start()
        assert done.wait(20), "the failed append left its lock behind"
        worker.join()
        other.release(fh)
        for held in (other_inode, other_dir, other_root):
            other.put(held)
    for held in (inode, directory, root):
        client.put(held)
    assert _content(client, shared_file) == b"x\n"


async def test_async_append(
    client: CephClient, client_env: ClientEnv, shared_file: tuple[bytes, bytes],
) -> None:
    async with await AsyncCephClient.connect(
        str(client_env.conf), client_env.client_id, client_env.subvolume_path,
        keyring=str(client_env.keyring),
    ) as aclient:
        root = await aclient.root()
        directory, _ = await aclient.lookup(root, shared_file[0], ROOT)
        inode, _ = await aclient.lookup(directory, shared_file[1], ROOT)
        fh = await aclient.open(inode, os.O_WRONLY | os.O_APPEND, ROOT)
        placed: dict[int, bytes] = {}

        async def one(seq: int) -> None:
            data = line(0, seq)
            placed[await aclient.append(fh, data, OWNER)] = data

        async with trio.open_nursery() as nursery:
            for seq in range(20):
                nursery.start_soon(one, seq)
        await aclient.release(fh)
        for held in (inode, directory, root):
            await aclient.put(held)
    content = _content(client, shared_file)
    assert len(placed) == 20 and sum(map(len, placed.values())) == len(content)
    assert all(content[offset:offset + len(data)] == data for offset, data in placed.items())
