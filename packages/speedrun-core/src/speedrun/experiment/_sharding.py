"""The experiment's side of sharded checkpoints (FSDP2/DTensor through DCP).

``BaseExperiment.checkpoint()`` asks :func:`save_sharded` first: when the state holds DTensors
(or ``training/checkpoint_sharded`` is true) every process writes its shards, and the main
process the rest, into one checkpoint directory (:mod:`speedrun.checkpoint._sharded`); with
``training/checkpoint_async`` the save continues in the background and is waited for at the next
checkpoint, at a preemption and at the end of the run (:func:`wait`). ``load_from_checkpoint()``
hands a loaded sharded checkpoint to :func:`load_sharded`, which loads the shards into the live
modules and optimizers and returns this process's random state.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING

from ..checkpoint._files import class_path
from ..distributed import _ranks

if TYPE_CHECKING:
    from typing import Any

    from ..checkpoint._files import Checkpoint
    from ..checkpoint._sharded import PendingSave

__all__ = ["is_sharded_save", "load_sharded", "save_sharded", "wait"]

_pending: dict[int, PendingSave] = {}  # id(experiment) -> its asynchronous save in flight


def is_sharded_save(experiment: Any, state: dict[str, Any]) -> bool:
    """Whether a checkpoint of ``state`` now would be a sharded one (see :func:`save_sharded`)."""
    setting = experiment.config_value("training/checkpoint_sharded")
    if setting is not True and sys.modules.get("torch") is None:
        return False
    from ..checkpoint._sharded import wants_sharded_save

    return wants_sharded_save(state, setting)


def save_sharded(experiment: Any, directory: str, random_state_key: str) -> bool:
    """Save a sharded checkpoint if the experiment's state calls for one (True), else False.

    Waits for the experiment's previous asynchronous save first, whatever comes next.
    """
    wait(experiment)
    setting = experiment.config_value("training/checkpoint_sharded")
    if setting is not True and sys.modules.get("torch") is None:  # nothing can be sharded
        return False
    from ..checkpoint._sharded import PendingSave, save_shards, wants_sharded_save

    state = experiment._checkpoint_state()
    if not wants_sharded_save(state, setting):
        return False
    result = save_shards(
        directory,
        experiment.step,
        state,
        experiment_class=class_path(experiment),
        random_state_key=random_state_key,
        force=setting is True,
        keep=experiment.config_value("training/checkpoint_keep"),
        asynchronous=experiment._checkpoint_async(),
    )
    if isinstance(result, PendingSave):
        _pending[id(experiment)] = result
    return True


def wait(experiment: Any, *, failing: bool = False) -> None:
    """Block until the experiment's asynchronous sharded save (if any) is committed.

    With ``failing`` (the run is ending with an error) a failed save is reported with a warning
    instead of an exception, so that it does not hide the run's own error.
    """
    pending = _pending.pop(id(experiment), None)
    if pending is None:
        return
    try:
        pending.wait()
    except Exception as error:
        if not failing:
            raise
        warnings.warn(str(error), stacklevel=2)


def load_sharded(experiment: Any, loaded: Checkpoint, descriptor: Any, random_state: Any) -> Any:
    """Load the shards of the sharded checkpoint ``loaded`` into the experiment's live objects;
    return the random state this process restores (its own, saved in the directory)."""
    from ..checkpoint._sharded import load_rank_random_state, load_shards

    wait(experiment)
    load_shards(loaded.path, descriptor, experiment.__dict__)
    rank = _ranks.get_rank()
    if rank == 0:
        return random_state
    return load_rank_random_state(os.fspath(loaded.path), loaded.step, rank)
