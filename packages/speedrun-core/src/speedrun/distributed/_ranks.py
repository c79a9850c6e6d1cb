"""One experiment, many processes: ranks, main-process-only writes, per-rank state, preemption.

Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``), a SLURM multi-task launch
(``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``) or submitit's local executor, every process
runs the same script with the same command line. Only the *main process* (rank 0) writes: it
purges and creates the experiment directory, takes the writer lock, dumps the configuration and
the run record, and writes checkpoints and logs. The rank comes from ``torch.distributed`` once a
process group is initialised (only if torch is already imported: asking never imports it), else
from the launcher's environment variables.

The set-up barrier of ``auto_setup()`` (rank 0 sets the directory up, the others wait for
it) is in :mod:`speedrun.distributed._launch`.

Checkpoints and random state
----------------------------
A save writes one checkpoint file for the whole job, from the main process (its own random state
inside, as in a single-process run). Every other rank writes only its random generators' state to
a small side file ``Weights/random_states/rank_<r>_iter_<step>.pkl``, with no collective: a
save therefore never deadlocks, even when user code calls ``checkpoint()`` on rank 0 only (the
other ranks then warn on resume that their state is missing). On ``--resume`` every rank loads the
one checkpoint (model, optimizer, step, attributes) and then restores its own random state.

Preemption: when a process group is initialised, ``next_step()`` agrees on a pending preemption
with one tiny ``all_reduce`` (MAX of a flag) so that every rank checkpoints at the same step; then
the ranks meet at a ``barrier`` after the save, and the other ranks wait (at most a minute) for the
main process to release the directory, so that a launcher tearing down the job when the first
process exits cannot kill the main process in the middle of its clean-up.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import TYPE_CHECKING

from .._errors import CheckpointError, SpeedrunError

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "RANDOM_STATE_FOLDER",
    "checkpoint_map_location",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "load_rank_random_state",
    "main_process_only",
    "preemption_agreed",
    "rank_state_path",
    "save_rank_random_state",
    "wait_after_preemption_checkpoint",
]

RANDOM_STATE_FOLDER = "random_states"
"""Folder of the other ranks' random states, inside the checkpoint folder (``Weights/``)."""

_EXIT_WAIT_SECONDS = 60.0
_POLL_SECONDS = 0.05

