"""Sharded checkpoints through ``torch.distributed.checkpoint`` (DCP), for FSDP2/DTensor models.

Under torchrun with a model sharded by ``torch.distributed.fsdp.fully_shard`` (or any DTensor),
no process holds the whole model, so the single-file checkpoint of rank 0 cannot hold it either.
:func:`save_shards` writes one checkpoint *directory* instead (layout in
:mod:`speedrun.checkpoint._shard_dirs`):

1. the main process clears ``Weights/.checkpoint_iter_<step>.saving/``; all ranks meet;
2. the main process writes the envelope (everything that is not sharded: step, epoch, cache,
   plain attributes, its random state, and a descriptor of the sharded attributes); every other
   rank writes its random state;
3. every rank writes its shards with ``dcp.save`` (or ``dcp.async_save``): modules through
   ``get_model_state_dict``, optimizers through ``get_optimizer_state_dict`` (keyed by parameter
   names, so that they reshard), DTensors as they are. DCP writes ``.metadata`` on rank 0 once
   every rank's shards are on disk (fsynced);
4. the main process writes speedrun's commit marker, fsyncs the directory, renames it to
   ``checkpoint_iter_<step>/``, fsyncs ``Weights/`` and applies retention.

A kill of any rank before the rename leaves only the hidden ``.saving`` directory (removed by the
next save) and the previous checkpoints untouched. :func:`load_shards` reads a checkpoint back into
the live objects with any number of processes, a single process without a process group too
(DCP reshards). torch is imported by the functions that use it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from .._errors import CheckpointError
from ..directory._fs import fsync_directory
from ._files import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    _check_step,
    prune_checkpoints,
    record_checkpoint,
)
from ._random_state import RANK_STATE_FORMAT, read_rank_state
from ._serialize import dump, find_unpicklable
from ._shard_dirs import (
    COMMIT_FORMAT,
    COMMIT_MARKER,
    ENVELOPE_NAME,
    directory_name,
    rank_state_name,
    remove_stale_directories,
    temp_directory_name,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from concurrent.futures import Future
    from pathlib import Path
    from typing import IO, Any

__all__ = [
    "SHARDED_KEY",
    "PendingSave",
    "load_rank_random_state",
    "load_shards",
    "save_shards",
    "wants_sharded_save",
]

SHARDED_KEY = "__speedrun_sharded__"
"""Key of the envelope's state that describes the sharded attributes (in place of their values)."""

_DESCRIPTOR_FORMAT = "speedrun-sharded"
_async_groups: dict[int, Any] = {}  # id(default group) -> the gloo group of async saves


# ------------------------------------------------------------------------------------------------
# what is sharded


def _torch_distributed() -> tuple[Any, int, int]:
    """``(torch.distributed or None, rank, world size)``: None without a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def _is_dtensor(value: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(value, DTensor)


def _holds_dtensor(value: Any, depth: int = 0) -> bool:
    import torch

    if isinstance(value, torch.nn.Module):
        return any(map(_is_dtensor, value.parameters())) or any(map(_is_dtensor, value.buffers()))
    if isinstance(value, torch.optim.Optimizer):
        return any(_is_dtensor(p) for group in value.param_groups for p in group["params"])
    if _is_dtensor(value):
        return True
    if depth < 4 and isinstance(value, Mapping):
        return any(_holds_dtensor(item, depth + 1) for item in value.values())
    if depth < 4 and isinstance(value, (list, tuple)):
        return any(_holds_dtensor(item, depth + 1) for item in value)
    return False


def wants_sharded_save(state: Mapping[str, Any], setting: bool | None) -> bool:
    """Whether ``state`` is saved as a sharded checkpoint.

    ``setting`` is ``training/checkpoint_sharded``: True always, None when the state holds
    DTensors (FSDP2 parameters or optimizer state), False never (then DTensors are an error).
    """
    import sys

    if setting is True:
        return True
    if sys.modules.get("torch") is None:  # no torch, no DTensor: the single-file case is free
        return False
    try:
        import torch.distributed.tensor  # noqa: F401 - a torch built without distributed: none
    except ImportError:
        return False
    sharded = [name for name, value in state.items() if _holds_dtensor(value)]
    if sharded and setting is False:
        raise CheckpointError(
            f"Attributes {', '.join(map(repr, sharded))} hold sharded tensors (DTensor, FSDP2), "
            "but training/checkpoint_sharded is false: a single-file checkpoint of the main "
            "process would hold only its own shards. Set training/checkpoint_sharded to true "
            "(or remove it) to write a sharded checkpoint."
        )
    return bool(sharded)


def _plan(state: Mapping[str, Any], force: bool) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``({attribute: "module"|"optimizer"|"value"}, {optimizer: [its modules]})``."""
    import torch

    kinds: dict[str, str] = {}
    for name, value in state.items():
        if isinstance(value, torch.nn.Module):
            if force or _holds_dtensor(value):
                kinds[name] = "module"
        elif not isinstance(value, torch.optim.Optimizer) and _holds_dtensor(value):
            kinds[name] = "value"
    owners: dict[str, list[str]] = {}
    modules = {name: state[name] for name, kind in kinds.items() if kind == "module"}
    for name, value in state.items():
        if not isinstance(value, torch.optim.Optimizer):
            continue
        params = {id(p) for group in value.param_groups for p in group["params"]}
        found = sorted(
            module_name
            for module_name, module in modules.items()
            if params & {id(p) for p in module.parameters()}
        )
        covered = set().union(*({id(p) for p in modules[m].parameters()} for m in found))
        if found and params <= covered:
            kinds[name], owners[name] = "optimizer", found
        elif _holds_dtensor(value):
            raise CheckpointError(
                f"The optimizer {name!r} holds sharded parameters that belong to no module "
                "attribute of the experiment (modules saved sharded: "
                f"{sorted(modules) or 'none'}). Expected the model(s) it optimizes to be "
                "attributes of the experiment (self.model = fully_shard(...)), so that its state "
                "is saved by parameter name."
            )
    return kinds, owners


