"""Read the fio job files in bench/jobs for the direct libcephfs runner.

fio itself runs these files on the FUSE targets. The direct runner has no fio,
so it reads the same files with the same environment and executes the subset
of fio options they use (bench/direct.py). An option outside that subset is an
error, never silently ignored: the two can only measure the same thing while
the runner understands every line of the job.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

JOBS_DIR = Path(__file__).with_name("jobs")

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SIZE = re.compile(r"^(\d+)([kmgt]?)i?b?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

# Options that act on the kernel page cache or on file layout through the VFS;
# they have no meaning for libcephfs called directly, and their values in our
# job files (fallocate=none, invalidate=0) already ask fio to do nothing.
NOT_APPLICABLE = frozenset({"fallocate", "invalidate"})


class JobFileError(Exception):
    """A job file cannot be read, or uses an option the direct runner lacks."""


@dataclass(frozen=True)
class Job:
    """One section of a job file, merged with [global], with ${VARS} expanded."""

    name: str
    options: Mapping[str, str]

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def size(self, key: str, default: int = 0) -> int:
        value = self.options.get(key)
        return default if value is None else parse_size(value)

    def integer(self, key: str, default: int = 0) -> int:
        value = self.options.get(key)
        return default if value is None else int(value)

    def flag(self, key: str) -> bool:
        """fio's boolean options: present without a value, or a non-zero value."""
        value = self.options.get(key)
        return value is not None and value.strip() not in ("0", "false")


def parse_size(text: str) -> int:
    """fio's sizes with kb_base=1024: 4k, 1M, 128m, 1073741824."""
    match = _SIZE.match(text.strip())
    if not match:
        raise JobFileError(f"not a size: {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Replace ${NAME} as fio does, from `env` then the process environment."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = env.get(name, os.environ.get(name))
        if found is None:
            raise JobFileError(f"${{{name}}} is not set")
        return found

    return _ENV_REF.sub(value, text)


def _read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        allow_no_value=True, delimiters=("=",), comment_prefixes=(";", "#"),
        interpolation=None, default_section="global")
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(path.read_text(), source=str(path))
    except (OSError, configparser.Error) as exc:
        raise JobFileError(f"{path}: {exc}") from exc
    return parser


def load(path: Path, section: str, env: Mapping[str, str]) -> Job:
    """The options of `section` in the job file `path`, as fio would see them."""
    parser = _read(path)
    if not parser.has_section(section):
        raise JobFileError(f"{path} has no section [{section}]")
    options = {key: expand(value or "1", env) for key, value in parser.items(section)}
    return Job(name=section, options=options)
