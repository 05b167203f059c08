"""The bench's fio jobs executed through libcephfs directly: no FUSE, no kernel.

One process is one libcephfs client, as one ceph-fuse process is. bench starts
N of them with subprocess (never fork after a libcephfs mount) and talks to each
over JSON lines: the process mounts, writes {"ready": ...}, then answers one
line per request line on stdin until {"op": "exit"}:

    {"op": "job", "file": F, "section": S, "env": {...}}   run a fio job section
    {"op": "ls", "dir": D, "stat": True}                    `ls -l`: readdir + lstat
                                                            (`ls -f`, readdir only, if false)
    {"op": "mkfiles", "path": P, "count": C}                the dir P with C empty files
    {"op": "rmtree" | "mkdirs", "path": P}                  layout, for bench itself
    {"op": "fill", "path": P, "size": B}                    write B bytes, fsync
    {"op": "quota", "path": P}                              ceph.quota.max_bytes

Jobs are read from the same job files fio runs (bench/jobfile.py) and executed
the way fio's psync engine does: one synchronous call per block, one thread,
the same file names, sizes, block sizes, access order rules, run times and
end_fsync. Results come back in fio's JSON shape (bench/fiojson.py).
"""

from __future__ import annotations

import argparse
import errno
import itertools
import json
import os
import random
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import cephfs

from bench.fiojson import FioJob, make_job
from bench.jobfile import NOT_APPLICABLE, Job, JobFileError, load

BUFFER = os.urandom(1 << 20)  # like fio: one random buffer, reused for every write
SUPPORTED = NOT_APPLICABLE | {
    "ioengine", "directory", "filename", "filename_format", "nrfiles", "filesize", "openfiles",
    "size", "bs", "rw", "rwmixread", "runtime", "time_based", "end_fsync", "unlink",
    "randseed", "randrepeat", "verify", "do_verify", "verify_only", "create_on_open",
    "file_service_type", "stat_type",
}
REQUIRED_VALUES = {
    "ioengine": {"psync", "filestat", "filedelete"},
    "rw": {"read", "write", "randread", "randwrite", "randrw"},
    "verify": {"crc32c"},
    "file_service_type": {"sequential"},
    "stat_type": {"stat"},
    "openfiles": {"1"},
    "fallocate": {"none"},
    "invalidate": {"0"},
}
WRITES = {"write", "randwrite", "randrw"}
RANDOM = {"randread", "randwrite", "randrw"}


def check_supported(job: Job) -> None:
    unknown = sorted(set(job.options) - SUPPORTED)
    if unknown:
        raise JobFileError(f"[{job.name}]: the direct runner does not implement {unknown}")
    for key, allowed in REQUIRED_VALUES.items():
        value = job.get(key)
        if value is not None and value not in allowed:
            raise JobFileError(f"[{job.name}]: {key}={value} is not implemented (only {allowed})")


def _join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}"


def _deadline(job: Job) -> float:
    runtime = job.integer("runtime")
    return time.monotonic() + runtime if runtime else float("inf")


# -- data jobs (one file) ------------------------------------------------------------------

def block_order(job: Job, blocks: int) -> Iterator[int]:
    """Block numbers in fio's order: sequential, or every block once per pass in a
    random order (fio's random map); passes repeat while time_based runs."""
    rng = random.Random(job.integer("randseed", 0x89))
    passes = itertools.count() if job.flag("time_based") else range(1)
    for _ in passes:
        order = list(range(blocks))
        if job.get("rw") in RANDOM:
            rng.shuffle(order)
        yield from order


def verify_block(offset: int, size: int) -> bytes:
    """Stand-in for fio's verify header: a body derived from the offset + its crc32."""
    body = random.Random(offset).randbytes(size - 4)
    return body + zlib.crc32(body).to_bytes(4, "little")