def _owner(state: Mapping[str, Any], names: list[str]) -> Any:
    import torch

    if len(names) == 1:
        return state[names[0]]
    return torch.nn.ModuleDict({name: state[name] for name in names})


def _state_dicts(
    state: Mapping[str, Any], kinds: dict[str, str], owners: dict[str, list[str]]
) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    result: dict[str, Any] = {}
    for name, kind in kinds.items():
        if kind == "module":
            result[name] = get_model_state_dict(state[name])
        elif kind == "optimizer":
            result[name] = get_optimizer_state_dict(_owner(state, owners[name]), state[name])
        else:
            result[name] = state[name]
    return result


# ------------------------------------------------------------------------------------------------
# save


class PendingSave:
    """An asynchronous sharded save in flight: :meth:`wait` until it is committed."""

    def __init__(self, step: int, target: Path, upload: Future[Any], commit: Any) -> None:
        self.step = step
        self.target = target
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._finish, args=(upload, commit), name=f"speedrun-commit-{step}"
        )
        self._thread.start()

    def _finish(self, upload: Future[Any], commit: Any) -> None:
        try:
            upload.result()
            if commit is not None:
                commit()
        except BaseException as exc:  # reported by wait()
            self._error = exc

    def done(self) -> bool:
        """Whether the save has finished (committed or failed)."""
        return not self._thread.is_alive()

    def wait(self) -> Path:
        """Block until the checkpoint is committed; return its directory.

        Raises
        ------
        CheckpointError
            The save failed; the previous checkpoints are intact.
        """
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise CheckpointError(
                f"The asynchronous sharded checkpoint of step {self.step} ({self.target}) failed: "
                f"{type(error).__name__}: {error}. It was not committed; the previous "
                "checkpoints are intact."
            ) from error
        return self.target


