"""Checkpoints that never lose work: atomic durable saves, discovery, validated loads, retention.

A checkpoint is one file ``checkpoint_iter_{step}.pt`` in an experiment's ``Weights/`` folder,
holding an *envelope*::

    {"format": "speedrun-checkpoint", "version": 1, "experiment_class": "module.QualName",
     "step": 1200, "serializer": "torch", "saved_at": 1717171717.0, "state": {...}}

The serializer is ``torch.save`` when torch is installed, else dill, else pickle. Loads detect
the format from the file itself (torch's zip archive, or a pickle stream that starts with a
small speedrun header naming the serializer), so a file always loads with the reader that
matches its writer. Files named like the original speedrun's ``ckpt_iter_{step}.pt`` are
discovered and loaded too.

Checkpoints are trusted files: loading one unpickles arbitrary objects (``torch.load`` runs
with ``weights_only=False`` so that whole experiment states restore), and unpickling can run
code. Only load checkpoints that you or people you trust wrote.
"""

from __future__ import annotations

import contextlib
import errno
import operator
import os
import pickle
import re
import stat
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple, Union

from ._errors import CheckpointError
from ._fs import atomic_open

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "SERIALIZERS",
    "Checkpoint",
    "checkpoint_file_name",
    "class_path",
    "find_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_latest_valid",
    "prune_checkpoints",
    "save_checkpoint",
]

PathLike = Union[str, "os.PathLike[str]"]

CHECKPOINT_FORMAT = "speedrun-checkpoint"
CHECKPOINT_VERSION = 1
SERIALIZERS = ("torch", "dill", "pickle")

_NAME_RE = re.compile(r"^(checkpoint|ckpt)_iter_(0|[1-9][0-9]*)\.pt$")
_TEMP_RE = re.compile(r"^\.(?:checkpoint|ckpt)_iter_(?:0|[1-9][0-9]*)\.pt\.[A-Za-z0-9_]+\.tmp$")
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = 0x80  # PROTO opcode: every pickle of protocol >= 2 starts with it
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first object of torch's pre-1.6 format
_HEADER_FORMAT = "speedrun-checkpoint-header"


class Checkpoint(NamedTuple):
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

    step: int
    state: dict[str, Any]
    path: Path
    experiment_class: str | None
    serializer: str
    legacy: bool = False

    def __repr__(self) -> str:  # the state can be gigabytes: leave it out
        return (f"Checkpoint(step={self.step}, path={str(self.path)!r}, "
                f"experiment_class={self.experiment_class!r}, serializer={self.serializer!r}, "
                f"legacy={self.legacy})")


class _CorruptCheckpointError(CheckpointError):
    """A checkpoint file is truncated, corrupt or not a speedrun checkpoint (skippable)."""


class _MissingLibraryError(ImportError):
    """Loading a checkpoint needs a library (torch, dill) that is not installed."""


def checkpoint_file_name(step: int) -> str:
    """Return the file name of the checkpoint for ``step``: ``checkpoint_iter_{step}.pt``."""
    return f"checkpoint_iter_{_check_step(step)}.pt"


