"""Sharded checkpoint directories on disk: names, the commit marker, validity and removal.

A sharded checkpoint (written through ``torch.distributed.checkpoint``, see
:mod:`speedrun.checkpoint._sharded`) is a directory ``Weights/checkpoint_iter_<step>/`` holding

- DCP's files: one or more ``__<rank>_<n>.distcp`` shard files per writing rank and ``.metadata``
  (written by rank 0 once every rank's shards are on disk);
- ``speedrun_state.pt``: the rest of the experiment's state (step, epoch, cache, plain
  attributes, rank 0's random state) in speedrun's envelope, written by rank 0;
- ``rank_<r>_random_state.pkl``: the random state of every other rank;
- ``.speedrun-commit``: speedrun's commit marker (JSON: step, world size, time), written last.

It is written under the hidden name ``.checkpoint_iter_<step>.saving`` and renamed to its final
name only when everything above is on disk and fsynced, so a directory under a checkpoint name
that lacks ``.metadata`` or the marker was not written by a completed speedrun save: discovery
skips it (with a warning) and retention never deletes it.

This module is light (no torch): discovery and ``speedrun ls`` import it at start-up.
"""

from __future__ import annotations

import os
import re
import warnings

__all__ = [
    "COMMIT_MARKER",
    "DCP_METADATA",
    "ENVELOPE_NAME",
    "directory_name",
    "is_committed",
    "match_directory_name",
    "not_committed_reason",
    "rank_state_name",
    "read_commit_marker",
    "remove_directory",
    "remove_stale_directories",
    "temp_directory_name",
]

COMMIT_MARKER = ".speedrun-commit"
DCP_METADATA = ".metadata"
ENVELOPE_NAME = "speedrun_state.pt"
COMMIT_FORMAT = "speedrun-sharded-commit"

# Same groups as the file pattern of _files: group 1 the prefix, group 2 the step.
_DIRECTORY_PATTERN = r"^(checkpoint)_iter_(0|[1-9][0-9]*)$"
_HIDDEN_PATTERN = r"^\.checkpoint_iter_(0|[1-9][0-9]*)\.(saving|deleting\.[A-Za-z0-9_]+)$"


def directory_name(step: int) -> str:
    """``checkpoint_iter_<step>``: the name of the sharded checkpoint of ``step``."""
    return f"checkpoint_iter_{step}"


def temp_directory_name(step: int) -> str:
    """``.checkpoint_iter_<step>.saving``: where the save of ``step`` is written before commit."""
    return f".checkpoint_iter_{step}.saving"


def rank_state_name(rank: int) -> str:
    """``rank_<rank>_random_state.pkl``: the random state of a rank other than 0."""
    return f"rank_{rank}_random_state.pkl"


def match_directory_name(name: str) -> re.Match[str] | None:
    """Match ``checkpoint_iter_<step>`` (group 1 ``checkpoint``, group 2 the step)."""
    return re.match(_DIRECTORY_PATTERN, name)


def read_commit_marker(path: str | os.PathLike[str]) -> dict[str, object] | None:
    """The commit marker of the sharded checkpoint at ``path``; None if missing or unreadable."""
    import json

    try:
        with open(os.path.join(path, COMMIT_MARKER), encoding="utf-8") as handle:
            marker = json.load(handle)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(marker, dict) or marker.get("format") != COMMIT_FORMAT:
        return None
    return marker


def not_committed_reason(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is not a committed sharded checkpoint (None when it is one)."""
    if not os.path.isdir(path):
        return f"{os.fspath(path)} is not a directory"
    if read_commit_marker(path) is None:
        return (
            f"{os.fspath(path)} has no valid speedrun commit marker ({COMMIT_MARKER}): it "
            "was not written by a completed speedrun save"
        )
    for name in (DCP_METADATA, ENVELOPE_NAME):
        if not os.path.isfile(os.path.join(path, name)):
            return f"{os.fspath(path)} lacks {name}: it is incomplete"
    return None


def is_committed(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a complete sharded checkpoint (DCP's metadata and speedrun's marker)."""
    return not_committed_reason(path) is None


def remove_directory(path: str | os.PathLike[str]) -> bool:
    """Delete the committed sharded checkpoint ``path``; True when it is gone.

    It is first renamed to a hidden ``.checkpoint_iter_<step>.deleting.<pid>`` name (one atomic
    step), so a kill in the middle never leaves a half-deleted directory under a checkpoint
    name. A directory without speedrun's commit marker is not speedrun's to delete: it is left
    alone (False).
    """
    import shutil

    path = os.fspath(path)
    match = match_directory_name(os.path.basename(path))
    if match is None or not is_committed(path):
        return False
    trash = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.deleting.{os.getpid()}")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return True
    except OSError as exc:
        warnings.warn(f"Could not delete old checkpoint {path}: {exc}", stacklevel=3)
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


def remove_stale_directories(folder: str | os.PathLike[str], *, keep: str | None = None) -> None:
    """Remove hidden leftovers of interrupted sharded saves and deletions in ``folder``.

    Only the main process calls it, and never while a save of its own is in flight; ``keep`` is
    the name of a directory to spare (the save in progress).
    """
    import shutil

    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name != keep and re.match(_HIDDEN_PATTERN, name):
            full = os.path.join(folder, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, ignore_errors=True)
