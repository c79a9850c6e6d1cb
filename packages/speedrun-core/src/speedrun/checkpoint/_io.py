"""Saving and loading checkpoints: atomic durable saves, validated loads, the envelope.

A checkpoint file holds an *envelope*::

    {"format": "speedrun-checkpoint", "version": 1, "experiment_class": "module.QualName",
     "step": 1200, "serializer": "torch", "saved_at": 1717171717.0, "state": {...}}

written by ``torch.save`` when torch is installed, else dill, else pickle (see
:mod:`speedrun.checkpoint._serialize`). Files of the original speedrun
(``ckpt_iter_{step}.pt``, a bare attribute dict) load too.

Loading is safe by default: torch's weights-only unpickler (or a restricted pickle unpickler)
admits only the globals that :mod:`speedrun.checkpoint._safe`'s policy allows, so a planted
file cannot run code; ``trust=True`` opts into full unpickling. Only the checkpoint files this
run wrote count (its record in ``Weights/``, see :mod:`speedrun.checkpoint._files`).

File names, discovery and retention live in :mod:`speedrun.checkpoint._files`, which also exposes
this module's functions. pathlib, pickle, torch and dill are imported by the functions that use
them, so importing this module costs nothing at start-up.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .._errors import CheckpointError
from .._homes import public_path
from ..directory._fs import atomic_open
from ._files import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    Checkpoint,
    _check_keep,
    _check_step,
    _CorruptCheckpointError,
    _match_name,
    _remove_stale_temp_files,
    _scan,
    checkpoint_file_name,
    find_checkpoint,
    forget_checkpoints,
    prune_checkpoints,
    read_manifest,
    record_checkpoint,
    warn_about_strays,
)
from ._serialize import dump, find_unpicklable, read_payload, resolve_serializer

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    PathLike = str | os.PathLike[str]

__all__ = ["check_picklable", "load_checkpoint", "load_latest_valid", "save_checkpoint"]

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
            "use speedrun.checkpoint._files.class_path(experiment)."
        )
    if keep is not None:
        _check_keep(keep)
    chosen = resolve_serializer(serializer)
    from pathlib import Path

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
    manifest = read_manifest(folder)
    if manifest is not None and target.name not in manifest["files"] and os.path.lexists(target):
        _set_aside(target, "not-written-by-this-run")  # never overwrite a file we did not write
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
    globals_used: list[str] | None = None
    try:
        with atomic_open(target, "wb") as handle:
            dump(envelope, handle, chosen)
            if chosen == "torch":
                handle.flush()
                globals_used = _globals_of(handle.name)
            # Recorded before the rename: a kill right after it leaves a file the run counts.
            record_checkpoint(folder, target.name, globals_used)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as exc:
        disk_error = _find_disk_error(exc)
        if disk_error is not None:
            raise CheckpointError(_disk_failure_message(target, disk_error)) from exc
        raise _save_failure(target, step, envelope["state"], chosen, exc) from exc
    _remove_stale_temp_files(folder, before=started)
    removed = prune_checkpoints(folder, keep, protect=target) if keep is not None else []
    if removed:
        with contextlib.suppress(OSError):  # a stale entry is harmless: its file is gone
            forget_checkpoints(folder, [path.name for path in removed])
    return target


def _globals_of(path: str) -> list[str] | None:
    """The globals (beyond torch's allow-list) a just-written torch file needs: recorded, so
    that a file later put in its place may name no other (see :mod:`._safe`)."""
    import torch

    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:
        return None


def _set_aside(path: Path, why: str) -> Path | None:
    """Rename ``path`` to ``<name>.<why>-<time>`` in its folder (no checkpoint name any more)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.{why}-{stamp}")
    counter = 1
    while os.path.lexists(aside):
        aside = path.with_name(f"{path.name}.{why}-{stamp}-{counter}")
        counter += 1
    try:
        os.rename(path, aside)
    except OSError as exc:
        raise CheckpointError(
            f"Cannot move {path} aside to {aside.name} ({exc}); it was not overwritten. Move it "
            "out of the folder yourself, then save again."
        ) from exc
    warnings.warn(
        f"Moved {path.name} aside to {aside.name} ({why.replace('-', ' ')}); it is "
        "kept, never overwritten or loaded.",
        stacklevel=3,
    )
    return aside


def _save_failure(
    target: Path, step: int, state: dict[str, Any], serializer: str, exc: BaseException
) -> CheckpointError:
    offenders = find_unpicklable(state, serializer)
    intact = "The previous checkpoints are untouched and no partial file was left behind."
    if not offenders:
        return CheckpointError(
            f"Could not save checkpoint step {step} to {target} with {serializer}: "
            f"{type(exc).__name__}: {exc}. {intact}"
        )
    return CheckpointError(
        f"Could not save checkpoint step {step} to {target}: {_describe_unpicklable(offenders)} "
        f"{intact}"
    )


def _describe_unpicklable(offenders: list[tuple[str, BaseException]]) -> str:
    names = [name for name, _ in offenders]
    details = "; ".join(f"{name!r} ({type(err).__name__}: {err})" for name, err in offenders)
    call = ", ".join(repr(str(name)) for name in names)
    subject = "attribute" if len(names) == 1 else "attributes"
    return (
        f"{subject} {', '.join(repr(n) for n in names)} cannot be pickled: {details}. Leave "
        f"{'it' if len(names) == 1 else 'them'} out of checkpoints with "
        f"self.register_unpickleable({call}) and recreate {'it' if len(names) == 1 else 'them'} "
        "after loading."
    )


def check_picklable(state: Mapping[str, Any], serializer: str | None = None) -> None:
    """Raise the error a save of ``state`` would raise for entries that cannot be pickled,
    without writing anything (tensor and array bytes are not copied)."""
    offenders = find_unpicklable(dict(state), resolve_serializer(serializer))
    if offenders:
        raise CheckpointError(
            f"Checkpoints of this experiment would fail: {_describe_unpicklable(offenders)}"
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


# ------------------------------------------------------------------------------------------------
# load


def load_checkpoint(
    path: PathLike,
    step: int | None = None,
    *,
    experiment_class: str | Sequence[str] | None = None,
    strict_class: bool = True,
    map_location: Any = None,
    trust: bool = False,
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
    trust
        Unpickle anything the file names (it can run code). Default: only what the policy of
        :mod:`speedrun.checkpoint._safe` admits; a refused global raises
        ``UnsafeCheckpointError`` naming it. ``SPEEDRUN_TRUST_CHECKPOINT=1`` sets it too.

    Raises
    ------
    CheckpointError
        When the file is missing, unreadable, truncated, corrupt, not a speedrun checkpoint,
        of a newer format version, or written by another experiment class; when a folder has
        no checkpoint (for ``step``: the message lists the steps that exist).
    ImportError
        When the file needs a library that is not installed (torch or dill), naming it.
    """
    from pathlib import Path

    target = Path(path)
    is_folder = target.is_dir() and not _match_name(target.name)
    if is_folder or (step is not None and not os.path.lexists(target)):
        if step is not None:
            target = find_checkpoint(target, step)
        else:
            found = load_latest_valid(
                target,
                experiment_class=experiment_class,
                strict_class=strict_class,
                map_location=map_location,
                trust=trust,
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
    return _load(target, experiment_class, strict_class, map_location, trust)


def load_latest_valid(
    directory: PathLike,
    *,
    experiment_class: str | Sequence[str] | None = None,
    strict_class: bool = True,
    map_location: Any = None,
    trust: bool = False,
    set_aside: bool = False,
) -> Checkpoint | None:
    """Load the newest checkpoint of this run in ``directory`` that loads.

    Only files the run wrote count (stray files are named in a warning, and ignored).
    Truncated or corrupt files are skipped with a warning naming the file and the reason, and
    never deleted; with ``set_aside=True`` (the run that holds the writer lock and will save
    again) they are renamed ``<name>.corrupt-<time>``, so no later save overwrites them. A
    file that cannot be read at all (permissions, I/O error) is not skipped: that raises.
    Returns None when the folder holds no checkpoint of this run.

    Raises
    ------
    CheckpointError
        When checkpoint files exist but none of them loads (the message lists each with its
        reason), or on a class mismatch (see :func:`load_checkpoint`); those are not skipped,
        so a resume never silently starts over.
    ImportError
        When the newest file needs a library that is not installed.
    """
    warn_about_strays(directory)
    entries = _scan(directory)
    if not entries:
        return None
    failures = []
    for _, _, path in reversed(entries):
        try:
            return _load(path, experiment_class, strict_class, map_location, trust)
        except _CorruptCheckpointError as exc:
            warnings.warn(f"Skipping checkpoint {path}: {exc}", stacklevel=2)
            failures.append(f"{path.name}: {exc}")
            if set_aside and os.path.lexists(path):
                _set_aside(path, "corrupt")
    raise CheckpointError(
        f"None of the {len(entries)} checkpoint files in {directory} loads:\n  "
        + "\n  ".join(failures)
        + "\nMove the broken files out of the folder to start over, or restore a good copy."
    )


def _recorded_globals(path: Path) -> set[str] | None:
    """The globals the run's record lists for ``path`` (None: no record, or not recorded)."""
    manifest = read_manifest(path.parent)
    entry = manifest["files"].get(path.name) if manifest is not None else None
    recorded = entry.get("globals") if isinstance(entry, dict) else None
    if not isinstance(recorded, list):
        return None
    return {name for name in recorded if isinstance(name, str)}


def _load(
    path: Path,
    expected: str | Sequence[str] | None,
    strict_class: bool,
    map_location: Any,
    trust: bool = False,
) -> Checkpoint:
    from ._safe import trusted_by_environment
    from ._serialize import _unreadable

    try:
        info = os.stat(path)
    except FileNotFoundError:
        kind = "a dangling symlink" if os.path.islink(path) else "missing"
        raise _CorruptCheckpointError(f"no checkpoint file at {path} ({kind})") from None
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if stat.S_ISDIR(info.st_mode):
        return _load_directory(
            path, expected, strict_class, map_location, trust or trusted_by_environment()
        )
    if not stat.S_ISREG(info.st_mode):
        raise _CorruptCheckpointError(f"{path} is not a regular file")
    if info.st_size == 0:
        raise _CorruptCheckpointError(f"{path} is empty (truncated)")
    trust = trust or trusted_by_environment()
    payload, serializer = read_payload(
        path, map_location, trust=trust, recorded=None if trust else _recorded_globals(path)
    )
    return _unwrap(path, payload, serializer, expected, strict_class)


def _load_directory(
    path: Path,
    expected: str | Sequence[str] | None,
    strict_class: bool,
    map_location: Any,
    trust: bool = False,
) -> Checkpoint:
    """A sharded checkpoint directory: its envelope (the state beside the shards; the shards are
    loaded into the live objects by :func:`speedrun.checkpoint._sharded.load_shards`)."""
    from ._shard_dirs import ENVELOPE_NAME, match_directory_name, not_committed_reason

    if match_directory_name(path.name) is None:
        raise _CorruptCheckpointError(f"{path} is a folder, not a checkpoint file")
    reason = not_committed_reason(path)
    if reason is not None:
        raise _CorruptCheckpointError(reason)
    payload, serializer = read_payload(
        path / ENVELOPE_NAME, map_location, trust=trust, recorded=None
    )
    return _unwrap(path, payload, serializer, expected, strict_class)


def _unwrap(
    path: Path,
    payload: Any,
    serializer: str,
    expected: str | Sequence[str] | None,
    strict_class: bool,
) -> Checkpoint:
    name_match = _match_name(path.name)
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
        loading = expected if isinstance(expected, str) else expected[0]
        raise CheckpointError(
            f"Checkpoint {path} was saved by experiment class {saved_class!r}, but "
            f"{loading!r} (neither that class nor one of its subclasses) is loading it. Load "
            "it with the class that wrote it or a subclass of it, or load it on purpose: "
            "experiment.load_from_checkpoint(strict_class=False) in code, --resume --any-class "
            "on the command line."
        )
    return Checkpoint(
        step=step,
        state=state,
        path=path,
        experiment_class=saved_class if isinstance(saved_class, str) else None,
        serializer=str(payload.get("serializer", serializer)),
    )


def _classes_match(saved: str, expected: str | Sequence[str]) -> bool:
    """Whether ``saved`` is ``expected`` or, given a sequence (a class and its bases, as
    ``BaseExperiment`` passes them), one of them: a subclass loads its base class's files.

    A class of speedrun saved under its former private path
    (``speedrun.experiment._experiment.BaseExperiment``) is its public one now."""
    saved = public_path(saved)
    for candidate in [expected] if isinstance(expected, str) else expected:
        candidate = public_path(candidate)
        if saved == candidate:
            return True
        for main, other in ((saved, candidate), (candidate, saved)):
            if main.startswith("__main__."):
                qualname = main[len("__main__.") :]
                if other == qualname or other.endswith("." + qualname):
                    return True
    return False
