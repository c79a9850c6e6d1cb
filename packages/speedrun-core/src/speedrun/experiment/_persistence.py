"""Checkpoints of an experiment: what is saved, when, and how it is restored
(``Checkpointing``, a base class of ``BaseExperiment``); preemption at a step boundary."""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING, ClassVar

from .._errors import CheckpointError
from ..checkpoint._files import class_path, find_checkpoint, list_checkpoints

# At run time too (both are loaded by then): typing.get_type_hints resolves the class's
# attribute annotations with them.
from ..config._arguments import Arguments
from ..directory._lock import WriterLock
from ..distributed import _preemption
from ..distributed import _ranks as _distributed
from ._contract import not_checkpointed
from ._dispatch import POST_LOAD, PRE_CHECKPOINT, Dispatcher
from ._sharding import is_sharded_save, load_sharded, save_sharded
from ._sharding import wait as wait_for_sharded_save
from ._state import ExperimentState

if TYPE_CHECKING:
    from typing import Any, TypeVar

    from ..checkpoint._async import AsyncSaver

    S = TypeVar("S", bound="Checkpointing")

__all__ = ["Checkpointing", "PROCESS_ATTRIBUTES"]

_RANDOM_STATE_KEY = "__speedrun_random_state__"
#: Attributes that describe this process, not the experiment's progress: never checkpointed
#: and never overwritten by a load.
PROCESS_ATTRIBUTES = frozenset(
    {
        "_experiment_directory",
        "_tree",
        "_config_memo",
        "_configured",
        "_meta_config",
        "_argv",
        "_args",
        "_request",
        "_default_dispatch",
        "_writer_lock",
        "_resume_pending",
        "_world_size",
        "_run_record",
        "_read_only",
        "_last_saved_step",
        "_picklable_checked",
        "_flags_read",
        "_flags_reported",
        "_resume_overrides",
        "_evaluation",
        "_checkpoint_saver",
    }
)


