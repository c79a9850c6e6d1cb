"""Experiment directory layout and identification marker (the safe purge is in :mod:`._purge`).

An experiment directory holds ``Configurations/``, ``Logs/``, ``Weights/`` and ``Plots/`` and a
small ``.speedrun`` marker file that identifies it as speedrun's. The marker is what makes
speedrun willing to delete a directory: a folder that is neither marked nor a bare speedrun
layout is never touched.
"""

from __future__ import annotations

import os

# Kept off the start-up path: pathlib, json and typing are imported only where they are used.
from typing import TYPE_CHECKING

from .._errors import ConfigError, ExperimentDirectoryError
from ._fs import atomic_write_text
from ._lock import (
    LOCK_NAME,
    _clean_path,
    _hostname,
)

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

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
    "is_run_directory",
    "prepare_experiment_directory",
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

CHECKPOINT_MANIFEST = ".speedrun-checkpoints.json"
"""The record, in :data:`WEIGHTS`, of the checkpoint files this run wrote (only those count)."""
MANIFEST_FORMAT = "speedrun-checkpoints"
"""The ``format`` value of :data:`CHECKPOINT_MANIFEST`."""

PURGING_INFIX = ".purging-"
"""Hidden siblings ``.<name>.purging-<pid>`` hold a folder while a purge deletes it."""

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


def is_run_directory(path: PathLike) -> bool:
    """Whether ``path`` holds a run: marked by speedrun (:func:`is_experiment_directory`), or laid
    out by the original speedrun or by hand with ``Configurations/train_config.yml``.

    The one answer for listing, inspecting, resuming and waiting for runs (``speedrun ls``,
    ``show``, ``--resume``, ``--wait.for``); deleting needs the marker
    (:func:`is_experiment_directory`).
    """
    return is_experiment_directory(path) or os.path.isfile(
        os.path.join(_clean_path(path), CONFIGURATIONS, CONFIG_FILE_NAME)
    )


def _write_marker(path: str, *, adopted: bool, foreign: list[str] | None = None) -> None:
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
        content["entries_before_adoption"] = list(foreign or [])
    # Atomic but not fsynced: a marker lost to a power cut costs nothing, because a folder with
    # speedrun's layout is adopted (and marked again) on the next run.
    text = json.dumps(content, indent=2) + "\n"
    atomic_write_text(os.path.join(path, MARKER_NAME), text, durable=False)


def _empty_manifest() -> str:
    import json

    return (
        json.dumps(
            {"format": MANIFEST_FORMAT, "version": 1, "run_id": os.urandom(8).hex(), "files": {}},
            indent=1,
        )
        + "\n"
    )


def _create_layout(
    path: str,
    *,
    mark: bool,
    adopted: bool = False,
    new: bool = False,
    foreign: list[str] | None = None,
) -> None:
    try:
        os.makedirs(path, exist_ok=True)
        for name in SUBDIRECTORIES:
            subdirectory = os.path.join(path, name)
            try:
                os.mkdir(subdirectory)
            except OSError:
                if not os.path.isdir(subdirectory):
                    raise
        if new:  # from the start, only checkpoints this run writes count (see checkpoint/)
            manifest = os.path.join(path, WEIGHTS, CHECKPOINT_MANIFEST)
            if not os.path.lexists(manifest):
                atomic_write_text(manifest, _empty_manifest(), durable=False)
        if mark:  # The marker goes last: it says "this layout is complete and speedrun's".
            _write_marker(path, adopted=adopted, foreign=foreign)
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
    - A folder holding nothing but speedrun's layout (``Configurations/`` and possibly
      ``Logs/``, ``Weights/``, ``Plots/``: made by the original speedrun, or by hand for a first
      run), or a ``Configurations/`` folder beside other entries, is adopted: its missing
      subfolders are created and it is marked ``"adopted"`` (with the other entries listed).
      :func:`purge_experiment_directory` refuses an adopted folder while it holds anything but
      speedrun's layout, so a ``--purge`` never deletes what was there before speedrun
      (``src/``, ``.git``, a thesis).
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
        _create_layout(directory, mark=True, new=True)
        return directory
    if read_marker(directory) is not None:
        _create_layout(directory, mark=False)
        return directory
    entries = _entries(directory)
    foreign = [name for name in entries if name not in _SPEEDRUN_FILES]
    if not foreign:
        _create_layout(directory, mark=True, new=True)
        return directory
    not_layout = _foreign_entries(directory, entries)
    if os.path.isdir(os.path.join(directory, CONFIGURATIONS)):
        _create_layout(directory, mark=True, adopted=True, foreign=not_layout)
        return directory
    raise ExperimentDirectoryError(
        f"{directory} is not a speedrun experiment directory: expected a new or empty "
        "folder, or one made by speedrun (with a .speedrun marker or a Configurations/ "
        f"subfolder), but it already holds {_listing(foreign)}. Nothing was created in it. "
        "Fix: pick a new path for the experiment directory."
    )


def prepare_experiment_directory(path: PathLike) -> Path:
    """Create (or adopt) an experiment directory; see :func:`ensure_experiment_directory`.

    Returns
    -------
    pathlib.Path
        ``path`` as a :class:`~pathlib.Path`.
    """
    from pathlib import Path

    return Path(ensure_experiment_directory(path))


def _foreign_entries(directory: str, entries: list[str]) -> list[str]:
    """The entries of ``directory`` that are not speedrun's files and folders."""
    return [
        name
        for name in entries
        if not (
            name in _SPEEDRUN_FILES
            or (name in SUBDIRECTORIES and os.path.isdir(os.path.join(directory, name)))
        )
    ]


def inherit_source(source: str, file_name: str) -> str:
    """The configuration file that ``--inherit source`` refers to."""
    if source.endswith((".yml", ".yaml")):
        if not os.path.isfile(source):
            raise ConfigError(
                f"--inherit {source}: no such file. Expected an existing .yml "
                f"file or experiment directory."
            )
        return source
    if not os.path.isdir(source):
        raise ConfigError(
            f"--inherit {source}: no such experiment directory. Expected a folder "
            f"with {CONFIGURATIONS}/{file_name}, or a .yml file."
        )
    folder = os.path.join(source, CONFIGURATIONS)
    candidate = os.path.join(folder, file_name)
    if os.path.isfile(candidate):
        return candidate
    found = (
        sorted(name for name in os.listdir(folder) if name.endswith((".yml", ".yaml")))
        if os.path.isdir(folder)
        else []
    )
    if len(found) == 1:
        return os.path.join(folder, found[0])
    raise ConfigError(
        f"--inherit {source}: expected {candidate}, which does not exist; "
        f"Configurations/ holds {found or 'no .yml files'}. Inherit from a run that "
        f"was set up, or name the .yml file directly."
    )
