"""Checkpoints that never lose work: file names, discovery, retention and the loaded record.

A checkpoint is one file ``checkpoint_iter_{step}.pt`` in an experiment's ``Weights/`` folder.
Files named like the original speedrun's ``ckpt_iter_{step}.pt`` are discovered too, and so are
sharded checkpoints, directories ``checkpoint_iter_{step}/`` (see :mod:`._shard_dirs`). This module
knows which files are checkpoints (:func:`list_checkpoints`, :func:`find_checkpoint`) and which
may go (:func:`prune_checkpoints`); writing and reading them (:func:`save_checkpoint`,
:func:`load_checkpoint`, :func:`load_latest_valid`, the envelope and the serializers) lives in
:mod:`speedrun.checkpoint._io`, which builds on this module.

This module is on every run's start-up path, so it imports only light modules: pathlib is
imported when there are checkpoint files to return.
"""

from __future__ import annotations

import operator
import os
import re
import stat
import warnings
from collections import namedtuple
from typing import TYPE_CHECKING

from .._errors import CheckpointError
from ..directory._layout import CHECKPOINT_MANIFEST, MANIFEST_FORMAT
from ._shard_dirs import match_directory_name, remove_directory

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    PathLike = str | os.PathLike[str]

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "SERIALIZERS",
    "Checkpoint",
    "checkpoint_file_name",
    "class_path",
    "find_checkpoint",
    "list_checkpoints",
    "prune_checkpoints",
    "stray_checkpoints",
]

CHECKPOINT_FORMAT = "speedrun-checkpoint"
CHECKPOINT_VERSION = 1
SERIALIZERS = ("torch", "dill", "pickle")

# Patterns, not compiled regexes: ``re`` compiles (and caches) them on first use, which a run
# that starts with an empty Weights/ folder never reaches.
_NAME_PATTERN = r"^(checkpoint|ckpt)_iter_(0|[1-9][0-9]*)\.pt$"
_TEMP_PATTERN = (
    r"^\.(?:(?:checkpoint|ckpt)_iter_(?:0|[1-9][0-9]*)\.pt"
    r"|\.speedrun-checkpoints\.json)\.[A-Za-z0-9_]+\.tmp$"
)


class Checkpoint(
    namedtuple(  # not typing.NamedTuple: that would import typing at start-up
        "Checkpoint",
        ("step", "state", "path", "experiment_class", "serializer", "legacy"),
        defaults=(False,),
    )
):
    """A loaded checkpoint.

    Attributes
    ----------
    step : int
        The step the checkpoint was saved at.
    state : dict
        The state dictionary passed to :func:`save_checkpoint`.
    path : Path
        The file it was loaded from.
    experiment_class : str or None
        ``"module.QualName"`` of the experiment that saved it (None for an original-speedrun file).
    serializer : str
        ``"torch"``, ``"dill"`` or ``"pickle"``: the library that wrote the file.
    legacy : bool
        True for an original speedrun ``ckpt_iter_{step}.pt`` file (a bare attribute dict).
    """

    __slots__ = ()

    step: int
    state: dict[str, Any]
    path: Path
    experiment_class: str | None
    serializer: str
    legacy: bool

    def __repr__(self) -> str:  # the state can be gigabytes: leave it out
        return (
            f"Checkpoint(step={self.step}, path={str(self.path)!r}, "
            f"experiment_class={self.experiment_class!r}, serializer={self.serializer!r}, "
            f"legacy={self.legacy})"
        )


class _CorruptCheckpointError(CheckpointError):
    """A checkpoint file is truncated, corrupt or not a speedrun checkpoint (skippable)."""


class _MissingLibraryError(ImportError):
    """Loading a checkpoint needs a library (torch, dill) that is not installed."""


def _match_name(name: str) -> re.Match[str] | None:
    """Match a checkpoint name: group 1 is ``checkpoint`` or ``ckpt``, group 2 the step.

    A sharded checkpoint directory ``checkpoint_iter_<step>`` matches too (see
    :mod:`speedrun.checkpoint._shard_dirs`)."""
    if not name.startswith(("checkpoint_iter_", "ckpt_iter_")):  # spares compiling the patterns
        return None  # in a new run, whose folder holds only the record
    return re.match(_NAME_PATTERN, name) or match_directory_name(name)


def checkpoint_file_name(step: int) -> str:
    """Return the file name of the checkpoint for ``step``: ``checkpoint_iter_{step}.pt``."""
    return f"checkpoint_iter_{_check_step(step)}.pt"