def class_path(obj: Any) -> str:
    """Return ``"module.QualName"`` of a class, or of an instance's class."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


# ------------------------------------------------------------------------------------------------
# discovery


def _scan(directory: Path) -> list[tuple[int, int, Path]]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise CheckpointError(
            f"Expected a checkpoint folder, got a file: {directory}. "
            "Pass the experiment's Weights/ folder."
        ) from None
    except OSError as exc:
        raise CheckpointError(f"Cannot list checkpoint folder {directory}: {exc}") from exc
    found = []
    for name in names:
        match = _NAME_RE.match(name)
        if match:
            rank = 1 if match.group(1) == "checkpoint" else 0  # same step: new name is newer
            found.append((int(match.group(2)), rank, directory / name))
    found.sort(key=lambda item: (item[0], item[1]))
    return found


def list_checkpoints(directory: PathLike) -> list[tuple[int, Path]]:
    """List the checkpoint files in ``directory``, oldest step first.

    Only speedrun's names count: ``checkpoint_iter_{step}.pt`` and the original speedrun's
    ``ckpt_iter_{step}.pt`` (listed before the new name when both exist for one step). Temp
    files of interrupted saves and any other file are ignored. A missing folder has none.
    """
    return [(step, path) for step, _, path in _scan(Path(directory))]


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
# save


def save_checkpoint(
    directory: PathLike,
    step: int,
    state: Mapping[str, Any],
    *,
    experiment_class: str,
    keep: int | None = None,
    serializer: str | None = None,
) -> Path:
    """Save ``state`` as the checkpoint for ``step``, atomically and durably.

    The file is written to a temp file in the same folder (streamed: no in-memory copy of the
    state), flushed, fsynced, renamed over ``checkpoint_iter_{step}.pt`` and the folder fsynced.
    A crash or ``kill -9`` at any instant leaves the previous checkpoints intact and no
    half-written file under a checkpoint name.

    Parameters
    ----------
    directory
        The checkpoint folder (the experiment's ``Weights/``); created when missing.
    step
        The step to save (a non-negative int).
    state
        Mapping of attribute names to values (models, optimizers, tensors, plain objects).
    experiment_class
        ``"module.QualName"`` of the experiment (see :func:`class_path`), checked on load.
    keep
        Keep only the newest ``keep`` checkpoints after this save (None keeps all). Only files
        with speedrun's checkpoint names are deleted, and never the one just written.
    serializer
        ``"torch"``, ``"dill"`` or ``"pickle"``; None picks torch if installed, else dill,
        else pickle.

    Returns
    -------
    Path
        The checkpoint file written.

    Raises
    ------
    CheckpointError
        When an entry of ``state`` cannot be pickled (the message names it and the
        ``register_unpickleable`` call that fixes it), or the disk refuses the write.
    """
    step = _check_step(step)
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"Expected the checkpoint state to be a dict of attribute names to values, "
            f"got {type(state).__name__}."
        )
    if not isinstance(experiment_class, str) or not experiment_class:
        raise CheckpointError(
            f"Expected experiment_class as a 'module.QualName' string, got {experiment_class!r}; "
            "use speedrun._checkpoint.class_path(experiment)."
        )
    if keep is not None:
        _check_keep(keep)
    chosen = _resolve_serializer(serializer)
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"Cannot create the checkpoint folder {folder}: {exc}") from exc
    target = folder / checkpoint_file_name(step)
    if os.path.lexists(target) and not target.is_symlink() and not target.is_file():
        raise CheckpointError(
            f"Cannot save checkpoint to {target}: a non-file (folder or device) already has "
            "that name. Move it out of the checkpoint folder; nothing was written."
        )
    envelope: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "experiment_class": experiment_class,
        "step": step,
        "serializer": chosen,
        "saved_at": time.time(),
        "state": dict(state),
    }
    started = envelope["saved_at"]
    try:
        with atomic_open(target, "wb") as handle:
            _dump(envelope, handle, chosen)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as exc:
        disk_error = _find_disk_error(exc)
        if disk_error is not None:
            raise CheckpointError(_disk_failure_message(target, disk_error)) from exc
        raise _save_failure(target, step, envelope["state"], chosen, exc) from exc
    _remove_stale_temp_files(folder, before=started)
    if keep is not None:
        prune_checkpoints(folder, keep, protect=target)
    return target


def prune_checkpoints(
    directory: PathLike, keep: int, *, protect: PathLike | None = None
) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints in ``directory``; return the deleted paths.

    Newest means highest step. ``protect`` (the file just written) is always kept and counts
    toward ``keep``. Only regular files (or symlinks) with speedrun's checkpoint names are
    deleted; a file that cannot be deleted is reported with a warning and left alone.
    """
    _check_keep(keep)
    protected = Path(protect).name if protect is not None else None
    entries = [path for _, _, path in _scan(Path(directory))]
    others = [path for path in entries if path.name != protected]
    retained = keep - 1 if len(others) < len(entries) else keep
    doomed = others[: max(len(others) - retained, 0)]  # oldest first
    deleted = []
    for path in doomed:
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


def _save_failure(
    target: Path, step: int, state: dict[str, Any], serializer: str, exc: BaseException
) -> CheckpointError:
    offenders = _find_unpicklable(state, serializer)
    intact = "The previous checkpoints are untouched and no partial file was left behind."
    if not offenders:
        return CheckpointError(
            f"Could not save checkpoint step {step} to {target} with {serializer}: "
            f"{type(exc).__name__}: {exc}. {intact}"
        )
    names = [name for name, _ in offenders]
    details = "; ".join(f"{name!r} ({type(err).__name__}: {err})" for name, err in offenders)
    call = ", ".join(repr(str(name)) for name in names)
    subject = "attribute" if len(names) == 1 else "attributes"
    return CheckpointError(
        f"Could not save checkpoint step {step} to {target}: {subject} "
        f"{', '.join(repr(n) for n in names)} cannot be pickled: {details}. Leave "
        f"{'it' if len(names) == 1 else 'them'} out of checkpoints with "
        f"self.register_unpickleable({call}) and recreate {'it' if len(names) == 1 else 'them'} "
        f"after loading. {intact}"
    )


def _find_disk_error(exc: BaseException) -> OSError | None:
    """The OSError with an errno in ``exc``'s chain (torch.save wraps it in a RuntimeError)."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return current
        current = current.__cause__ or current.__context__
    return None


def _disk_failure_message(target: Path, exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    hint = ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = " Free disk space (or lower `keep` to retain fewer checkpoints) and save again."
    elif exc.errno == errno.EROFS:
        hint = " The folder is on a read-only file system; point the experiment elsewhere."
    return (
        f"Could not write checkpoint {target}: {exc.strerror or exc} ({code}). Nothing was "
        f"replaced: the previous checkpoints in {target.parent} are intact and the partial "
        f"temp file was removed.{hint}"
    )


class _NullSink:
    def write(self, data: Any) -> int:
        return len(memoryview(data))


def _find_unpicklable(state: dict[str, Any], serializer: str) -> list[tuple[str, BaseException]]:
    """Try each top-level entry on its own (failure path only; tensor bytes are not copied)."""
    module: Any = pickle
    if serializer == "dill":
        import dill

        module = dill
    torch = sys.modules.get("torch")

    class _Probe(module.Pickler):  # type: ignore[misc, name-defined]
        def persistent_id(self, obj: Any) -> Any:
            if torch is not None and (
                isinstance(obj, torch.storage.TypedStorage) or torch.is_storage(obj)
            ):
                return "storage"
            return None

    offenders = []
    for name, value in state.items():
        try:
            _Probe(_NullSink(), protocol=5, buffer_callback=lambda _buffer: None).dump(value)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # noqa: BLE001 - any failure names the attribute
            offenders.append((name, err))
    return offenders


def _remove_stale_temp_files(folder: Path, *, before: float) -> None:
    """Remove temp files of interrupted saves (untouched since this save began)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not _TEMP_RE.match(name):
            continue
        path = folder / name
        try:
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_mtime < before:
                path.unlink()
        except OSError:
            continue


def _resolve_serializer(serializer: str | None) -> str:
    if serializer is None or serializer == "auto":
        for name in SERIALIZERS:
            try:
                __import__(name)
            except ImportError:
                continue
            return name
        return "pickle"  # pragma: no cover - pickle always imports
    if serializer not in SERIALIZERS:
        raise CheckpointError(
            f"Expected serializer to be one of {', '.join(SERIALIZERS)} (or None for automatic), "
            f"got {serializer!r}."
        )
    try:
        __import__(serializer)
    except ImportError:
        raise ImportError(
            f"The {serializer!r} checkpoint serializer needs {serializer}: pip install {serializer}"
        ) from None
    return serializer


def _dump(envelope: dict[str, Any], handle: IO[bytes], serializer: str) -> None:
    if serializer == "torch":
        import torch

        torch.save(envelope, handle)
        return
    # A pickle stream: first a tiny header (plain pickle) naming the serializer, then the payload.
    pickle.dump(
        {"format": _HEADER_FORMAT, "version": CHECKPOINT_VERSION, "serializer": serializer},
        handle,
        protocol=2,
    )
    if serializer == "dill":
        import dill

        dill.dump(envelope, handle, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        pickle.dump(envelope, handle, protocol=pickle.HIGHEST_PROTOCOL)


# ------------------------------------------------------------------------------------------------
# load


def load_checkpoint(
    path: PathLike,
    step: int | None = None,
    *,
    experiment_class: str | None = None,
    strict_class: bool = True,
    map_location: Any = None,
) -> Checkpoint:
    """Load a checkpoint file, or one from a checkpoint folder.

    Parameters
    ----------
    path
        A checkpoint file, or a checkpoint folder: then ``step`` picks the file (see
        :func:`find_checkpoint`), and without ``step`` the newest valid checkpoint loads (see
        :func:`load_latest_valid`).
    step
        With a folder: the step to load. With a file: must be None.
    experiment_class
        ``"module.QualName"`` of the loading experiment. With ``strict_class=True`` a file
        written by another class raises :class:`CheckpointError` naming both; pass
        ``strict_class=False`` to load it anyway. Classes defined in ``__main__`` match the
        same class name imported from a module (a script run both ways).
    strict_class
        Whether a class mismatch is an error.
    map_location
        Passed to ``torch.load`` (e.g. ``"cpu"`` to load a GPU checkpoint on a CPU machine).

    Raises
    ------
    CheckpointError
        When the file is missing, unreadable, truncated, corrupt, not a speedrun checkpoint,
        of a newer format version, or written by another experiment class; when a folder has
        no checkpoint (for ``step``: the message lists the steps that exist).
    ImportError
        When the file needs a library that is not installed (torch or dill), naming it.
    """
    target = Path(path)
    is_folder = target.is_dir() and not _NAME_RE.match(target.name)
    if is_folder or (step is not None and not os.path.lexists(target)):
        if step is not None:
            target = find_checkpoint(target, step)
        else:
            found = load_latest_valid(
                target,
                experiment_class=experiment_class,
                strict_class=strict_class,
                map_location=map_location,
            )
            if found is None:
                raise CheckpointError(
                    f"No checkpoint in {target}: expected files named checkpoint_iter_<step>.pt. "
                    "Save one first (checkpoint()), or start without resuming."
                )
            return found
    elif step is not None:
        raise CheckpointError(
            f"Expected either a checkpoint file or a folder with a step, got the file {target} "
            f"and step={step!r}. Pass the folder with the step, or the file alone."
        )
    return _load(target, experiment_class, strict_class, map_location)


def load_latest_valid(
    directory: PathLike,
    *,
    experiment_class: str | None = None,
    strict_class: bool = True,
    map_location: Any = None,
) -> Checkpoint | None:
    """Load the newest checkpoint in ``directory`` that loads.

    Truncated, corrupt, unreadable or foreign files under checkpoint names are skipped with a
    warning naming the file and the reason (and never deleted). Returns None when the folder
    holds no checkpoint file.

    Raises
    ------
    CheckpointError
        When checkpoint files exist but none of them loads (the message lists each with its
        reason), or on a class mismatch (see :func:`load_checkpoint`); those are not skipped,
        so a resume never silently starts over.
    ImportError
        When the newest file needs a library that is not installed.
    """
    entries = _scan(Path(directory))
    if not entries:
        return None
    failures = []
    for _, _, path in reversed(entries):
        try:
            return _load(path, experiment_class, strict_class, map_location)
        except _CorruptCheckpointError as exc:
            warnings.warn(f"Skipping checkpoint {path}: {exc}", stacklevel=2)
            failures.append(f"{path.name}: {exc}")
    raise CheckpointError(
        f"None of the {len(entries)} checkpoint files in {directory} loads:\n  "
        + "\n  ".join(failures)
        + "\nMove the broken files out of the folder to start over, or restore a good copy."
    )


def _load(path: Path, expected: str | None, strict_class: bool, map_location: Any) -> Checkpoint:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        kind = "a dangling symlink" if os.path.islink(path) else "missing"
        raise _CorruptCheckpointError(f"no checkpoint file at {path} ({kind})") from None
    except OSError as exc:
        raise _CorruptCheckpointError(f"cannot read {path}: {exc}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise _CorruptCheckpointError(f"{path} is a folder, not a checkpoint file")
    if not stat.S_ISREG(info.st_mode):
        raise _CorruptCheckpointError(f"{path} is not a regular file")
    if info.st_size == 0:
        raise _CorruptCheckpointError(f"{path} is empty (truncated)")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise _CorruptCheckpointError(f"cannot read {path}: {exc}") from exc
    if magic == _ZIP_MAGIC:
        payload, serializer = _load_torch(path, map_location), "torch"
    elif magic[:1] == bytes([_PICKLE_MAGIC]):
        payload, serializer = _load_pickle_stream(path, map_location)
    else:
        raise _CorruptCheckpointError(
            f"{path} is not a speedrun checkpoint: it starts with bytes {magic!r}, expected a "
            "torch.save archive or a pickle stream"
        )
    return _unwrap(path, payload, serializer, expected, strict_class)


def _load_torch(path: Path, map_location: Any) -> Any:
    try:
        import torch
    except ImportError:
        raise _MissingLibraryError(
            f"Checkpoint {path} was written by torch.save; loading it needs torch: "
            "pip install torch"
        ) from None
    with _unpickling_errors(path):
        return torch.load(os.fspath(path), map_location=map_location, weights_only=False)


def _load_pickle_stream(path: Path, map_location: Any) -> tuple[Any, str]:
    with _unpickling_errors(path), open(path, "rb") as handle:
        first = pickle.load(handle)
        if isinstance(first, dict) and first.get("format") == _HEADER_FORMAT:
            serializer = first.get("serializer")
            if serializer == "dill":
                try:
                    import dill
                except ImportError:
                    raise _MissingLibraryError(
                        f"Checkpoint {path} was written with dill; loading it needs dill: "
                        "pip install dill"
                    ) from None
                return dill.load(handle), "dill"
            if serializer == "pickle":
                return pickle.load(handle), "pickle"
            raise _CorruptCheckpointError(
                f"{path} names an unknown serializer {serializer!r}; expected 'dill' or 'pickle'"
            )
        if isinstance(first, int) and first == _TORCH_LEGACY_MAGIC:  # torch < 1.6 file format
            return _load_torch(path, map_location), "torch"
        return first, "pickle"  # a bare pickle (e.g. written by hand)


@contextlib.contextmanager
def _unpickling_errors(path: Path) -> Iterator[None]:
    """Turn deserialization failures into CheckpointErrors; truncation and corruption skippable."""
    try:
        yield
    except (CheckpointError, _MissingLibraryError, MemoryError):
        raise
    except Exception as exc:
        if isinstance(exc, ImportError) or (
            isinstance(exc, AttributeError) and "Can't get attribute" in str(exc)
        ):
            raise CheckpointError(
                f"Checkpoint {path} refers to code that cannot be imported now "
                f"({type(exc).__name__}: {exc}). Install the missing package or restore the "
                "renamed module or class, then load again."
            ) from exc
        raise _CorruptCheckpointError(
            f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc


def _unwrap(
    path: Path, payload: Any, serializer: str, expected: str | None, strict_class: bool
) -> Checkpoint:
    name_match = _NAME_RE.match(path.name)
    if not (isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT):
        if name_match and name_match.group(1) == "ckpt" and isinstance(payload, dict):
            # The original speedrun pickled the experiment's attribute dict as is.
            return Checkpoint(
                step=int(name_match.group(2)),
                state=payload,
                path=path,
                experiment_class=None,
                serializer=serializer,
                legacy=True,
            )
        raise _CorruptCheckpointError(
            f"{path} is not a speedrun checkpoint: expected a dict with "
            f"format={CHECKPOINT_FORMAT!r}, found {type(payload).__name__}"
        )
    version = payload.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"Checkpoint {path} has format version {version!r}; this speedrun reads versions up "
            f"to {CHECKPOINT_VERSION}. Upgrade speedrun-core to load it."
        )
    step, state, saved_class = (
        payload.get("step"),
        payload.get("state"),
        payload.get("experiment_class"),
    )
    if isinstance(step, bool) or not isinstance(step, int) or not isinstance(state, dict):
        raise _CorruptCheckpointError(
            f"{path} has a malformed envelope: expected an int 'step' and a dict 'state', "
            f"found {type(step).__name__} and {type(state).__name__}"
        )
    if name_match and int(name_match.group(2)) != step:
        warnings.warn(
            f"Checkpoint {path} is named for step {name_match.group(2)} but holds step {step}; "
            f"using step {step}.",
            stacklevel=3,
        )
    if (
        strict_class
        and expected is not None
        and isinstance(saved_class, str)
        and not _classes_match(saved_class, expected)
    ):
        raise CheckpointError(
            f"Checkpoint {path} was saved by experiment class {saved_class!r}, but "
            f"{expected!r} is loading it. Load it with the class that wrote it, or pass "
            "strict_class=False to load the state into this class anyway."
        )
    return Checkpoint(
        step=step,
        state=state,
        path=path,
        experiment_class=saved_class if isinstance(saved_class, str) else None,
        serializer=str(payload.get("serializer", serializer)),
    )


def _classes_match(saved: str, expected: str) -> bool:
    if saved == expected:
        return True
    for main, other in ((saved, expected), (expected, saved)):
        if main.startswith("__main__."):
            qualname = main[len("__main__.") :]
            if other == qualname or other.endswith("." + qualname):
                return True
    return False


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