class Engine:
    """Runs job sections through one mounted libcephfs client."""

    def __init__(self, fs: cephfs.LibCephFS) -> None:
        self.fs = fs

    def run(self, job: Job) -> FioJob:
        check_supported(job)
        engine = job.get("ioengine", "psync")
        if engine == "filestat":
            return self._each_file(job, self.fs.stat)
        if engine == "filedelete":
            return self._each_file(job, self.fs.unlink)
        if job.integer("nrfiles", 1) > 1:
            return self._create_files(job)
        return self._data(job)

    def _data(self, job: Job) -> FioJob:
        rw = job.get("rw", "read") or "read"
        bs, size = job.size("bs", 4096), job.size("size")
        path = _join(job.get("directory", "/") or "/", job.get("filename") or job.name)
        verify_only = job.flag("verify_only")
        writes = rw in WRITES and not verify_only
        fd = self.fs.open(path, os.O_RDWR | os.O_CREAT if writes else os.O_RDONLY, 0o644)
        try:
            return self._transfer(job, fd, bs, size, writes)
        finally:
            self.fs.close(fd)
            if job.flag("unlink"):
                self.fs.unlink(path)

    def _transfer(self, job: Job, fd: int, bs: int, size: int, writes: bool) -> FioJob:
        rw = job.get("rw", "read")
        mix = random.Random(job.integer("randseed", 0x89) + 1)
        read_share = job.integer("rwmixread", 50) if rw == "randrw" else (0 if writes else 100)
        verify = job.get("verify") is not None
        counts = {"read": [0, 0], "write": [0, 0]}
        mismatches = 0
        deadline, start = _deadline(job), time.monotonic()
        for block in block_order(job, size // bs):
            if time.monotonic() >= deadline:
                break
            offset = block * bs
            if mix.random() * 100 < read_share:
                data = self.fs.read(fd, offset, bs)
                if verify and data != verify_block(offset, bs):
                    mismatches += 1
                counts["read"][0] += 1
                counts["read"][1] += len(data)
            else:
                self.fs.write(fd, verify_block(offset, bs) if verify else BUFFER[:bs], offset)
                counts["write"][0] += 1
                counts["write"][1] += bs
        if job.flag("end_fsync") and counts["write"][0]:
            self.fs.fsync(fd, 0)
        seconds = time.monotonic() - start
        message = f"{mismatches} blocks failed verification" if mismatches else ""
        return make_job(job.name, seconds, read=tuple(counts["read"]),  # type: ignore[arg-type]
                        write=tuple(counts["write"]),  # type: ignore[arg-type]
                        error=errno.EILSEQ if mismatches else 0, message=message)

    # -- many small files --------------------------------------------------------------------

    def _file_names(self, job: Job) -> Iterator[str]:
        fmt = job.get("filename_format", "$jobname.$jobnum.$filenum") or ""
        if re.search(r"\$(?!filenum)", fmt):
            raise JobFileError(f"[{job.name}]: filename_format={fmt}: only $filenum is implemented")
        directory = job.get("directory", "/") or "/"
        for number in range(job.integer("nrfiles", 1)):
            yield _join(directory, fmt.replace("$filenum", str(number)))

    def _create_files(self, job: Job) -> FioJob:
        bs, filesize = job.size("bs", 4096), job.size("filesize")
        ios = 0
        deadline, start = _deadline(job), time.monotonic()
        for path in self._file_names(job):
            if time.monotonic() >= deadline:
                break
            fd = self.fs.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            for offset in range(0, filesize, bs):
                self.fs.write(fd, BUFFER[:bs], offset)
                ios += 1
            self.fs.close(fd)
        return make_job(job.name, time.monotonic() - start, write=(ios, ios * bs))

    def _each_file(self, job: Job, call: Callable[[str], object]) -> FioJob:
        """filestat/filedelete: one call per file, counted as fio does (a read of filesize)."""
        count, filesize = 0, job.size("filesize")
        deadline, start = _deadline(job), time.monotonic()
        for path in self._file_names(job):
            if time.monotonic() >= deadline:
                break
            call(path)
            count += 1
        return make_job(job.name, time.monotonic() - start, read=(count, count * filesize))

    # -- bench's own steps -------------------------------------------------------------------

    def list_dir(self, directory: str, stat: bool) -> FioJob:
        """`ls -l` (read the directory, lstat every entry) or, without `stat`, `ls -f`;
        one io per entry."""
        start, entries = time.monotonic(), 0
        handle = self.fs.opendir(directory)
        try:
            while (entry := self.fs.readdir(handle)) is not None:
                name = entry.d_name.decode()
                if name not in (".", ".."):
                    if stat:
                        self.fs.lstat(_join(directory, name))
                    entries += 1
        finally:
            self.fs.closedir(handle)
        return make_job("ls", time.monotonic() - start, read=(entries, 0))

    def rmtree(self, path: str) -> None:
        try:
            handle = self.fs.opendir(path)
        except cephfs.ObjectNotFound:
            return
        except cephfs.NotDirectory:
            self.fs.unlink(path)
            return
        try:
            names = []
            while (entry := self.fs.readdir(handle)) is not None:
                if entry.d_name not in (b".", b".."):
                    names.append((entry.d_name.decode(), entry.is_dir()))
        finally:
            self.fs.closedir(handle)
        for name, is_dir in names:
            child = _join(path, name)
            self.rmtree(child) if is_dir else self.fs.unlink(child)
        self.fs.rmdir(path)

    def make_files(self, directory: str, count: int) -> None:
        self.fs.mkdirs(directory, 0o755)
        for number in range(count):
            self.fs.close(self.fs.open(_join(directory, f"f{number:07d}"),
                                       os.O_WRONLY | os.O_CREAT, 0o644))

    def fill(self, path: str, size: int) -> None:
        fd = self.fs.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for offset in range(0, size, len(BUFFER)):
                self.fs.write(fd, BUFFER[: min(len(BUFFER), size - offset)], offset)
            self.fs.fsync(fd, 0)
        finally:
            self.fs.close(fd)

    def quota(self, path: str) -> int | None:
        try:
            value = int(self.fs.getxattr(path, "ceph.quota.max_bytes"))
        except cephfs.Error:
            return None
        return value or None


def handle(engine: Engine, request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "job":
        job = load(Path(request["file"]), request["section"], request.get("env", {}))
        return {"job": engine.run(job)}
    if op == "ls":
        return {"job": engine.list_dir(request["dir"], bool(request.get("stat", True)))}
    if op == "rmtree":
        engine.rmtree(request["path"])
    elif op == "mkdirs":
        engine.fs.mkdirs(request["path"], 0o755)
    elif op == "mkfiles":
        engine.make_files(request["path"], int(request["count"]))
    elif op == "fill":
        engine.fill(request["path"], int(request["size"]))
    elif op == "quota":
        return {"quota": engine.quota(request["path"])}
    else:
        raise ValueError(f"unknown op {op!r}")
    return {"ok": True}


def serve(engine: Engine, requests: TextIO, replies: TextIO) -> None:
    for line in requests:
        request = json.loads(line)
        if request.get("op") == "exit":
            return
        try:
            reply = handle(engine, request)
        except (cephfs.Error, JobFileError, OSError, ValueError) as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def mount(args: argparse.Namespace) -> cephfs.LibCephFS:
    fs = cephfs.LibCephFS(conffile=args.conf, auth_id=args.id,
                          conf={"keyring": args.keyring, "client_mount_timeout": "30"})
    fs.mount(filesystem_name=args.fs_name.encode(), mount_root=args.root.encode())
    return fs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.direct", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for option in ("--conf", "--id", "--keyring", "--fs-name", "--root"):
        parser.add_argument(option, required=True)
    args = parser.parse_args(argv)
    # Replies get their own descriptor; anything libcephfs prints goes to stderr.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    fs = mount(args)
    try:
        version = ".".join(map(str, fs.version()))
        replies.write(json.dumps({"ready": True, "pid": os.getpid(), "libcephfs": version}) + "\n")
        replies.flush()
        serve(Engine(fs), sys.stdin, replies)
    finally:
        fs.unmount()
        fs.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