def class_path(obj: Any) -> str:
    """Return ``"module.QualName"`` of a class, or of an instance's class."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


# ------------------------------------------------------------------------------------------------
# discovery


def _as_path(directory: PathLike) -> Path:
    from pathlib import Path

    return Path(directory)


def read_manifest(directory: PathLike) -> dict[str, Any] | None:
    """The record of the checkpoints this run wrote (``Weights/.speedrun-checkpoints.json``).

    None when the folder has none (a folder of an older speedrun, or of the original one: then
    every file with a checkpoint name counts). A record that cannot be read counts as none,
    with a warning.
    """
    path = os.path.join(os.fspath(directory) or ".", CHECKPOINT_MANIFEST)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(16 * 2**20)
    except FileNotFoundError:
        return None
    except OSError as exc:
        warnings.warn(f"Cannot read {path} ({exc}); every checkpoint file counts.", stacklevel=3)
        return None
    import json

    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        manifest = None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != MANIFEST_FORMAT
        or not isinstance(manifest.get("files"), dict)
    ):
        warnings.warn(
            f"{path} is not a readable speedrun checkpoint record; every checkpoint "
            "file counts. Delete it to silence this warning.",
            stacklevel=3,
        )
        return None
    return manifest


def _scan_all(directory: PathLike) -> list[tuple[int, int, str]]:
    """``(step, rank, name)`` of every file with a checkpoint name, oldest first."""
    try:
        names = os.listdir(os.fspath(directory) or ".")  # "" is the working folder, as in pathlib
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise CheckpointError(
            f"Expected a checkpoint folder, got a file: {_as_path(directory)}. "
            "Pass the experiment's Weights/ folder."
        ) from None
    except OSError as exc:
        raise CheckpointError(
            f"Cannot list checkpoint folder {_as_path(directory)}: {exc}"
        ) from exc
    found = []
    for name in names:
        match = _match_name(name)
        if match:
            rank = 1 if match.group(1) == "checkpoint" else 0  # same step: new name is newer
            rank += not name.endswith(".pt")  # and a sharded directory newer still
            found.append((int(match.group(2)), rank, name))
    found.sort(key=lambda item: (item[0], item[1]))
    return found


def _scan(directory: PathLike) -> list[tuple[int, int, Path]]:
    """``(step, rank, path)`` of every checkpoint of this run in ``directory``, oldest first.

    With a checkpoint record (every directory this speedrun creates has one), only the files
    it lists count: a stray file copied in under a checkpoint name is never listed, pruned or
    loaded (see :func:`stray_checkpoints`).
    """
    found = _scan_all(directory)
    if not found:  # the usual start of a run: no pathlib, no record to read
        return []
    manifest = read_manifest(directory)
    if manifest is not None:
        listed = manifest["files"]
        found = [item for item in found if item[2] in listed]
    folder = _as_path(directory)
    return [(step, rank, folder / name) for step, rank, name in found]


def stray_checkpoints(directory: PathLike) -> list[Path]:
    """Files with checkpoint names that this run did not write (not in its checkpoint record)."""
    found = _scan_all(directory)
    if not found:
        return []
    manifest = read_manifest(directory)
    if manifest is None:
        return []
    folder = _as_path(directory)
    return [folder / name for _, _, name in found if name not in manifest["files"]]


def warn_about_strays(directory: PathLike) -> None:
    """One warning naming the stray checkpoint files of ``directory`` (see above)."""
    strays = stray_checkpoints(directory)
    if strays:
        names = ", ".join(path.name for path in strays[:5])
        more = f" (and {len(strays) - 5} more)" if len(strays) > 5 else ""
        warnings.warn(
            f"Ignoring {names}{more} in {directory}: this run did not write "
            f"{'it' if len(strays) == 1 else 'them'} (not in {CHECKPOINT_MANIFEST}), so "
            f"{'it is' if len(strays) == 1 else 'they are'} never loaded, counted or pruned. "
            "Move stray files out of Weights/ (load one on purpose with load_checkpoint(path)).",
            stacklevel=3,
        )


def forget_checkpoints(directory: PathLike, names: list[str]) -> None:
    """Drop deleted checkpoint files from the run's record."""
    _update_manifest(directory, lambda files: [files.pop(name, None) for name in names])


def record_checkpoint(directory: PathLike, name: str, globals_used: list[str] | None) -> None:
    """Add ``name`` (and the globals its pickle needs, beyond torch's) to the run's record.

    A folder without a record gets one; files with checkpoint names already there are listed
    too (with unknown globals), as the folder counted them before it had a record.
    """

    def add(files: dict[str, Any]) -> None:
        files[name] = {"globals": globals_used}

    _update_manifest(directory, add)


