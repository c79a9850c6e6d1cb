"""Where a run came from: git revision, branch, dirty state and patch, Python, speedrun, host.

Everything here is on the start-up path of a run, so it stays cheap: one ``git status`` call
(remembered for a few seconds, so the config's ``git_rev`` and the run record share it), a
``git diff`` only when the tree is dirty, and the installed speedrun distributions read from
the names of their ``.dist-info`` folders (no ``importlib.metadata``).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, NamedTuple

__all__ = [
    "GitState",
    "git_diff",
    "git_state",
    "host_name",
    "prefetch_git_state",
    "python_version",
    "recent_git_state",
    "speedrun_distributions",
]

# How long a git_state() result is reused by recent_git_state() (seconds): long enough to cover
# one auto_setup(), short enough that a later, separate question asks git again.
_RECENT_SECONDS = 10.0
_recent: dict[str, tuple[float, GitState]] = {}
_pending: dict[str, Any] = {}  # folder -> running `git status` started by prefetch_git_state
_STATUS = ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"]


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

    where = os.path.abspath(folder or _script_folder())
    process = _pending.pop(where, None)
    try:
        if process is None:
            process = subprocess.Popen(
                _STATUS, cwd=where, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        output, _ = process.communicate(timeout=30)
    except (OSError, subprocess.SubprocessError):
        if process is not None:
            process.kill()
            process.wait()
        state = GitState(None, None, None)
    else:
        state = _parse_status(output) if process.returncode == 0 else GitState(None, None, None)
    _recent[where] = (time.monotonic(), state)
    return state


def prefetch_git_state(folder: str | None = None) -> None:
    """Start ``git status`` for ``folder`` in the background.

    The next :func:`git_state` of that folder collects the answer, so the git process runs
    while the caller does other work (``auto_setup`` reads configs meanwhile).
    """
    import subprocess

    where = os.path.abspath(folder or _script_folder())
    if where in _pending:
        return
    try:
        _pending[where] = subprocess.Popen(
            _STATUS, cwd=where, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
    except OSError:
        return  # no git: git_state() will say so
    if len(_pending) == 1:
        import atexit

        atexit.register(_reap_pending)


def _reap_pending() -> None:
    """Collect prefetched ``git status`` processes nobody asked for (a set-up that failed)."""
    while _pending:
        _, process = _pending.popitem()
        try:
            process.communicate(timeout=5)
        except Exception:
            process.kill()
            process.communicate()


def _parse_status(output: str) -> GitState:
    revision = branch = None
    dirty = False
    for line in output.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            revision = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            branch = None if head == "(detached)" else head
        elif line and not line.startswith("#"):
            dirty = True
    return GitState(revision, branch, dirty)


def recent_git_state(folder: str | None = None) -> GitState:
    """:func:`git_state` of ``folder``, reusing an answer git gave in the last few seconds.

    ``auto_setup`` asks git once for the config's ``git_rev`` and once for the run record;
    the second question costs nothing.
    """
    where = os.path.abspath(folder or _script_folder())
    found = _recent.get(where)
    if found is not None and time.monotonic() - found[0] < _RECENT_SECONDS:
        return found[1]
    return git_state(where)


def git_diff(folder: str | None = None, *, revision: str | None = None) -> str | None:
    """The uncommitted changes of the git tree holding ``folder``, as a binary-safe patch.

    The patch is relative to the repository's top folder and re-applies with
    ``git apply`` on a checkout of ``revision``. ``revision=None`` means the branch has no
    commit yet; the patch then holds the staged files. Untracked files are not included
    (as in :func:`git_state`). Returns ``None`` when git is missing or ``folder`` is not in a
    repository, ``""`` when nothing is uncommitted.
    """
    import subprocess

    command = ["git", "diff", "--binary", "--no-color", "--no-ext-diff"]
    command += ["HEAD"] if revision is not None else ["--cached"]
    try:
        result = subprocess.run(
            command,
            cwd=folder or _script_folder(),
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.decode("utf-8", errors="surrogateescape")


def python_version() -> str:
    """``"3.11.9"`` (plus the implementation when it is not CPython), without ``platform``."""
    version = ".".join(str(part) for part in sys.version_info[:3])
    if sys.version_info.releaselevel != "final":
        version += f"{sys.version_info.releaselevel[0]}{sys.version_info.serial}"
    name = sys.implementation.name
    return version if name == "cpython" else f"{version} ({name})"


def host_name() -> str:
    """This machine's host name (``socket.gethostname()`` without importing socket)."""
    return os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")


def _metadata_version(folder: str) -> str | None:
    """The ``Version:`` of an ``.egg-info`` folder's ``PKG-INFO``."""
    try:
        with open(os.path.join(folder, "PKG-INFO"), encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
                if not line.strip():
                    break
    except OSError:
        return None
    return None


def speedrun_distributions(path: list[str] | None = None) -> dict[str, str]:
    """The installed speedrun distributions and their versions, ``{"speedrun-core": "0.1.0"}``.

    Read from the ``speedrun_*.dist-info`` (and ``.egg-info``) folder names on ``sys.path``
    (or ``path``), the first one found for each name winning, as Python's import system does.
    This costs a folder listing per path entry, where ``importlib.metadata`` would cost an
    import and a scan of every distribution.
    """
    found: dict[str, str] = {}
    stdlib = os.path.dirname(os.__file__)  # pip installs nothing there: not worth a listing
    skipped = {stdlib, os.path.join(stdlib, "lib-dynload")}
    for entry in sys.path if path is None else path:
        if entry in skipped:
            continue
        try:
            names = os.listdir(entry or ".")
        except OSError:  # zip files, missing folders
            continue
        for name in names:
            if not name.lower().startswith("speedrun"):
                continue
            if name.endswith(".dist-info"):
                stem, _, version = name[: -len(".dist-info")].partition("-")
            elif name.endswith(".egg-info"):
                stem = name[: -len(".egg-info")].partition("-")[0]
                version = _metadata_version(os.path.join(entry, name)) or ""
            else:
                continue
            distribution = stem.lower().replace("_", "-").replace(".", "-")
            if version and distribution not in found:
                found[distribution] = version
    return dict(sorted(found.items()))
