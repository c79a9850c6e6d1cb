"""Where a run came from: git revision and dirty state, command line, host."""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

__all__ = ["GitState", "git_state"]


class GitState(NamedTuple):
    """The git revision of a source tree; ``revision`` is ``None`` outside a git repository."""

    revision: str | None
    branch: str | None
    dirty: bool | None


def _script_folder() -> str:
    script = sys.argv[0] if sys.argv and sys.argv[0] else ""
    folder = os.path.dirname(os.path.abspath(script)) if script else os.getcwd()
    return folder if os.path.isdir(folder) else os.getcwd()


def git_state(folder: str | None = None) -> GitState:
    """The revision, branch and dirty flag of the git tree holding ``folder``.

    ``folder`` defaults to the folder of the running script (so the revision is that of the
    experiment's code, wherever it is started from). Uses a single ``git status`` call;
    untracked files do not make the tree dirty.
    """
    import subprocess

    try:
        result = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            cwd=folder or _script_folder(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return GitState(None, None, None)
    if result.returncode != 0:
        return GitState(None, None, None)
    revision = branch = None
    dirty = False
    for line in result.stdout.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            revision = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            dirty = True
    return GitState(revision, branch, dirty)