# (rank, world size, local rank) variables of each launcher, most specific first: torchrun inside
# a SLURM job sets both RANK and SLURM_PROCID, and RANK is the one that counts then.
_LAUNCHERS = (
    ("RANK", ("WORLD_SIZE",), "LOCAL_RANK"),
    ("SLURM_PROCID", ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"), "SLURM_LOCALID"),
    ("SUBMITIT_LOCAL_GLOBALID", ("SUBMITIT_LOCAL_NTASKS",), "SUBMITIT_LOCAL_LOCALID"),
)


# ------------------------------------------------------------------------------------------------
# ranks


def _initialized_distributed() -> Any:
    """``torch.distributed`` if torch is imported and a process group is initialised, else None."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is None:
        return None
    try:
        if distributed.is_available() and distributed.is_initialized():
            return distributed
    except Exception:
        return None
    return None


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SpeedrunError(
            f"Expected the environment variable {name} to hold a non-negative integer (set by "
            f"torchrun or SLURM), got {raw!r}. Fix: unset it, or launch with torchrun/srun."
        ) from None
    if value < 0:
        raise SpeedrunError(f"Expected {name} to be a non-negative integer, got {value}.")
    return value


def _env_launcher() -> tuple[str, str | None, str] | None:
    for rank_name, world_names, local_name in _LAUNCHERS:
        if os.environ.get(rank_name, "").strip():
            world_name = next((n for n in world_names if os.environ.get(n, "").strip()), None)
            return rank_name, world_name, local_name
    return None


def get_rank() -> int:
    """This process's global rank: 0 for the main process and for single-process runs.

    From ``torch.distributed`` when a process group is initialised, else from ``RANK``
    (torchrun), ``SLURM_PROCID`` (srun) or ``SUBMITIT_LOCAL_GLOBALID`` (submitit's local
    executor).
    """
    distributed = _initialized_distributed()
    if distributed is not None:
        return int(distributed.get_rank())
    launcher = _env_launcher()
    if launcher is None:
        return 0
    return _env_int(launcher[0]) or 0


def get_world_size() -> int:
    """The number of processes of this experiment (1 outside a multi-process launch)."""
    distributed = _initialized_distributed()
    if distributed is not None:
        return int(distributed.get_world_size())
    launcher = _env_launcher()
    if launcher is None or launcher[1] is None:
        return 1
    return max(_env_int(launcher[1]) or 1, 1)


def get_local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK``, ``SLURM_LOCALID``); 0 by default."""
    launcher = _env_launcher()
    if launcher is None:
        return 0
    return _env_int(launcher[2]) or 0


def is_main_process() -> bool:
    """Whether this process is the main one (rank 0), the only one that writes files.

    True in single-process runs. Safe to call anywhere: it never imports torch.
    """
    return get_rank() == 0


def main_process_only(function: F) -> F:
    """Decorator: run ``function`` in the main process only; elsewhere return None.

    >>> @main_process_only  # doctest: +SKIP
    ... def save_predictions(path, predictions): ...
    """
    import functools

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if get_rank() == 0:
            return function(*args, **kwargs)
        return None

    return wrapper  # type: ignore[return-value]  # the wrapper keeps the function's signature (functools.wraps)


# ------------------------------------------------------------------------------------------------
# per-rank random state


def rank_state_path(checkpoint_directory: str, step: int, rank: int | None = None) -> str:
    """``<Weights>/random_states/rank_<rank>_iter_<step>.pkl``."""
    rank = get_rank() if rank is None else rank
    return os.path.join(checkpoint_directory, RANDOM_STATE_FOLDER, f"rank_{rank}_iter_{step}.pkl")


def _rank_state_steps(folder: str, rank: int) -> list[int]:
    prefix, suffix = f"rank_{rank}_iter_", ".pkl"
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    steps = []
    for name in names:
        if name.startswith(prefix) and name.endswith(suffix):
            middle = name[len(prefix) : -len(suffix)]
            if middle.isdigit():
                steps.append(int(middle))
    return sorted(steps)


def save_rank_random_state(
    checkpoint_directory: str,
    step: int,
    state: dict[str, Any],
    *,
    rank: int | None = None,
    keep: int | None = None,
) -> str:
    """Write this rank's random ``state`` for the checkpoint of ``step`` (atomic, durable).

    With ``keep`` (``training/checkpoint_keep``), only this rank's newest ``keep + 1`` files
    stay: one more than the checkpoints kept, since the main process may not have pruned yet.
    """
    import pickle

    from ..checkpoint._random_state import RANK_STATE_FORMAT
    from ..directory._fs import atomic_write_bytes

    rank = get_rank() if rank is None else rank
    path = rank_state_path(checkpoint_directory, step, rank)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    payload = {
        "format": RANK_STATE_FORMAT,
        "version": 1,
        "rank": rank,
        "step": step,
        "world_size": get_world_size(),
        "state": state,
    }
    try:
        atomic_write_bytes(path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError as error:
        raise CheckpointError(
            f"Rank {rank} could not write its random state for step {step} to {path}: "
            f"{error.strerror or error}. Fix: check the free space and permissions of "
            f"{checkpoint_directory}."
        ) from error
    if keep is not None and int(keep) > 0:
        for old in _rank_state_steps(folder, rank)[: -(int(keep) + 1)]:
            if old != step:
                try:
                    os.unlink(rank_state_path(checkpoint_directory, old, rank))
                except OSError:
                    pass
    return path


def load_rank_random_state(
    checkpoint_directory: str, step: int, rank: int | None = None
) -> dict[str, Any] | None:
    """This rank's random state saved with the checkpoint of ``step``; None (and a warning) if
    it is missing or unreadable, in which case the rank's generators keep their current state."""

    from ..checkpoint._random_state import read_rank_state

    rank = get_rank() if rank is None else rank
    path = rank_state_path(checkpoint_directory, step, rank)
    try:
        state = read_rank_state(path, step)
    except FileNotFoundError:
        reason = "it was not saved (was checkpoint() called on this rank too?)"
    except Exception as error:
        reason = f"it cannot be read ({type(error).__name__}: {error})"
    else:
        return state
    warnings.warn(
        f"Rank {rank} resumes from step {step} without its own random state: {path} is "
        f"missing because {reason}. Its random generators keep their current state, so its "
        "random draws will differ from the interrupted run.",
        stacklevel=3,
    )
    return None


def checkpoint_map_location() -> Any:
    """``map_location`` for loading the main process's checkpoint in this process.

    On ranks other than 0 with CUDA initialised, tensors saved on any GPU are mapped to this
    process's current device (the main process saved them on its own); None otherwise.
    """
    if get_rank() == 0:
        return None
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is None or not cuda.is_available() or not cuda.is_initialized():
            return None
        current = f"cuda:{cuda.current_device()}"
        return {f"cuda:{index}": current for index in range(cuda.device_count())}
    except Exception:
        return None


# ------------------------------------------------------------------------------------------------
# preemption across ranks


def preemption_agreed(requested: bool) -> bool:
    """Whether any rank has a pending preemption (one ``all_reduce``); ``requested`` without a
    process group. Every rank must call it at the same step (``next_step()`` does)."""
    distributed = _initialized_distributed()
    if distributed is None or distributed.get_world_size() < 2:
        return requested
    import torch

    device = "cpu"
    if distributed.get_backend() == "nccl":
        device = f"cuda:{torch.cuda.current_device()}"
    flag = torch.tensor([1 if requested else 0], dtype=torch.int32, device=device)
    distributed.all_reduce(flag, op=distributed.ReduceOp.MAX)
    return bool(flag.item())


def wait_after_preemption_checkpoint(directory: str | None) -> None:
    """After a preemption checkpoint: meet the other ranks, then let the main process finish.

    With a process group, all ranks pass a barrier once the checkpoint is written; the other
    ranks then wait (at most a minute) until the main process released the directory's writer
    lock, because launchers end the whole job when the first process exits.
    """
    distributed = _initialized_distributed()
    if distributed is None or distributed.get_world_size() < 2:
        return
    distributed.barrier()
    if directory is None or get_rank() == 0:
        return
    from ..directory._lock import is_locked

    deadline = time.monotonic() + _EXIT_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if not is_locked(directory):
                return
        except SpeedrunError:
            return
        time.sleep(_POLL_SECONDS)
