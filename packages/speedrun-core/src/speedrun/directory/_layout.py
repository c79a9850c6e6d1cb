"""Experiment directory layout, identification marker and safe purge.

An experiment directory holds ``Configurations/``, ``Logs/``, ``Weights/`` and ``Plots/`` and a
small ``.speedrun`` marker file that identifies it as speedrun's. The marker is what makes
speedrun willing to delete a directory: a folder that is neither marked nor a bare speedrun
layout is never touched.
"""

from __future__ import annotations

import contextlib
import os

# Kept off the start-up path: pathlib, json and typing are imported only where they are used.
from typing import TYPE_CHECKING

from .._errors import ConfigError, ExperimentDirectoryError
from ._fs import atomic_write_text, fsync_directory
from ._lock import (
    LOCK_NAME,
    _clean_path,
    _describe_holder,
    _hostname,
    _take_for_removal,
)

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, NoReturn

    PathLike = str | os.PathLike[str]

__all__ = [
    "CONFIGURATIONS",
    "CONFIG_FILE_NAME",
    "LOGS",
    "MARKER_NAME",
    "MARKER_VERSION",
    "PLOTS",
    "SUBDIRECTORIES",
    "WEIGHTS",
    "ensure_experiment_directory",
    "inherit_source",
    "is_experiment_directory",
    "prepare_experiment_directory",
    "purge_experiment_directory",
    "read_marker",
]

CONFIGURATIONS = "Configurations"
"""The subfolder holding the run's configuration files and run record."""
LOGS = "Logs"
"""The subfolder holding logs (TensorBoard events, printed output)."""
WEIGHTS = "Weights"
"""The subfolder holding checkpoints."""
PLOTS = "Plots"
"""The subfolder holding images and figures."""
SUBDIRECTORIES = (CONFIGURATIONS, LOGS, WEIGHTS, PLOTS)
"""The folders every experiment directory holds (the original speedrun's layout)."""
CONFIG_FILE_NAME = "train_config.yml"
"""The run's resolved configuration, in :data:`CONFIGURATIONS`."""

MARKER_NAME = ".speedrun"
"""Name of the file that identifies a speedrun experiment directory."""

MARKER_VERSION = 1
"""Version of the marker's format."""

# Files speedrun itself puts into an experiment directory, besides the subfolders.
_SPEEDRUN_FILES = frozenset({MARKER_NAME, LOCK_NAME})
_LISTED_ENTRIES = 5


def _listing(names: list[str]) -> str:
    """``'a', 'b', 'c' (and 4 more)`` for error messages."""
    shown = ", ".join(repr(name) for name in names[:_LISTED_ENTRIES])
    if len(names) > _LISTED_ENTRIES:
        shown += f" (and {len(names) - _LISTED_ENTRIES} more)"
    return shown


