"""One line per job on stderr: which target, workload and N, elapsed time and ETA.

On a terminal the line appears when the job starts and is completed in place
with its figure when it ends; elsewhere (logs, CI) only the completed line.
The ETA scales the plan's estimate of what is left by how the run has gone so
far against that plan.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    def __init__(self, estimates: list[float], stream: TextIO = sys.stderr) -> None:
        self.estimates = estimates
        self.stream = stream
        self.live = stream.isatty()
        self.started = time.monotonic()
        self.done = 0
        self._line = ""

    def eta(self) -> float:
        planned_done = sum(self.estimates[: self.done])
        left = sum(self.estimates[self.done:])
        if planned_done <= 0:
            return left
        return left * (time.monotonic() - self.started) / planned_done

    def begin(self, target: str, workload: str, clients: int) -> None:
        total = len(self.estimates)
        self._line = (f"[{self.done + 1:>3}/{total}] {target:<17} {workload:<13} N={clients}")
        if self.live:
            self.stream.write(f"{self._line}  elapsed {_clock(self.elapsed())}  "
                              f"ETA {_clock(self.eta())} ...")
            self.stream.flush()

    def end(self, outcome: str) -> None:
        self.done += 1
        prefix = "\r\033[K" if self.live else ""
        self.stream.write(f"{prefix}{self._line}  {outcome:<28} elapsed "
                          f"{_clock(self.elapsed())}  ETA {_clock(self.eta())}\n")
        self.stream.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def note(self, text: str) -> None:
        self.stream.write(f"bench: {text}\n")
        self.stream.flush()