def save_shards(
    directory: str | os.PathLike[str],
    step: int,
    state: Mapping[str, Any],
    *,
    experiment_class: str,
    random_state_key: str,
    force: bool = False,
    keep: int | None = None,
    asynchronous: bool = False,
) -> PendingSave | Path:
    """Save ``state`` as the sharded checkpoint ``<directory>/checkpoint_iter_<step>/``.

    Every process of the job calls it at the same step with its own ``state`` (the attributes
    of its experiment; ``state[random_state_key]`` its random state). Modules and optimizers
    holding DTensors (all modules with ``force``) and DTensor values are written by every rank
    through DCP; everything else by the main process, as in a single-file checkpoint.

    With ``asynchronous`` the call returns once the shards are copied to memory (the snapshot)
    and a :class:`PendingSave`; the writing, the commit and retention happen in the background.
    Wait for it before the next call (its collectives share a process group with the next
    save's). Otherwise it returns the committed directory, in every process.

    A failure on any rank before DCP's save (a folder that cannot be created, an attribute that
    cannot be pickled) is raised on every rank as a :class:`CheckpointError`; DCP raises its
    own failures on every rank too.
    """
    from pathlib import Path

    from torch.distributed.checkpoint.filesystem import FileSystemWriter
    from torch.distributed.checkpoint.state_dict_saver import async_save, save

    step = _check_step(step)
    dist, rank, world = _torch_distributed()
    kinds, owners = _plan(state, force)
    folder = Path(directory)
    target, temp = folder / directory_name(step), folder / temp_directory_name(step)
    group = _async_group(dist) if asynchronous and dist is not None else None
    failure = None
    if rank == 0:
        import shutil

        try:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(temp, ignore_errors=True)  # a save of this step that was interrupted
            temp.mkdir()
        except OSError as exc:
            failure = f"rank 0 could not create {temp}: {exc}"
    if dist is not None:  # nobody writes into the directory before it is fresh (should rank 0
        dist.barrier(group=group)  # have failed, the others fail to write: all learn it below)
    try:
        if rank == 0:
            _write_envelope(temp, step, state, kinds, owners, world, experiment_class)
        else:
            payload = {
                "format": RANK_STATE_FORMAT,
                "version": 1,
                "rank": rank,
                "step": step,
                "world_size": world,
                "state": state.get(random_state_key),
            }
            with _durable(temp / rank_state_name(rank)) as handle:
                pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a failure must not leave the other ranks in a collective
        failure = failure or f"rank {rank}: {exc}"
    _agree(dist, group, failure, step)
    shards = _state_dicts(state, kinds, owners)
    writer = FileSystemWriter(os.fspath(temp), sync_files=True)

    def commit() -> None:
        _commit(folder, temp, target, step, world, keep)

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*assuming the intent is to save in a single")
        if asynchronous:
            response = async_save(shards, storage_writer=writer, process_group=group)
            upload = cast("Future[Any]", getattr(response, "upload_completion", response))
            return PendingSave(step, target, upload, commit if rank == 0 else None)
        save(shards, storage_writer=writer)  # raises on every rank if any rank failed
    if rank == 0:
        try:
            commit()
        except OSError as exc:
            failure = f"rank 0 could not commit {temp} as {target}: {exc}"
    _agree(dist, None, failure, step)  # committed on every rank when checkpoint() returns
    return target


def _write_envelope(
    temp: Path,
    step: int,
    state: Mapping[str, Any],
    kinds: dict[str, str],
    owners: dict[str, list[str]],
    world: int,
    experiment_class: str,
) -> None:
    """Rank 0: everything but the shards, with a descriptor of the sharded attributes."""
    rest = {name: value for name, value in state.items() if name not in kinds}
    rest[SHARDED_KEY] = {
        "format": _DESCRIPTOR_FORMAT,
        "version": 1,
        "attributes": kinds,
        "owners": owners,
        "world_size": world,
    }
    envelope = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "experiment_class": experiment_class,
        "step": step,
        "serializer": "torch",
        "saved_at": time.time(),
        "state": rest,
    }
    try:
        with _durable(temp / ENVELOPE_NAME) as handle:
            dump(envelope, handle, "torch")
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as exc:
        offenders = [name for name, _ in find_unpicklable(rest, "torch")]
        if not offenders:
            raise
        raise CheckpointError(
            f"attributes {', '.join(map(repr, offenders))} cannot be pickled ({exc}). Leave them "
            f"out of checkpoints with self.register_unpickleable({', '.join(map(repr, offenders))})"
            " and recreate them after loading"
        ) from exc


def _agree(dist: Any, group: Any, failure: str | None, step: int) -> None:
    """Every rank learns which ranks failed (one ``all_reduce``, a barrier as well), and all
    raise together rather than leaving the others waiting in a collective."""
    failed = [0] if failure is None else [1]
    if dist is not None:
        import torch

        backend = str(dist.get_backend(group))
        device = (
            "cpu"
            if "gloo" in backend or not torch.cuda.is_available()
            else (f"cuda:{torch.cuda.current_device()}")
        )
        flags = torch.zeros(dist.get_world_size(), dtype=torch.int32, device=device)
        flags[dist.get_rank()] = failure is not None
        dist.all_reduce(flags, group=group)
        failed = flags.tolist()
    if not any(failed):
        return
    ranks = [str(rank) for rank, flag in enumerate(failed) if flag]
    here = f": {failure}" if failure is not None else f" (see the output of rank {ranks[0]})"
    raise CheckpointError(
        f"The sharded checkpoint of step {step} was not saved: rank(s) {', '.join(ranks)} "
        f"failed{here}. The previous checkpoints are intact."
    )


@contextlib.contextmanager
def _durable(path: Path) -> Iterator[IO[bytes]]:
    """Write a file of the hidden directory: flushed and fsynced, no temp name of its own (the
    directory becomes visible by its rename, after the fsync of its entries)."""
    with open(path, "wb") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def _async_group(dist: Any) -> Any:
    """A gloo group of its own for async saves: their collectives run in a background thread and
    must not interleave with the training's on the default group. Created (collectively) once."""
    default = dist.distributed_c10d._get_default_group()
    group = _async_groups.get(id(default))
    if group is None:
        group = _async_groups[id(default)] = dist.new_group(backend="gloo")
    return group