class Checkpointing(ExperimentState, Dispatcher):
    """Saving and restoring an experiment's attributes (see the module docstring); the
    ``pre_checkpoint`` and ``post_load`` hooks come from :class:`Dispatcher`.

    Mixins name the attributes that never go into a checkpoint in ``NOT_CHECKPOINTED``; the
    union over the MRO is left out of saves and never overwritten by a load.
    """

    NOT_CHECKPOINTED: ClassVar[frozenset[str]] = PROCESS_ATTRIBUTES
    # set by the experiment's set-up (experiment/_setup.py)
    _args: Arguments | None
    _writer_lock: WriterLock | None

    def __init__(self, experiment_directory: str | os.PathLike[str] | None = None) -> None:
        self._world_size = _distributed.get_world_size()  # processes of this launch (torchrun)
        self._resume_pending = False  # --resume: load the latest checkpoint when run() starts
        self._last_saved_step: int | None = None  # step of this process's last save or load
        self._picklable_checked = False
        self._checkpoint_saver: AsyncSaver | None = None  # created by the first async save
        super().__init__(experiment_directory)

    # -- steps ---------------------------------------------------------------------------------
    def next_step(self: S) -> S:
        """Increment the step; on a pending preemption signal, checkpoint and exit (code 75).

        Raises the failure of a finished background checkpoint save, if any.
        """
        if self._checkpoint_saver is not None:
            self._checkpoint_saver.raise_failure()
        self._step = (self._step or 0) + 1
        if self._world_size > 1:  # every rank checkpoints at the same step
            if _distributed.preemption_agreed(_preemption.requested()):
                self._preempt()
        elif _preemption.requested():
            self._preempt()
        return self

    # -- checkpoints ---------------------------------------------------------------------------
    def register_unpickleable(self: S, *attributes: str) -> S:
        """Leave these attributes out of checkpoints."""
        excluded = self._meta_config["exclude_attrs_from_save"]
        excluded.extend(name for name in attributes if name not in excluded)
        return self

    def _not_checkpointed(self) -> frozenset[str]:
        """``NOT_CHECKPOINTED`` over the MRO plus the names given to ``register_unpickleable``."""
        return not_checkpointed(type(self)).union(self._meta_config["exclude_attrs_from_save"])

    def _saved_attributes(self) -> dict[str, Any]:
        excluded = self._not_checkpointed()
        return {k: v for k, v in self.__dict__.items() if k not in excluded}

    def _checkpoint_state(self) -> dict[str, Any]:
        from ..checkpoint._random_state import capture_random_state

        state = self._saved_attributes()
        state[_RANDOM_STATE_KEY] = capture_random_state()
        return state

    def _check_picklable_once(self) -> None:
        """At the first checkpoint() call that does not save: fail now, not after
        ``checkpoint_every`` steps, if an attribute cannot be saved (the bytes of tensors and
        arrays are not copied)."""
        if self._picklable_checked or not _distributed.is_main_process():
            return
        self._picklable_checked = True
        from ..checkpoint._io import check_picklable

        attributes = self._saved_attributes()
        if is_sharded_save(self, attributes):  # DTensors go through DCP, not pickle
            return
        check_picklable(attributes)

    def checkpoint(self: S, force: bool = True, blocking: bool | None = None) -> S:
        """Save the experiment's state (atomic and durable) as ``checkpoint_path``.

        With ``force=False``, saves only when ``step % training/checkpoint_every == 0``.
        ``training/checkpoint_keep`` keeps only the newest N checkpoints. An attribute that
        cannot be pickled is reported at the first call, even one that does not save.

        ``blocking=False`` saves asynchronously: this call only takes a consistent snapshot of
        the state (tensors copied into reusable host buffers, everything else by value, the
        random states included) and the serialise, write, fsync, rename and pruning run in a
        background thread. ``blocking=None`` (the default) follows ``training/checkpoint_async``
        (off unless set). At most one save is in flight: a save first waits for the previous
        one. A background failure is raised by the next ``checkpoint()``, ``next_step()``,
        :meth:`wait_for_checkpoint` or the end of ``run()``; the previous checkpoint stays.
        """
        saver = self._checkpoint_saver
        if saver is not None:
            saver.raise_failure()
        if not force:
            every = self.config_value("training/checkpoint_every")
            if not every:
                if not self._cache.get("__speedrun_warned_checkpoint_every__"):
                    warnings.warn(
                        "checkpoint(force=False) saves nothing: set "
                        "training/checkpoint_every in the config",
                        stacklevel=2,
                    )
                    self._cache["__speedrun_warned_checkpoint_every__"] = True
                return self
            if self.step % int(every):
                self._check_picklable_once()
                return self
        self._refuse_if_read_only("checkpoint")
        from ..checkpoint._random_state import capture_random_state

        directory = os.path.join(self._require_directory("checkpoint"), "Weights")
        self.execute_hooks(PRE_CHECKPOINT)
        self._picklable_checked = True
        if save_sharded(self, directory, _RANDOM_STATE_KEY):  # FSDP2/DTensor: every rank
            self._last_saved_step = self.step
            return self
        if blocking is None:
            blocking = not self._checkpoint_async()
        keep = self.config_value("training/checkpoint_keep")
        if saver is not None:
            saver.wait()  # at most one save in flight, and saves commit in order
        elif not blocking:
            from ..checkpoint._async import AsyncSaver

            saver = self._checkpoint_saver = AsyncSaver()
        step = self.step
        if not _distributed.is_main_process():  # one checkpoint per save, from rank 0
            random_state, rank = capture_random_state(), _distributed.get_rank()
            if blocking or saver is None:
                _distributed.save_rank_random_state(
                    directory, step, random_state, rank=rank, keep=keep
                )
            else:  # captured above; written behind, with no collective
                saver.submit(
                    f"rank {rank}'s random state for step {step}",
                    lambda: _distributed.save_rank_random_state(
                        directory, step, random_state, rank=rank, keep=keep
                    ),
                )
        elif blocking or saver is None:
            from ..checkpoint._io import save_checkpoint

            save_checkpoint(
                directory,
                step,
                self._checkpoint_state(),
                experiment_class=class_path(self),
                keep=keep,
            )
        else:
            saver.save(
                directory,
                step,
                self._checkpoint_state(),
                experiment_class=class_path(self),
                keep=keep,
            )
        self._last_saved_step = step
        return self

    def wait_for_checkpoint(self: S) -> S:
        """Block until a background checkpoint save has committed; raise its failure if it failed.

        Nothing to do without asynchronous saves. ``run()`` calls it when the run ends, a
        preemption before it exits, and ``checkpoint()`` before the next save.
        """
        if self._checkpoint_saver is not None:
            self._checkpoint_saver.wait()
        return self

    def _checkpoint_async(self) -> bool:
        """``training/checkpoint_async`` as a bool (``--config`` may give a word: ``true``)."""
        value = self.config_value("training/checkpoint_async")
        if isinstance(value, str):
            from ..config._arguments import _BOOLEAN_WORDS

            return _BOOLEAN_WORDS[value.lower()]
        return bool(value)

    def _accepted_classes(self, strict_class: bool) -> list[str] | None:
        """The class paths whose checkpoints this experiment loads: its class and its bases
        (a subclass continues its base's run); None (any class) without ``strict_class``."""
        if not strict_class:
            return None
        return [
            class_path(klass)
            for klass in type(self).__mro__
            if isinstance(klass, type) and issubclass(klass, Checkpointing)
        ]

    def load_from_checkpoint(
        self: S, step: int | None = None, strict_class: bool = True, trust: bool | None = None
    ) -> S:
        """Restore the state saved at ``step`` (default: the latest valid checkpoint).

        A checkpoint written by this class or one of its base classes loads; with
        ``strict_class=False`` one written by any class does (``--resume --any-class`` on the
        command line). Attributes registered as unpickleable keep their current values. Runs
        the ``'post_load'`` hooks afterwards. Loading is safe by default: a file that would
        import or call anything beyond plain data and the classes this run saved is refused,
        naming the global. ``trust=True`` (or the ``--trust-checkpoint`` flag, or
        ``SPEEDRUN_TRUST_CHECKPOINT=1``) unpickles anything: only for files you trust.
        """
        from ..checkpoint._io import load_checkpoint, load_latest_valid
        from ..checkpoint._random_state import restore_random_state

        self.wait_for_checkpoint()  # a pending background save is part of the folder
        if trust is None:
            trust = bool(self._args.get("trust-checkpoint", False)) if self._args else False
        directory = os.path.join(self._require_directory("load_from_checkpoint"), "Weights")
        accepted = self._accepted_classes(strict_class)
        if step is None:  # other ranks: the checkpoint rank 0 resumes from (not a newer one)
            from ..distributed import _launch  # not at import: start-up is benchmarked

            loaded = _launch.load_announced_checkpoint(
                directory, accepted, strict_class, trust=trust
            ) or load_latest_valid(
                directory,
                experiment_class=accepted,
                strict_class=strict_class,
                map_location=_distributed.checkpoint_map_location(),
                trust=trust,
                set_aside=self._writer_lock is not None and self._writer_lock.held,
            )
            if loaded is None:
                raise CheckpointError(
                    f"no checkpoint in {directory} to load: save one with checkpoint() first, "
                    f"or start without --resume"
                )
        else:
            loaded = load_checkpoint(
                find_checkpoint(directory, step),
                experiment_class=accepted,
                strict_class=strict_class,
                map_location=_distributed.checkpoint_map_location(),
                trust=trust,
            )
            newer = [found for found, _ in list_checkpoints(directory) if found > loaded.step]
            if newer and not self._read_only:
                warnings.warn(
                    f"loaded step {loaded.step}, but {directory} also holds later checkpoints "
                    f"(steps {', '.join(map(str, newer))}); a later --resume picks the newest. "
                    f"Move them aside if this run should continue from step {loaded.step}.",
                    stacklevel=2,
                )
        state = dict(loaded.state)
        random_state = state.pop(_RANDOM_STATE_KEY, None)
        from ..checkpoint._sharded import SHARDED_KEY

        shards = state.pop(SHARDED_KEY, None)  # a sharded checkpoint (FSDP2/DTensor, via DCP)
        if not _distributed.is_main_process() and shards is None:  # each rank has its own
            random_state = _distributed.load_rank_random_state(directory, loaded.step)
        excluded = self._not_checkpointed()
        self.__dict__.update({k: v for k, v in state.items() if k not in excluded})
        if shards is not None:
            random_state = load_sharded(self, loaded, shards, random_state)
        if random_state is not None:
            restore_random_state(random_state)
        self._resume_pending = False
        self._last_saved_step = self.step
        self.execute_hooks(POST_LOAD)
        return self

    def _checkpoint_at_end(self) -> None:
        """After the default dispatch returned normally: save the last steps, unless the last
        save (or load) was at this step, the run never checkpoints, or
        ``training/checkpoint_at_end`` is false."""
        if (
            self._experiment_directory is None
            or self._read_only
            or self.step == 0
            or self._last_saved_step == self.step
            or not self.get("training/checkpoint_at_end", True)
        ):
            return
        if self._last_saved_step is None and not self.config_value("training/checkpoint_every"):
            return  # this run never asked for checkpoints
        self.checkpoint(force=True)

    def _preempt(self) -> None:
        if self._experiment_directory is not None:
            self.checkpoint(force=True, blocking=True)  # waits for a pending save, then commits
            wait_for_sharded_save(self)
        _distributed.wait_after_preemption_checkpoint(self._experiment_directory)
        error = _preemption.Preempted(self.step, _preemption.received_signal())
        if _distributed.is_main_process():  # one line in the job's output says why it stopped
            saved = (
                "checkpoint saved"
                if self._experiment_directory is not None
                else "no experiment directory, nothing saved"
            )
            import shlex

            again = shlex.join(
                [sys.argv[0] or "train.py", self._experiment_directory or "DIR", "--resume"]
            )
            print(
                f"speedrun: preempted by {_signal_text(error.signum)} at step {self.step}: "
                f"{saved}; exiting with status {_preemption.PREEMPTION_EXIT_CODE}. Continue "
                f"with: python {again}",
                file=sys.stderr,
                flush=True,
            )
        raise error


def _signal_text(signum: int | None) -> str:
    if signum is None:
        return "request_preemption()"
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
