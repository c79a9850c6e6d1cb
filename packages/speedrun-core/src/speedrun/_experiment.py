"""``BaseExperiment``: the class every speedrun experiment derives from.

It composes the other modules (configuration, command line, directory, lock, checkpoint,
dispatch, provenance) and keeps the original speedrun's public names and meanings.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable

from . import _distributed, _launch, _preemption
from ._arguments import Arguments, parse_arguments
from ._checkpoint import (
    checkpoint_file_name,
    class_path,
    find_checkpoint,
    list_checkpoints,
)
from ._config import Config, diff_overrides
from ._directory import ensure_experiment_directory, purge_experiment_directory
from ._dispatch import Dispatcher
from ._errors import ArgumentError, CheckpointError, ConfigError, ExperimentDirectoryError
from ._fs import atomic_write_text, keep_previous_version
from ._lock import WriterLock
from ._namespace import Namespace
from ._provenance import git_state, prefetch_git_state
from ._yaml import dumps_yaml, load_mapping

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up
if TYPE_CHECKING:
    from typing import Any


__all__ = ["BaseExperiment"]

CONFIG_FILE_NAME = "train_config.yml"
_RANDOM_STATE_KEY = "__speedrun_random_state__"
# Attributes that describe this process, not the experiment's progress: never checkpointed
# and never overwritten by a load.
_PROCESS_ATTRIBUTES = frozenset({
    "_experiment_directory", "_tree", "_config_memo", "_meta_config", "_argv", "_args",
    "_default_dispatch", "_writer_lock", "_resume_pending", "_world_size", "_run_record",
})


class BaseExperiment(Dispatcher):
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
        self._world_size = _distributed.get_world_size()  # processes of this launch (torchrun, srun)
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
        """Increment the step; on a pending preemption signal, checkpoint and exit (code 75)."""
        self._step = (self._step or 0) + 1
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
        source = _inherit_source(os.fspath(from_experiment_directory), file_name)
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
            from ._macro import merge_macro, read_macro_files

            for _, macro in read_macro_files(path):
                merge_macro(self._tree, macro)
        return self

    # -- command line --------------------------------------------------------------------------
    def record_args(self) -> BaseExperiment:
        """Record and parse ``sys.argv``; needed before ``get_arg``."""
        self._argv = list(sys.argv)
        self._args = parse_arguments(self._argv)
        return self

    def _require_args(self) -> Arguments:
        if self._args is None:
            raise ArgumentError(
                "the command line was not recorded yet: call self.record_args() "
                "(auto_setup() does) before reading arguments"
            )
        return self._args

    def _raw_flag(self, name: str) -> str | None:
        if self._args is None:
            return None
        raw = self._args.flags.get(name)
        return raw if isinstance(raw, str) else None

    def get_arg(self, tag: str | int, default: Any = None, ensure_exists: bool = False) -> Any:
        """A command-line value: ``--tag VALUE`` parsed as a Python literal, or ``argv[tag]``.

        A bare ``--tag`` gives ``True``.
        """
        args = self._require_args()
        if isinstance(tag, int):
            if tag < len(args.argv):
                return args.argv[tag]
            if ensure_exists:
                raise ArgumentError(
                    f"expected at least {tag + 1} command-line arguments, got "
                    f"{len(args.argv)}: {args.argv}"
                )
            return default
        if tag in args.flags:
            return args.get(tag)
        if ensure_exists:
            raise ArgumentError(f"expected --{tag} VALUE on the command line, got {args.argv[1:]}")
        return default

    def update_configuration_from_args(self, strict: bool | None = None) -> BaseExperiment:
        """Apply ``--config.a.b VALUE`` overrides, in order.

        Overrides of keys the config lacks, or that change a value's type, are listed on
        stderr; with ``strict`` (default: the ``--strict`` flag) they raise a ConfigError.
        """
        overrides = self._require_args().parsed_overrides()
        findings = diff_overrides(self._tree, overrides)
        if findings:
            if strict is None:
                strict = bool(self.get_arg("strict", False))
            listing = "\n".join(f"  - {finding}" for finding in findings)
            if strict:
                raise ConfigError(
                    f"--strict: {len(findings)} --config override(s) do not match the base "
                    f"config:\n{listing}\nFix the key names or types, or drop --strict."
                )
            print(f"speedrun: {len(findings)} --config override(s) do not match the base "
                  f"config (use --strict to make this an error):\n{listing}", file=sys.stderr)
        for path, value in overrides:
            self._tree.assign(path, value)
        return self

    def parse_experiment_directory(self) -> BaseExperiment:
        """Set the experiment directory from the first positional command-line argument."""
        args = self._require_args()
        if not args.positionals:
            raise ArgumentError(
                "expected the experiment directory as the first argument, e.g. "
                f"python {os.path.basename(args.argv[0] if args.argv else 'train.py')} "
                f"experiments/RUN-0; got {args.argv[1:] or 'no arguments'}"
            )
        self.experiment_directory = args.positionals[0]
        return self

    def purge_existing_experiment_directory(
            self, experiment_directory: str | None = None) -> BaseExperiment:
        """Delete a speedrun experiment directory (refused for anything else)."""
        if experiment_directory is None:
            args = self._require_args()
            if not args.positionals:
                raise ArgumentError("--purge needs the experiment directory as first argument")
            experiment_directory = args.positionals[0]
        purge_experiment_directory(experiment_directory)
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
        from ._random_state import capture_random_state

        excluded = _PROCESS_ATTRIBUTES.union(self._meta_config["exclude_attrs_from_save"])
        state = {k: v for k, v in self.__dict__.items() if k not in excluded}
        state[_RANDOM_STATE_KEY] = capture_random_state()
        return state

    def checkpoint(self, force: bool = True) -> BaseExperiment:
        """Save the experiment's state (atomic and durable) as ``checkpoint_path``.

        With ``force=False``, saves only when ``step % training/checkpoint_every == 0``.
        ``training/checkpoint_keep`` keeps only the newest N checkpoints.
        """
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
        from ._checkpoint_io import save_checkpoint
        from ._random_state import capture_random_state

        directory = os.path.join(self._require_directory("checkpoint"), "Weights")
        if not _distributed.is_main_process():  # one checkpoint per save, from rank 0
            _distributed.save_rank_random_state(directory, self.step, capture_random_state(),
                                                keep=self.get("training/checkpoint_keep"))
            return self
        save_checkpoint(directory, self.step, self._checkpoint_state(),
                        experiment_class=class_path(self),
                        keep=self.get("training/checkpoint_keep"))
        return self

    def load_from_checkpoint(self, step: int | None = None) -> BaseExperiment:
        """Restore the state saved at ``step`` (default: the latest valid checkpoint).

        Attributes registered as unpickleable keep their current values. Runs the
        ``'post_load'`` hooks afterwards.
        """
        from ._checkpoint_io import load_checkpoint, load_latest_valid
        from ._random_state import restore_random_state

        directory = os.path.join(self._require_directory("load_from_checkpoint"), "Weights")
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
        self.execute_hooks("post_load")
        return self

    def _preempt(self) -> None:
        if self._experiment_directory is not None:
            self.checkpoint(force=True)
        _distributed.wait_after_preemption_checkpoint(self._experiment_directory)
        raise _preemption.Preempted(self.step, _preemption.received_signal())

    # -- provenance ----------------------------------------------------------------------------
    def update_git_revision(self, overwrite: bool = False) -> BaseExperiment:
        """Record the git revision (``git_rev``) and dirty flag (``git_dirty``) in the config."""
        if overwrite or self.get("git_rev") is None:
            state = git_state()
            self.set("git_rev", state.revision)
            self.set("git_dirty", state.dirty)
        return self

    # -- set-up --------------------------------------------------------------------------------
    def auto_setup(self, update_git_revision: bool = True,
                   dump_configuration: bool = True) -> BaseExperiment:
        """Set the run up from the command line.

        ``python exp.py DIR [--inherit DIR_OR_YML] [--macro a.yml:b.yml]
        [--config.a.b VALUE ...] [--purge | --resume] [--strict] [--dispatch NAME]``:
        reads the config (inherited, or DIR's own), merges macros, applies overrides, records
        the git revision, dumps the result to ``DIR/Configurations/train_config.yml``, takes the
        directory's writer lock and installs the preemption handlers. With ``--resume`` the
        latest valid checkpoint is loaded when ``run()`` starts (or call
        ``load_from_checkpoint()`` yourself once your objects exist).
        """
        self.record_args()
        if not _distributed.is_main_process():  # wait for rank 0's set-up, then read its result
            return _launch.follow_main_setup(self, update_git_revision, dump_configuration)
        if self._world_size > 1:  # should this set-up fail, the other ranks learn it at exit
            positionals = self._require_args().positionals
            _launch.announce_failure_at_exit(positionals[0] if positionals else None)
        if update_git_revision:
            prefetch_git_state()  # git runs while the configuration is read
        args = self._require_args()
        resume = bool(args.get("resume", False))
        purge = bool(args.get("purge", False))
        inherit = self._raw_flag("inherit")
        if resume and purge:
            raise ArgumentError("--resume continues a run and --purge deletes it: pass one")
        if resume and inherit is not None:
            raise ArgumentError("--resume continues the directory's own config; drop --inherit")
        if purge:
            self.purge_existing_experiment_directory()
        self.parse_experiment_directory()
        self._writer_lock = WriterLock(self._require_directory("auto_setup"))
        self._writer_lock.acquire()
        existing = list_checkpoints(self.checkpoint_directory)
        if existing and not resume:
            steps = ", ".join(str(step) for step, _ in existing[-5:])
            raise ExperimentDirectoryError(
                f"{self._experiment_directory} already has checkpoints (steps {steps}). Pass "
                f"--resume to continue that run, or --purge to delete it and start over."
            )
        if inherit is not None:
            self.inherit_configuration(inherit)
        else:
            try:
                self.read_config_file()
            except FileNotFoundError:
                if resume:
                    raise
        self.read_macro()
        self.update_configuration_from_args()
        if update_git_revision:
            self.update_git_revision(overwrite=True)
        if dump_configuration:
            self.dump_configuration()
        from ._runinfo import start_run_record

        self._run_record = start_run_record(self)  # Configurations/run.json (main process only)
        _preemption.install(self.get("speedrun/preemption_signals", _preemption.DEFAULT_SIGNALS))
        if resume:
            if existing:
                self._resume_pending = True
            else:
                warnings.warn(f"--resume: no checkpoint in {self.checkpoint_directory} yet; "
                              f"starting from step 0", stacklevel=2)
        if self._world_size > 1:  # the other ranks wait in follow_main_setup() for this
            _launch.announce_setup(self._require_directory("auto_setup"),
                                   checkpoints=[step for step, _ in existing],
                                   config_dumped=dump_configuration)
        return self

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
        record = getattr(self, "_run_record", None)
        if record is not None:  # the end status, written while the writer lock is still held
            record.finish_run(sys.exc_info()[1], self.step)
        _preemption.uninstall()
        if self._writer_lock is not None:
            self._writer_lock.release()


def _inherit_source(source: str, file_name: str) -> str:
    """The configuration file that ``--inherit source`` refers to."""
    if source.endswith((".yml", ".yaml")):
        if not os.path.isfile(source):
            raise ConfigError(f"--inherit {source}: no such file. Expected an existing .yml "
                              f"file or experiment directory.")
        return source
    if not os.path.isdir(source):
        raise ConfigError(f"--inherit {source}: no such experiment directory. Expected a folder "
                          f"with Configurations/{file_name}, or a .yml file.")
    folder = os.path.join(source, "Configurations")
    candidate = os.path.join(folder, file_name)
    if os.path.isfile(candidate):
        return candidate
    found = sorted(name for name in os.listdir(folder) if name.endswith((".yml", ".yaml"))) \
        if os.path.isdir(folder) else []
    if len(found) == 1:
        return os.path.join(folder, found[0])
    raise ConfigError(f"--inherit {source}: expected {candidate}, which does not exist; "
                      f"Configurations/ holds {found or 'no .yml files'}. Inherit from a run that "
                      f"was set up, or name the .yml file directly.")