def _update_manifest(directory: PathLike, change: Any) -> None:
    import json

    from ..directory._fs import atomic_write_text

    manifest = read_manifest(directory)
    if manifest is None:
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": 1,
            "run_id": os.urandom(8).hex(),
            "files": {other: {"globals": None} for _, _, other in _scan_all(directory)},
        }
    change(manifest["files"])
    atomic_write_text(
        os.path.join(os.fspath(directory), CHECKPOINT_MANIFEST),
        json.dumps(manifest, indent=1) + "\n",
    )


def list_checkpoints(directory: PathLike) -> list[tuple[int, Path]]:
    """List the checkpoint files in ``directory``, oldest step first.

    Only speedrun's names count: ``checkpoint_iter_{step}.pt`` and the original speedrun's
    ``ckpt_iter_{step}.pt`` (listed before the new name when both exist for one step). Temp
    files of interrupted saves and any other file are ignored. A missing folder has none.
    """
    return [(step, path) for step, _, path in _scan(directory)]


def find_checkpoint(directory: PathLike, step: int) -> Path:
    """Return the checkpoint file for ``step`` in ``directory``.

    Raises
    ------
    CheckpointError
        When there is none; the message lists the steps that exist.
    """
    step = _check_step(step)
    entries = list_checkpoints(directory)
    matches = [path for found, path in entries if found == step]
    if not matches:
        steps = sorted({found for found, _ in entries})
        have = ", ".join(map(str, steps)) if steps else "none"
        raise CheckpointError(
            f"No checkpoint for step {step} in {directory}: expected a file named "
            f"{checkpoint_file_name(step)}. Steps with checkpoints: {have}. "
            "Pick one of those, or omit the step to load the latest."
        )
    return matches[-1]


# ------------------------------------------------------------------------------------------------
# retention


def prune_checkpoints(
    directory: PathLike, keep: int, *, protect: PathLike | None = None
) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints in ``directory``; return the deleted paths.

    Newest means highest step. ``protect`` (the file just written) is always kept and counts
    toward ``keep``. Only regular files (or symlinks) with speedrun's checkpoint names, and
    sharded checkpoint directories carrying speedrun's commit marker, are deleted; a file that
    cannot be deleted is reported with a warning and left alone.
    """
    _check_keep(keep)
    scanned = _scan(directory)
    protected = _as_path(protect).name if protect is not None else None
    match = _match_name(protected) if protected else None
    if (
        match
        and protected is not None
        and protected not in {path.name for _, _, path in scanned}
        and os.path.lexists(os.path.join(os.fspath(directory), protected))
    ):
        # the file just written, before the run's record lists it
        scanned.append(
            (
                int(match.group(2)),
                1 if match.group(1) == "checkpoint" else 0,
                _as_path(directory) / protected,
            )
        )
        scanned.sort(key=lambda item: (item[0], item[1]))
    entries = [path for _, _, path in scanned]
    if not entries:
        return []
    others = [path for path in entries if path.name != protected]
    retained = keep - 1 if len(others) < len(entries) else keep
    doomed = others[: max(len(others) - retained, 0)]  # oldest first
    deleted = []
    for path in doomed:
        if path.is_dir() and not path.is_symlink():  # a sharded checkpoint: only if committed
            if remove_directory(path):
                deleted.append(path)
            continue
        if not path.is_symlink() and not path.is_file():
            continue  # a folder named like a checkpoint is not ours to delete
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            warnings.warn(f"Could not delete old checkpoint {path}: {exc}", stacklevel=2)
            continue
        deleted.append(path)
    return deleted


def _remove_stale_temp_files(folder: PathLike, *, before: float) -> None:
    """Remove temp files of interrupted saves (untouched since this save began)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not re.match(_TEMP_PATTERN, name):
            continue
        path = os.path.join(folder, name)
        try:
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and info.st_mtime < before:
                os.unlink(path)
        except OSError:
            continue


# ------------------------------------------------------------------------------------------------
# argument checks


def _check_step(step: Any) -> int:
    if isinstance(step, bool):
        raise CheckpointError(f"Expected the step as a non-negative int, got {step!r}.")
    try:
        value = operator.index(step)
    except TypeError:
        raise CheckpointError(
            f"Expected the step as a non-negative int, got {type(step).__name__} {step!r}."
        ) from None
    if value < 0:
        raise CheckpointError(f"Expected the step as a non-negative int, got {value}.")
    return value


def _check_keep(keep: Any) -> None:
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise CheckpointError(
            f"Expected keep to be a positive int (number of checkpoints to retain) or None to "
            f"keep all, got {keep!r}."
        )
