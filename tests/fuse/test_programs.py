"""Real programs on a cephmount mount: git, tar, rsync, sqlite3."""

from __future__ import annotations

import filecmp
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.fuse, pytest.mark.cluster]


def run(*argv: str, cwd: Path | None = None) -> str:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result.stdout


def make_tree(root: Path) -> None:
    """A small tree with the shapes programs care about: nesting, links, modes."""
    (root / "src" / "deep" / "er").mkdir(parents=True)
    for i in range(30):
        (root / "src" / f"file{i}.txt").write_text(f"line {i}\n" * (i + 1))
    (root / "src" / "deep" / "er" / "blob.bin").write_bytes(os.urandom(3 << 20))
    (root / "src" / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "src" / "script.sh").chmod(0o755)
    os.symlink("file1.txt", root / "src" / "link")
    os.link(root / "src" / "file2.txt", root / "src" / "hardlink")


def test_git_init_commit_fsck(workdir: Path) -> None:
    repo = workdir / "repo"
    run("git", "init", "-q", str(repo))
    make_tree(repo)
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    run("git", *ident, "add", "-A", cwd=repo)
    run("git", *ident, "commit", "-qm", "first", cwd=repo)
    (repo / "src" / "file3.txt").write_text("changed\n")
    run("git", *ident, "commit", "-qam", "second", cwd=repo)

    run("git", "fsck", "--full", "--strict", cwd=repo)
    assert run("git", "rev-list", "--count", "HEAD", cwd=repo).strip() == "2"
    assert run("git", "status", "--porcelain", cwd=repo) == ""


def test_tar_create_and_extract_match_the_source(workdir: Path, tmp_path: Path) -> None:
    make_tree(tmp_path)
    archive = workdir / "tree.tar"
    run("tar", "-cf", str(archive), "-C", str(tmp_path), "src")
    out = workdir / "out"
    out.mkdir()
    run("tar", "-xpf", str(archive), "-C", str(out))

    assert run("diff", "-r", "--no-dereference", str(tmp_path / "src"), str(out / "src")) == ""
    assert os.readlink(out / "src" / "link") == "file1.txt"
    assert (out / "src" / "hardlink").stat().st_ino == (out / "src" / "file2.txt").stat().st_ino


def test_rsync_twice_copies_nothing_the_second_time(workdir: Path, tmp_path: Path) -> None:
    make_tree(tmp_path)
    run("rsync", "-aH", f"{tmp_path}/src/", f"{workdir}/copy/")
    second = run("rsync", "-aH", "--itemize-changes", f"{tmp_path}/src/", f"{workdir}/copy/")

    assert second.strip() == ""
    comparison = filecmp.dircmp(tmp_path / "src", workdir / "copy")
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only


def test_sqlite_create_and_query(workdir: Path) -> None:
    db = sqlite3.connect(workdir / "test.db")
    with db:
        db.execute("create table t (id integer primary key, name text)")
        db.executemany("insert into t (name) values (?)", [(f"n{i}",) for i in range(2000)])
    db.close()

    again = sqlite3.connect(workdir / "test.db")
    try:
        assert again.execute("select count(*), max(name) from t").fetchone() == (2000, "n999")
        assert again.execute("pragma integrity_check").fetchone() == ("ok",)
    finally:
        again.close()
