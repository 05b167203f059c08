"""Which commit a run measured, and publishing its reports into docs/ only from that commit.

The figures in docs/bench/ stand for a commit: a run made from a tree with
uncommitted changes measured code nobody can check out again, so it may write
its reports under bench/results/ but never into docs/.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# results file in a run's directory -> where it is published, relative to the repo
PUBLISHED = {"results.md": "docs/bench/latest.md", "by_workload.png": "docs/bench/by_workload.png"}


class PublishError(Exception):
    """The reports cannot go into docs/; the message is one line for the user."""


def _git(repo: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, timeout=20,
                                check=False, cwd=repo)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def head_commit(repo: Path) -> str:
    """The full hash of the commit checked out in `repo`, or "unknown" outside git."""
    out = _git(repo, "rev-parse", "HEAD")
    return out.strip() if out else "unknown"


def uncommitted(repo: Path) -> list[str]:
    """Paths that differ from the commit: changed, staged or untracked (not ignored)."""
    out = _git(repo, "status", "--porcelain", "--untracked-files=all")
    if out is None:
        return ["(not a git work tree)"]
    return [line[3:] for line in out.splitlines() if line.strip()]


def is_under_docs(path: Path, repo: Path) -> bool:
    """Whether writing to `path` puts files into the repo's docs/."""
    return path.resolve().is_relative_to((repo / "docs").resolve())


def check_publishable(repo: Path) -> str:
    """The commit the reports may be published for; PublishError if the tree is dirty."""
    changed = uncommitted(repo)
    if changed:
        shown = ", ".join(changed[:3]) + (", ..." if len(changed) > 3 else "")
        raise PublishError(
            f"refusing to publish into docs/: {repo} has {len(changed)} uncommitted "
            f"change(s) ({shown}); commit them first (results under bench/results are "
            "written without --publish)")
    return head_commit(repo)


def publish_docs(run_dir: Path, measured: str, repo: Path) -> list[Path]:
    """Copy a run's reports into docs/bench/, if `repo` is still clean at `measured`."""
    current = check_publishable(repo)
    if current != measured:
        raise PublishError(f"refusing to publish into docs/: the run measured {measured[:12]} "
                           f"but {repo} is now at {current[:12]}")
    written = []
    for name, target in PUBLISHED.items():
        destination = repo / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run_dir / name, destination)
        written.append(destination)
    return written
