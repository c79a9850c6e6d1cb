"""``BaseExperiment``: the class every speedrun experiment derives from.

It composes the other modules (configuration, command line, directory, lock, checkpoint,
dispatch, provenance) and keeps the original speedrun's public names and meanings.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._errors import CheckpointError, ExperimentDirectoryError
from ..checkpoint._files import (
    checkpoint_file_name,
    class_path,
    find_checkpoint,
    list_checkpoints,
)
from ..config._arguments import _BOOLEAN_WORDS, Arguments
from ..config._namespace import Namespace
from ..config._tree import Config
from ..config._yaml import dumps_yaml, load_mapping
from ..directory._fs import atomic_write_text, keep_previous_version
from ..directory._layout import (
    CONFIG_FILE_NAME,
    ensure_experiment_directory,
    inherit_source,
)
from ..directory._lock import WriterLock
from ..distributed import _launch, _preemption
from ..distributed import _ranks as _distributed
from ._dispatch import POST_LOAD, PRE_CHECKPOINT, Dispatcher
from ._setup import CommandLineSetup

if TYPE_CHECKING:
    from typing import Any

    from ..checkpoint._async import AsyncSaver


__all__ = ["BaseExperiment"]

_RANDOM_STATE_KEY = "__speedrun_random_state__"
# Attributes that describe this process, not the experiment's progress: never checkpointed
# and never overwritten by a load.
_PROCESS_ATTRIBUTES = frozenset({
    "_experiment_directory", "_tree", "_config_memo", "_meta_config", "_argv", "_args",
    "_default_dispatch", "_writer_lock", "_resume_pending", "_world_size", "_run_record",
    "_checkpoint_saver",
})


class BaseExperiment(CommandLineSetup, Dispatcher):
    """Base class for experiments.

    Parameters
    ----------
    experiment_directory : str, optional
        The experiment's folder. It is created (if missing) with ``Configurations/``,
        ``Logs/``, ``Weights/`` and ``Plots/`` and a ``.speedrun`` marker.
    """

    def __init__(self, experiment_directory: str | os.PathLike[str] | None = None) -> None:
        self._experiment_directory: str | None = None
        self._step: int | None = None
        self._epoch: int | None = None
        self._tree = Config()
        self._config_memo = self._tree.memo
        self._meta_config: dict[str, list[str]] = {
            "exclude_attrs_from_save": [], "stateless_attributes": [], "stateful_attributes": [],
        }
        self._cache: dict[str, Any] = {}
        self._argv: list[str] | None = None
        self._args: Arguments | None = None
        self._default_dispatch: str | None = None
        self._writer_lock: WriterLock | None = None
        self._resume_pending = False
        self._checkpoint_saver: AsyncSaver | None = None  # created by the first async save
        self._world_size = _distributed.get_world_size()  # processes of this launch (torchrun)
        self.experiment_directory = experiment_directory
        super().__init__()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(experiment_directory={self._experiment_directory!r}, "
                f"step={self.step}, epoch={self.epoch})")

    # -- counters ------------------------------------------------------------------------------
    @property
    def step(self) -> int:
        """The current (global) step."""
        if self._step is None:
            self._step = 0
        return self._step

    def next_step(self) -> BaseExperiment:
        """Increment the step; on a pending preemption signal, checkpoint and exit (code 75).

        Raises the failure of a finished background checkpoint save, if any.
        """
        self._step = (self._step or 0) + 1
        if self._checkpoint_saver is not None:
            self._checkpoint_saver.raise_failure()
        if self._world_size > 1:  # every rank checkpoints at the same step
            if _distributed.preemption_agreed(_preemption.requested()):
                self._preempt()
        elif _preemption.requested():
            self._preempt()
        return self

    @property
    def epoch(self) -> int:
        """The current epoch."""
        if self._epoch is None:
            self._epoch = 0
        return self._epoch

    def next_epoch(self) -> BaseExperiment:
        """Increment the epoch counter."""
        self._epoch = (self._epoch or 0) + 1
        return self

    # -- directories ---------------------------------------------------------------------------
    @property
    def experiment_directory(self) -> str | None:
        """The experiment's folder (``None`` until set)."""
        return self._experiment_directory

    @experiment_directory.setter
    def experiment_directory(self, value: str | os.PathLike[str] | None) -> None:
        if value is not None:
            if _distributed.is_main_process():  # other ranks use the folder rank 0 creates
                ensure_experiment_directory(value)
            self._experiment_directory = os.fspath(value)

    def _subdirectory(self, name: str) -> str | None:
        if self._experiment_directory is None:
            return None
        return os.path.join(self._experiment_directory, name)

    @property
    def log_directory(self) -> str | None:
        """``<experiment>/Logs``."""
        return self._subdirectory("Logs")

    @property
    def checkpoint_directory(self) -> str | None:
        """``<experiment>/Weights``."""
        return self._subdirectory("Weights")

    @property
    def plot_directory(self) -> str | None:
        """``<experiment>/Plots``."""
        return self._subdirectory("Plots")

    @property
    def configuration_directory(self) -> str | None:
        """``<experiment>/Configurations``."""
        return self._subdirectory("Configurations")

    @property
    def checkpoint_path(self) -> str | None:
        """The file a checkpoint at the current step is written to."""
        directory = self.checkpoint_directory
        if directory is None:
            return None
        return os.path.join(directory, checkpoint_file_name(self.step))

    def _require_directory(self, purpose: str) -> str:
        if self._experiment_directory is None:
            raise ExperimentDirectoryError(
                f"{purpose} needs an experiment directory, but none is set: pass one on the "
                f"command line (python {os.path.basename(sys.argv[0] or 'train.py')} "
                f"experiments/RUN-0) with auto_setup(), or set experiment.experiment_directory."
            )
        return self._experiment_directory

    # -- configuration -------------------------------------------------------------------------
    @property
    def _config(self) -> Config:
        return self._tree

    @_config.setter
    def _config(self, value: Any) -> None:
        self._tree.replace(value)

    def get(self, tag: str, default: Any = None, ensure_exists: bool = False) -> Any:
        """The config value at ``tag`` (``'training/lr'``), or ``default`` if it is missing.

        ``ensure_exists=True`` raises a :class:`~speedrun.ConfigError` naming the missing key.
        """
        try:
            return self._config_memo[tag]
        except KeyError:
            return self._tree.lookup(tag, default, ensure_exists)

    def set(self, tag: str, value: Any) -> BaseExperiment:
        """Set the config value at ``tag``, creating intermediate mappings."""
        self._tree.assign(tag, value)
        return self

    def read_config_file(self, file_name: str = CONFIG_FILE_NAME,
                         path: str | None = None) -> BaseExperiment:
        """Replace the config with the YAML file ``path`` (default: this run's config file).

        Raises ``FileNotFoundError`` when the file does not exist.
        """
        if path is None:
            path = os.path.join(self._require_directory("read_config_file"), "Configurations",
                                file_name)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"no configuration file at {path}: create it, pass --inherit with another "
                f"experiment directory, or give values with --config.a.b VALUE"
            )
        self._tree.replace(load_mapping(path))
        return self

    def inherit_configuration(self, from_experiment_directory: str,
                              file_name: str = CONFIG_FILE_NAME,
                              read: bool = True) -> BaseExperiment:
        """Take the configuration of another experiment directory (or a ``.yml`` file).

        With ``read=True`` the config is loaded from there; with ``read=False`` the file is
        copied into this run's ``Configurations/`` (an existing different file is kept under
        ``Configurations/previous/``).
        """
        source = inherit_source(os.fspath(from_experiment_directory), file_name)
        if read:
            self._tree.replace(load_mapping(source))
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
            self._write_config_text(text, file_name)
        return self

    def dump_configuration(self, file_name: str = CONFIG_FILE_NAME) -> BaseExperiment:
        """Write the config, exactly as the run uses it, to ``Configurations/<file_name>``.

        The write is atomic; a different file already there is kept under
        ``Configurations/previous/`` rather than lost.
        """
        self._write_config_text(dumps_yaml(self._tree), file_name)
        return self

    def _write_config_text(self, text: str, file_name: str) -> None:
        directory = os.path.join(self._require_directory("dump_configuration"), "Configurations")
        if not _distributed.is_main_process():
            return
        path = os.path.join(directory, file_name)
        try:
            with open(path, encoding="utf-8") as handle:
                existing: str | None = handle.read()
        except FileNotFoundError:
            existing = None
        if existing is not None and existing != text:
            keep_previous_version(path)
        if existing != text:
            atomic_write_text(path, text)

    def read_macro(self, path: str | None = None) -> BaseExperiment:
        """Merge macro files (``--macro a.yml:b.yml``, or ``path``) into the config, in order."""
        if path is None:
            path = self._raw_flag("macro")
        if path is not None:
            from ..config._macro import merge_macro, read_macro_files

            for _, macro in read_macro_files(path):
                merge_macro(self._tree, macro)
        return self

    # -- cache ---------------------------------------------------------------------------------
    @property
    def cache_keys(self) -> list[str]:
        """The keys in the cache."""
        return list(self._cache)

    def read_from_cache(self, tag: str, default: Any = None, ensure_exists: bool = False) -> Any:
        """The cached value of ``tag``, or ``default``."""
        if ensure_exists and tag not in self._cache:
            raise KeyError(f"'{tag}' is not in the cache; cached keys: {self.cache_keys}")
        return self._cache.get(tag, default)

    def write_to_cache(self, tag: str, value: Any) -> BaseExperiment:
        """Store ``value`` under ``tag``."""
        self._cache[tag] = value
        return self

    def accumulate_in_cache(self, tag: str, value: Any,
                            accumulate_fn: Callable[[Any, Any], Any] | None = None
                            ) -> BaseExperiment:
        """Add ``value`` to the cached ``tag`` (``+=``, or ``accumulate_fn(old, value)``)."""
        if tag not in self._cache:
            self._cache[tag] = value
        elif accumulate_fn is None:
            self._cache[tag] += value
        else:
            if not callable(accumulate_fn):
                raise TypeError(f"accumulate_fn must be callable, got {accumulate_fn!r}")
            self._cache[tag] = accumulate_fn(self._cache[tag], value)
        return self

    def clear_in_cache(self, tag: str) -> BaseExperiment:
        """Remove ``tag`` from the cache (no error when absent)."""
        self._cache.pop(tag, None)
        return self

    def clear_cache(self) -> BaseExperiment:
        """Empty the cache."""
        self._cache.clear()
        return self

    def bundle(self, **kwargs: Any) -> Namespace:
        """Pack ``kwargs`` into a :class:`~speedrun.Namespace`."""
        return Namespace(**kwargs)

    # -- checkpoints ---------------------------------------------------------------------------
    def register_unpickleable(self, *attributes: str) -> BaseExperiment:
        """Leave these attributes out of checkpoints."""
        excluded = self._meta_config["exclude_attrs_from_save"]
        excluded.extend(name for name in attributes if name not in excluded)
        return self

    def _checkpoint_state(self) -> dict[str, Any]:
        from ..checkpoint._random_state import capture_random_state

        excluded = _PROCESS_ATTRIBUTES.union(self._meta_config["exclude_attrs_from_save"])
        state = {k: v for k, v in self.__dict__.items() if k not in excluded}
        state[_RANDOM_STATE_KEY] = capture_random_state()
        return state

    def checkpoint(self, force: bool = True, blocking: bool | None = None) -> BaseExperiment:
        """Save the experiment's state (atomic and durable) as ``checkpoint_path``.

        With ``force=False``, saves only when ``step % training/checkpoint_every == 0``.
        ``training/checkpoint_keep`` keeps only the newest N checkpoints.

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
            every = self.get("training/checkpoint_every")
            if not every:
                if not self._cache.get("__speedrun_warned_checkpoint_every__"):
                    warnings.warn("checkpoint(force=False) saves nothing: set "
                                  "training/checkpoint_every in the config", stacklevel=2)
                    self._cache["__speedrun_warned_checkpoint_every__"] = True
                return self
            if self.step % int(every):
                return self
        if blocking is None:
            blocking = not self._checkpoint_async_config()
        from ..checkpoint._random_state import capture_random_state

        directory = os.path.join(self._require_directory("checkpoint"), "Weights")
        keep = self.get("training/checkpoint_keep")
        if saver is not None:
            saver.wait()  # at most one save in flight, and saves commit in order
        elif not blocking:
            from ..checkpoint._async import AsyncSaver

            saver = self._checkpoint_saver = AsyncSaver()
        self.execute_hooks(PRE_CHECKPOINT)
        step = self.step
        if not _distributed.is_main_process():  # one checkpoint per save, from rank 0
            random_state, rank = capture_random_state(), _distributed.get_rank()
            if blocking or saver is None:
                _distributed.save_rank_random_state(directory, step, random_state, rank=rank,
                                                    keep=keep)
            else:  # captured above; written behind, with no collective
                saver.submit(f"rank {rank}'s random state for step {step}",
                             lambda: _distributed.save_rank_random_state(
                                 directory, step, random_state, rank=rank, keep=keep))
            return self
        if blocking or saver is None:
            from ..checkpoint._io import save_checkpoint

            save_checkpoint(directory, step, self._checkpoint_state(),
                            experiment_class=class_path(self), keep=keep)
        else:
            saver.save(directory, step, self._checkpoint_state(),
                       experiment_class=class_path(self), keep=keep)
        return self

    def wait_for_checkpoint(self) -> BaseExperiment:
        """Block until a background checkpoint save has committed; raise its failure if it failed.

        Nothing to do without asynchronous saves. ``run()`` calls it when the run ends, a
        preemption before it exits, and ``checkpoint()`` before the next save.
        """
        if self._checkpoint_saver is not None:
            self._checkpoint_saver.wait()
        return self

    def _checkpoint_async_config(self) -> bool:
        value = self.get("training/checkpoint_async", False)
        if value is None or isinstance(value, bool):
            return bool(value)
        if isinstance(value, str) and value.lower() in _BOOLEAN_WORDS:  # --config... true
            return _BOOLEAN_WORDS[value.lower()]
        raise CheckpointError(
            f"Expected training/checkpoint_async to be true or false, got {value!r}. Set it "
            "with --config.training.checkpoint_async True (or False) or in the config file."
        )

    def load_from_checkpoint(self, step: int | None = None) -> BaseExperiment:
        """Restore the state saved at ``step`` (default: the latest valid checkpoint).

        Attributes registered as unpickleable keep their current values. Runs the
        ``'post_load'`` hooks afterwards.
        """
        from ..checkpoint._io import load_checkpoint, load_latest_valid
        from ..checkpoint._random_state import restore_random_state

        directory = os.path.join(self._require_directory("load_from_checkpoint"), "Weights")
        self.wait_for_checkpoint()  # a pending background save is part of the folder
        if step is None:  # other ranks: the checkpoint rank 0 resumes from (not a newer one)
            loaded = (_launch.load_announced_checkpoint(directory, class_path(self))
                      or load_latest_valid(directory, experiment_class=class_path(self),
                                           map_location=_distributed.checkpoint_map_location()))
            if loaded is None:
                raise CheckpointError(
                    f"no checkpoint in {directory} to load: save one with checkpoint() first, "
                    f"or start without --resume"
                )
        else:
            loaded = load_checkpoint(find_checkpoint(directory, step),
                                     experiment_class=class_path(self),
                                     map_location=_distributed.checkpoint_map_location())
            newer = [found for found, _ in list_checkpoints(directory) if found > loaded.step]
            if newer:
                warnings.warn(
                    f"loaded step {loaded.step}, but {directory} also holds later checkpoints "
                    f"(steps {', '.join(map(str, newer))}); a later --resume picks the newest. "
                    f"Move them aside if this run should continue from step {loaded.step}.",
                    stacklevel=2,
                )
        state = dict(loaded.state)
        random_state = state.pop(_RANDOM_STATE_KEY, None)
        if not _distributed.is_main_process():  # rank 0's is in the file; each rank has its own
            random_state = _distributed.load_rank_random_state(directory, loaded.step)
        excluded = _PROCESS_ATTRIBUTES.union(self._meta_config["exclude_attrs_from_save"])
        self.__dict__.update({k: v for k, v in state.items() if k not in excluded})
        if random_state is not None:
            restore_random_state(random_state)
        self._resume_pending = False
        self.execute_hooks(POST_LOAD)
        return self

    def _preempt(self) -> None:
        if self._experiment_directory is not None:
            self.checkpoint(force=True, blocking=True)  # waits for a pending save, then commits
        _distributed.wait_after_preemption_checkpoint(self._experiment_directory)
        raise _preemption.Preempted(self.step, _preemption.received_signal())

    # -- run: the parts of Dispatcher.run() that belong to the experiment -----------------------
    def _dispatch_flag(self) -> str | None:
        return self._raw_flag("dispatch")

    def _before_dispatch(self) -> None:
        record = getattr(self, "_run_record", None)
        if record is not None:
            record.enter_run()
        if self._resume_pending:
            self.load_from_checkpoint()

    def _after_run(self) -> None:
        error = sys.exc_info()[1]
        failure: CheckpointError | None = None
        try:  # a pending background save commits before the run ends
            self.wait_for_checkpoint()
        except CheckpointError as exc:
            failure = exc
        record = getattr(self, "_run_record", None)
        if record is not None:  # the end status, written while the writer lock is still held
            record.finish_run(error or failure, self.step)
        _preemption.uninstall()
        if self._writer_lock is not None:
            self._writer_lock.release()
        if failure is not None:
            if error is None:
                raise failure
            warnings.warn(f"{failure} (reported here because the run is already ending with "
                          f"{type(error).__name__}: {error})", stacklevel=2)