def _commit(
    folder: Path, temp: Path, target: Path, step: int, world: int, keep: int | None
) -> None:
    """Main process, once every rank's shards and DCP's metadata are on disk."""
    import json

    marker = {
        "format": COMMIT_FORMAT,
        "version": 1,
        "step": step,
        "world_size": world,
        "committed_at": time.time(),
    }
    with _durable(temp / COMMIT_MARKER) as handle:
        handle.write((json.dumps(marker) + "\n").encode())
    fsync_directory(temp)  # every entry of the directory is on disk before its name changes
    aside = None
    if os.path.lexists(target):
        if not target.is_dir() or target.is_symlink():
            raise CheckpointError(
                f"Cannot commit the sharded checkpoint of step {step}: {target} exists and is "
                f"not a directory. Move it out of {folder}; the shards are in {temp}."
            )
        aside = folder / f".{target.name}.deleting.{os.getpid()}"
        os.rename(target, aside)
    # Recorded before the rename (as single-file saves are): a kill right after it leaves a
    # directory the run counts as its own; only what this run wrote counts.
    record_checkpoint(folder, target.name, None)
    os.rename(temp, target)
    fsync_directory(folder)
    if aside is not None:
        import shutil

        shutil.rmtree(aside, ignore_errors=True)
    remove_stale_directories(folder)
    if keep is not None:
        prune_checkpoints(folder, keep, protect=target)


# ------------------------------------------------------------------------------------------------
# load


def load_shards(path: str | os.PathLike[str], descriptor: Any, objects: Mapping[str, Any]) -> None:
    """Load the shards of the checkpoint directory ``path`` into the live ``objects``.

    ``descriptor`` is the envelope's ``state[SHARDED_KEY]``; ``objects`` maps attribute names to
    the experiment's current modules, optimizers and values, which must exist (built as for a
    fresh run) and are loaded in place. Works with any number of processes: with another world
    size DCP reshards, and a single process without a process group loads the full tensors into
    an unsharded model.
    """
    import torch
    from torch.distributed.checkpoint.state_dict import (
        set_model_state_dict,
        set_optimizer_state_dict,
    )
    from torch.distributed.checkpoint.state_dict_loader import load

    if not isinstance(descriptor, dict) or descriptor.get("format") != _DESCRIPTOR_FORMAT:
        raise CheckpointError(
            f"{path} has a malformed sharded-state descriptor; expected a dict with "
            f"format={_DESCRIPTOR_FORMAT!r}, got {type(descriptor).__name__}."
        )
    kinds: dict[str, str] = descriptor["attributes"]
    owners: dict[str, list[str]] = descriptor.get("owners", {})
    expected = {"module": torch.nn.Module, "optimizer": torch.optim.Optimizer}
    for name, kind in kinds.items():
        value = objects.get(name)
        wanted = expected.get(kind)
        if value is None or (wanted is not None and not isinstance(value, wanted)):
            raise CheckpointError(
                f"Checkpoint {path} holds the sharded {kind} {name!r}, but the experiment's "
                f"attribute {name!r} is {type(value).__name__}. Expected the experiment to build "
                f"its {kind}s (sharded or not) before loading, as in a fresh run, then resume."
            )
    shards = _state_dicts(objects, kinds, owners)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*assuming the intent is to load in a single")
        try:
            load(shards, checkpoint_id=os.fspath(path))
        except Exception as exc:
            raise CheckpointError(
                f"Could not load the shards of {path} ({type(exc).__name__}: {exc}). Expected "
                "the experiment's modules and optimizers to have the same parameter names and "
                "shapes as when it was saved."
            ) from exc
    for name, kind in kinds.items():
        if kind == "module":
            set_model_state_dict(objects[name], shards[name])
        elif kind == "optimizer":
            set_optimizer_state_dict(_owner(objects, owners[name]), objects[name], shards[name])


def load_rank_random_state(
    path: str | os.PathLike[str], step: int, rank: int
) -> dict[str, Any] | None:
    """The random state rank ``rank`` saved in the checkpoint directory ``path``; None (and a
    warning) when it has none, e.g. after a resume with more processes than the save had."""
    file = os.path.join(path, rank_state_name(rank))
    try:
        state = read_rank_state(file, step)
    except FileNotFoundError:
        reason = "the checkpoint was saved by fewer processes"
    except Exception as error:
        reason = f"{file} cannot be read ({type(error).__name__}: {error})"
    else:
        return state
    warnings.warn(
        f"Rank {rank} resumes from step {step} without its own random state: {reason}. Its "
        "random generators keep their current state.",
        stacklevel=3,
    )
    return None
