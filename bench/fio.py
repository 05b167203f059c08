"""Run one job file section with fio on several mounts at once, and `ls -l`."""

from __future__ import annotations

import errno
import json
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from bench.fiojson import FioJob, first_job, make_job
from bench.procs import start, stop, tail, wait_all

Env = Mapping[str, str]


def fio_version() -> str:
    try:
        out = subprocess.run(["fio", "--version"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except OSError:
        return "not installed"
    return out.strip()


def run_fio(job_file: Path, section: str, envs: Mapping[int, Env], work: Path,
            timeout: float) -> dict[int, FioJob]:
    """One fio process per client, all started before any is waited for."""
    work.mkdir(parents=True, exist_ok=True)
    outputs = {client: work / f"fio-{section}-{client}.json" for client in envs}
    processes = {}
    try:
        for client, env in envs.items():
            outputs[client].unlink(missing_ok=True)
            argv = ["fio", "--output-format=json", f"--output={outputs[client]}",
                    f"--section={section}", str(job_file)]
            # cwd: fio leaves its verify state files there.
            processes[client] = start(argv, work / f"fio-{section}-{client}.log", env=env,
                                      cwd=work)
        codes = wait_all(list(processes.values()), timeout)
    finally:
        for process in processes.values():
            stop(process)
    return {client: _result(section, outputs[client], code, work / f"fio-{section}-{client}.log")
            for client, code in zip(processes, codes, strict=True)}


def _result(section: str, output: Path, code: int | None, log: Path) -> FioJob:
    try:
        job = first_job(json.loads(output.read_text()))
    except (OSError, ValueError) as exc:
        job = make_job(section, 0, error=errno.EIO, message=f"no fio JSON ({exc})")
    if code != 0:
        reason = "timed out" if code is None else f"exit code {code}"
        job["error"] = job.get("error") or errno.EIO
        job["error_message"] = f"fio {reason}: {tail(log) or tail(output)}"
    return job


def run_ls(dirs: Mapping[int, str], option: str, timeout: float) -> dict[int, FioJob]:
    """`ls OPTION DIR` (-l or -f) on every client at once; one read io per entry listed."""
    results: dict[int, FioJob] = {}

    def list_one(client: int, directory: str) -> None:
        began = time.monotonic()
        try:
            done = subprocess.run(["ls", option, directory], capture_output=True, text=True,
                                  timeout=timeout, check=False, env={"LC_ALL": "C"})
        except subprocess.TimeoutExpired:
            results[client] = make_job("ls", timeout, error=errno.ETIMEDOUT, message="timed out")
            return
        seconds = time.monotonic() - began
        entries = sum(1 for line in done.stdout.splitlines()
                      if not line.startswith("total ") and line not in (".", ".."))
        results[client] = make_job("ls", seconds, read=(entries, 0), error=done.returncode,
                                   message=done.stderr.strip()[-300:])

    threads = [threading.Thread(target=list_one, args=item) for item in dirs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
