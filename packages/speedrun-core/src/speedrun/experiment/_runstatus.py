"""Reading run records: the record of an experiment directory, the status of its run (checked
against the writer lock), when it was last active, and its latest valid checkpoint (checked
without unpickling). Used by the ``speedrun`` command and by a new attempt of a run."""

from __future__ import annotations

import json
import os
from typing import Any

from .._errors import ExperimentDirectoryError
from ..checkpoint._files import list_checkpoints
from ..directory._lock import is_locked

__all__ = [
    "PATCH_NAME",
    "RECORD_FORMAT",
    "RECORD_NAME",
    "RECORD_VERSION",
    "last_activity",
    "latest_valid_checkpoint",
    "read_run_record",
    "record_path",
    "resolve_status",
]

RECORD_NAME = "run.json"
"""The run record's file name, in the experiment's ``Configurations/`` folder."""

PATCH_NAME = "git_diff.patch"
"""The uncommitted changes of the code at start, next to the run record."""

RECORD_FORMAT = "speedrun-run-record"
RECORD_VERSION = 1


def record_path(directory: str | os.PathLike[str]) -> str:
    """``<directory>/Configurations/run.json``."""
    return os.path.join(os.fspath(directory), "Configurations", RECORD_NAME)


def read_run_record(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run record of ``directory``, or None when it has none.

    Raises
    ------
    ExperimentDirectoryError
        The record exists but cannot be read or is not a speedrun run record.
    """
    path = record_path(directory)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ExperimentDirectoryError(
            f"cannot read the run record {path}: {getattr(error, 'strerror', None) or error}; "
            "check its permissions"
        ) from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ExperimentDirectoryError(
            f"{path} is not valid JSON ({error}); expected a speedrun run record. Restore it "
            "or delete it (the run's configuration and checkpoints do not depend on it)"
        ) from None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise ExperimentDirectoryError(
            f"{path} is not a speedrun run record (expected a JSON object with "
            f"format={RECORD_FORMAT!r}); restore it or delete it"
        )
    return data


def resolve_status(directory: str | os.PathLike[str], record: dict[str, Any] | None) -> str:
    """The status of a run: the record's, with ``running`` checked against the writer lock.

    ``running`` with a free lock is ``killed``; a directory without a record is ``running``
    while locked, else ``unknown`` (made by the original speedrun, or without ``auto_setup``).
    """
    status = record.get("status") if record else None
    if status in (None, "running"):
        if is_locked(directory):
            return "running"
        return "killed" if status == "running" else "unknown"
    return str(status)


_ZIP_END = b"PK\x05\x06"
_TORCH_LEGACY_PREFIX = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def _looks_complete(path: str) -> bool:
    """A cheap check that a checkpoint file was written to the end, without unpickling it.

    torch archives must hold the zip end record in their last 64 KiB; pickle streams (dill,
    pickle, the original speedrun's files) must end with pickle's STOP opcode. A sharded
    checkpoint directory must be committed (DCP's metadata and speedrun's commit marker).
    """
    if os.path.isdir(path):
        from ..checkpoint._shard_dirs import ENVELOPE_NAME, is_committed

        return is_committed(path) and _looks_complete(os.path.join(path, ENVELOPE_NAME))
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(16)
            if size < 2 or len(head) < 2:
                return False
            if head.startswith(b"PK\x03\x04"):
                tail_size = min(size, 65536 + 22)
                handle.seek(size - tail_size)
                return _ZIP_END in handle.read(tail_size)
            if head[0] == 0x80:
                if head.startswith(_TORCH_LEGACY_PREFIX):
                    return True  # torch < 1.6: raw storage bytes end the file
                handle.seek(size - 1)
                return handle.read(1) == b"."
    except OSError:
        return False
    return False


def last_activity(directory: str | os.PathLike[str]) -> float | None:
    """When a run last wrote: the newest mtime of its checkpoints and of the files in Logs/."""
    times = []
    for folder in ("Weights", "Logs"):
        try:
            with os.scandir(os.path.join(os.fspath(directory), folder)) as entries:
                for entry in entries:
                    try:
                        times.append(entry.stat().st_mtime)
                    except OSError:
                        continue
        except OSError:
            continue
    return max(times) if times else None


def latest_valid_checkpoint(directory: str | os.PathLike[str]) -> tuple[int, str] | None:
    """``(step, path)`` of the newest checkpoint in ``<directory>/Weights`` that looks complete.

    Nothing is unpickled (no torch needed): see :func:`_looks_complete`.
    """
    try:
        entries = list_checkpoints(os.path.join(os.fspath(directory), "Weights"))
    except Exception:
        return None
    for step, path in reversed(entries):
        if _looks_complete(os.fspath(path)):
            return step, os.fspath(path)
    return None