def _entries(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError as error:
        raise ExperimentDirectoryError(
            f"Cannot read the folder {path}: {error.strerror or error}. "
            "Fix: check that it exists and that you may read it."
        ) from error


def read_marker(path: PathLike) -> dict[str, Any] | None:
    """The content of ``path``'s ``.speedrun`` marker, or None if it has no valid marker.

    A valid marker is a regular file (not a symlink) holding a JSON mapping with a
    ``marker_version``.
    """
    marker = os.path.join(_clean_path(path), MARKER_NAME)
    try:
        if os.path.islink(marker) or not os.path.isfile(marker):
            return None
        with open(marker, encoding="utf-8") as handle:
            text = handle.read()
        import json

        content = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(content, dict) or "marker_version" not in content:
        return None
    return content


def is_experiment_directory(path: PathLike) -> bool:
    """Whether ``path`` is a folder carrying a valid speedrun marker."""
    return os.path.isdir(_clean_path(path)) and read_marker(path) is not None


def _write_marker(path: str, *, adopted: bool) -> None:
    import json
    from datetime import datetime

    content: dict[str, Any] = {
        "speedrun": "experiment directory",
        "marker_version": MARKER_VERSION,
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": _hostname(),
    }
    if adopted:
        content["adopted"] = True
    # Atomic but not fsynced: a marker lost to a power cut costs nothing, because a folder with
    # speedrun's layout is adopted (and marked again) on the next run.
    text = json.dumps(content, indent=2) + "\n"
    atomic_write_text(os.path.join(path, MARKER_NAME), text, durable=False)


def _create_layout(path: str, *, mark: bool, adopted: bool = False) -> None:
    try:
        os.makedirs(path, exist_ok=True)
        for name in SUBDIRECTORIES:
            subdirectory = os.path.join(path, name)
            try:
                os.mkdir(subdirectory)
            except OSError:
                if not os.path.isdir(subdirectory):
                    raise
        if mark:  # The marker goes last: it says "this layout is complete and speedrun's".
            _write_marker(path, adopted=adopted)
    except OSError as error:
        raise ExperimentDirectoryError(
            f"Cannot create the experiment directory {path}: {error.strerror or error} "
            f"({error.filename or path}). Expected a path where a folder can be created. "
            "Fix: check that no parent of it is a file and that you may write there, "
            "or pick another path."
        ) from error


def ensure_experiment_directory(path: PathLike) -> str:
    """Create (or adopt) an experiment directory with its subfolders and marker.

    - A missing or empty folder is created and marked.
    - A marked folder is accepted as it is (missing subfolders are recreated; the marker is
      not rewritten).
    - A folder with a ``Configurations/`` subfolder (made by the original speedrun, or by hand)
      is adopted: its missing subfolders are created and it is marked.
    - Any other non-empty folder, or an existing file, is refused and left untouched.

    Parameters
    ----------
    path
        The experiment directory, e.g. ``experiments/RUN-0``. Parents are created as needed.

    Returns
    -------
    str
        ``path`` as a string, spelled as ``str(pathlib.Path(path))`` (pathlib is not imported:
        this is the variant for the start-up path).

    Raises
    ------
    ExperimentDirectoryError
        ``path`` is a file or a foreign non-empty folder, or cannot be created.
    """
    directory = _clean_path(path)
    if os.path.islink(directory) and not os.path.exists(directory):
        raise ExperimentDirectoryError(
            f"Cannot use {directory} as an experiment directory: it is a symbolic link to "
            f"{os.readlink(directory)!r}, which does not exist. "
            "Fix: create the link's target folder first, or remove the link and pick a new path."
        )
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ExperimentDirectoryError(
            f"{directory} is not a speedrun experiment directory: expected a folder (or a path "
            "that does not exist yet), but it is an existing file. "
            "Fix: pick a new path for the experiment directory."
        )
    if not os.path.exists(directory):
        _create_layout(directory, mark=True)
        return directory
    if read_marker(directory) is not None:
        _create_layout(directory, mark=False)
        return directory
    foreign = [name for name in _entries(directory) if name not in _SPEEDRUN_FILES]
    if not foreign:
        _create_layout(directory, mark=True)
    elif os.path.isdir(os.path.join(directory, "Configurations")):
        _create_layout(directory, mark=True, adopted=True)
    else:
        raise ExperimentDirectoryError(
            f"{directory} is not a speedrun experiment directory: expected a new or empty "
            "folder, or one made by speedrun (with a .speedrun marker or a Configurations/ "
            f"subfolder), but it already holds {_listing(foreign)}. Nothing was created in it. "
            "Fix: pick a new path for the experiment directory."
        )
    return directory


def prepare_experiment_directory(path: PathLike) -> Path:
    """Create (or adopt) an experiment directory; see :func:`ensure_experiment_directory`.

    Returns
    -------
    pathlib.Path
        ``path`` as a :class:`~pathlib.Path`.
    """
    from pathlib import Path

    return Path(ensure_experiment_directory(path))


def _real(path: PathLike) -> str:
    return os.path.realpath(path)


def _is_within(path: str, folder: str) -> bool:
    """Whether the resolved ``path`` is the resolved ``folder`` or inside it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _protected_reason(real: str) -> str | None:
    """Why deleting the (resolved) folder ``real`` would be a disaster, or None."""
    if os.path.dirname(real) == real:
        return "the file system root"
    homes = {_real(os.path.expanduser("~"))}
    with contextlib.suppress(ImportError, KeyError, OSError):
        import pwd

        homes.add(_real(pwd.getpwuid(os.getuid()).pw_dir))
    for home in homes:
        if home == real:
            return "your home folder"
        if _is_within(home, real):
            return f"a parent of your home folder {home}"
    try:
        cwd = _real(os.getcwd())
    except OSError:  # The working directory was deleted: nothing to protect there.
        return None
    if cwd == real:
        return "the current working directory"
    if _is_within(cwd, real):
        return f"a parent of the current working directory {cwd}"
    return None


def _refuse(
    path: str, why: str, fix: str = "Fix: delete it yourself if you are sure."
) -> NoReturn:
    raise ExperimentDirectoryError(f"Refusing to purge {path}: {why}. It was left untouched. {fix}")


def _check_purgeable_content(directory: str) -> None:
    """Refuse unless ``directory`` is marked or holds nothing but speedrun's own layout."""
    if read_marker(directory) is not None:
        return
    entries = _entries(directory)
    foreign = [
        name
        for name in entries
        if not (
            name in _SPEEDRUN_FILES
            or (name in SUBDIRECTORIES and os.path.isdir(os.path.join(directory, name)))
        )
    ]
    if foreign:
        _refuse(
            directory,
            "it is not a speedrun experiment directory (it has no .speedrun marker, and it "
            f"holds entries other than speedrun's {'/, '.join(SUBDIRECTORIES)}/ layout: "
            f"{_listing(foreign)})",
            "Fix: check the path; delete it yourself if you are sure.",
        )
    layout = [name for name in entries if name in SUBDIRECTORIES]
    if layout and "Configurations" not in layout:
        _refuse(
            directory,
            "it is not a speedrun experiment directory (it has neither a .speedrun marker nor "
            f"a Configurations/ folder, only {_listing(layout)})",
            "Fix: check the path; delete it yourself if you are sure.",
        )


def purge_experiment_directory(path: PathLike) -> None:
    """Delete an experiment directory, but only when that is safe.

    The directory must carry the ``.speedrun`` marker, or hold nothing but speedrun's
    ``Configurations/``, ``Logs/``, ``Weights/``, ``Plots/`` (an unmarked directory of the
    original speedrun). It is refused, and left untouched, when it is a symbolic link, the
    file system root, your home folder (or a parent of it), the current working directory
    (or a parent of it), or when another live process holds its writer lock.

    The folder is first renamed atomically to a hidden sibling ``.<name>.purging-<pid>`` and
    then deleted, so an interrupted purge never leaves a half-deleted directory that still
    looks like a valid experiment. A missing ``path`` is a no-op.

    Parameters
    ----------
    path
        The experiment directory to delete.

    Raises
    ------
    ExperimentDirectoryError
        The directory is not safe to delete (the message says why and what to do), or it
        could not be deleted completely (the message names the hidden leftover folder).
    """
    directory = _clean_path(path)
    if os.path.islink(directory):
        _refuse(
            directory,
            f"it is a symbolic link (to {os.readlink(directory)!r}) and speedrun never follows "
            "links when deleting",
            f"Fix: remove the link itself (rm {directory}), or purge the folder it points to.",
        )
    if not os.path.exists(directory):
        return
    if not os.path.isdir(directory):
        _refuse(directory, "it is a file, not an experiment directory")
    real = _real(directory)
    reason = _protected_reason(real)
    if reason is not None:
        fix = "Fix: pass the experiment directory itself (e.g. experiments/RUN-0)"
        if "working directory" in reason:
            fix += ", or change to another working directory first"
        _refuse(directory, f"it is {reason}", fix + "; delete it yourself if you are sure.")
    _check_purgeable_content(directory)

    lock_fd, holder = _take_for_removal(real)
    if lock_fd is None:
        holder = holder or {}
        if holder.get("pid") == os.getpid() and holder.get("host") == _hostname():
            _refuse(
                directory,
                "this process holds its writer lock",
                "Fix: release the WriterLock of this directory before purging it.",
            )
        _refuse(
            directory,
            f"it is in use: {_describe_holder(holder)} holds its writer lock",
            "Fix: wait for that run to finish or stop it, then purge again.",
        )
    try:
        _rename_and_delete(directory, real)
    finally:
        os.close(lock_fd)


def _rename_and_delete(directory: str, real: str) -> None:
    parent, name = os.path.split(real)
    before = os.lstat(real)
    counter = 0
    while True:
        suffix = f"-{counter}" if counter else ""
        hidden = os.path.join(parent, f".{name}.purging-{os.getpid()}{suffix}")
        if not os.path.lexists(hidden):
            break
        counter += 1
    try:
        os.rename(real, hidden)
    except OSError as error:
        raise ExperimentDirectoryError(
            f"Cannot purge {directory}: renaming it to {os.path.basename(hidden)} failed "
            f"({error.strerror or error}). It was left untouched. "
            "Fix: check that you may write to its parent folder and that it is not a mount point."
        ) from error
    after = os.lstat(hidden)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        # Someone replaced the folder between the checks and the rename: put it back.
        with contextlib.suppress(OSError):
            os.rename(hidden, real)
        raise ExperimentDirectoryError(
            f"Refusing to purge {directory}: it was replaced by another file or folder while "
            "being purged. It was left in place. Fix: check who else writes there, then retry."
        )
    fsync_directory(parent)
    try:
        import shutil

        shutil.rmtree(hidden)
    except OSError as error:
        raise ExperimentDirectoryError(
            f"{directory} was moved to {hidden} but could not be deleted completely "
            f"({error.strerror or error}: {error.filename}). The experiment directory itself "
            f"is gone. Fix: delete {hidden} yourself."
        ) from error
    fsync_directory(parent)


def inherit_source(source: str, file_name: str) -> str:
    """The configuration file that ``--inherit source`` refers to."""
    if source.endswith((".yml", ".yaml")):
        if not os.path.isfile(source):
            raise ConfigError(f"--inherit {source}: no such file. Expected an existing .yml "
                              f"file or experiment directory.")
        return source
    if not os.path.isdir(source):
        raise ConfigError(f"--inherit {source}: no such experiment directory. Expected a folder "
                          f"with {CONFIGURATIONS}/{file_name}, or a .yml file.")
    folder = os.path.join(source, CONFIGURATIONS)
    candidate = os.path.join(folder, file_name)
    if os.path.isfile(candidate):
        return candidate
    found = sorted(name for name in os.listdir(folder) if name.endswith((".yml", ".yaml"))) \
        if os.path.isdir(folder) else []
    if len(found) == 1:
        return os.path.join(folder, found[0])
    raise ConfigError(f"--inherit {source}: expected {candidate}, which does not exist; "
                      f"Configurations/ holds {found or 'no .yml files'}. Inherit from a run that "
                      f"was set up, or name the .yml file directly.")
