"""Setting an experiment up from its command line: ``auto_setup()`` and the pieces it uses.

``CommandLineSetup`` is a base class of ``BaseExperiment``; it holds the methods that read
``sys.argv`` (``record_args``, ``get_arg``, ``update_configuration_from_args``,
``parse_experiment_directory``, ``purge_existing_experiment_directory``), record provenance
(``update_git_revision``) and ``auto_setup`` itself.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING

from .._errors import ArgumentError, ConfigError, ExperimentDirectoryError
from ..checkpoint._files import list_checkpoints
from ..config._arguments import Arguments, parse_arguments
from ..config._tree import diff_overrides
from ..directory._layout import WEIGHTS
from ..directory._lock import WriterLock
from ..directory._purge import purge_experiment_directory
from ..distributed import _launch, _preemption
from ..distributed import _ranks as _distributed
from ._provenance import git_state, prefetch_git_state

if TYPE_CHECKING:
    from typing import Any, TypeVar

    from ._runinfo import RunRecord

    S = TypeVar("S", bound="CommandLineSetup")

__all__ = ["CommandLineSetup"]



class CommandLineSetup:
    """The command-line half of ``BaseExperiment`` (see the module docstring)."""

    _argv: list[str] | None = None
    _args: Arguments | None = None

    # -- command line --------------------------------------------------------------------------
    def record_args(self: S) -> S:
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

    def update_configuration_from_args(self: S, strict: bool | None = None) -> S:
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

    def parse_experiment_directory(self: S) -> S:
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
            self: S, experiment_directory: str | None = None) -> S:
        """Delete a speedrun experiment directory (refused for anything else)."""
        if experiment_directory is None:
            args = self._require_args()
            if not args.positionals:
                raise ArgumentError("--purge needs the experiment directory as first argument")
            experiment_directory = args.positionals[0]
        purge_experiment_directory(experiment_directory)
        return self

    def _check_purge(self) -> bool:
        """Refuse a ``--purge`` that would be refused later; whether there is anything to purge."""
        from ..directory._purge import check_purge_allowed, leftover_purges

        args = self._require_args()
        if not args.positionals:
            return False
        check_purge_allowed(args.positionals[0])
        for leftover in leftover_purges(args.positionals[0]):
            warnings.warn(f"{leftover} is left over from a purge that was interrupted; "
                          f"delete it yourself once you have checked it", stacklevel=3)
        return os.path.lexists(args.positionals[0])

    def _purge_keeping_configuration(self, dump_configuration: bool) -> None:
        """``--purge`` under the held writer lock; the new directory gets the resolved config.

        The configuration was read (possibly from this very directory) before the purge; it is
        written into the new directory before the swap, so no instant loses its only copy.
        """
        from ..config._yaml import dumps_yaml
        from ..directory._layout import CONFIG_FILE_NAME, CONFIGURATIONS
        from ..directory._purge import purge_and_recreate

        relative = os.path.join(CONFIGURATIONS, CONFIG_FILE_NAME)
        if dump_configuration:
            files = {relative: dumps_yaml(self._tree).encode("utf-8")}
        else:
            try:
                with open(os.path.join(self._require_directory("--purge"), relative),
                          "rb") as handle:
                    files = {relative: handle.read()}
            except FileNotFoundError:
                files = {}
        purge_and_recreate(self._require_directory("--purge"), self._writer_lock, files)

    # -- provenance ----------------------------------------------------------------------------
    def update_git_revision(self: S, overwrite: bool = False) -> S:
        """Record the git revision (``git_rev``) and dirty flag (``git_dirty``) in the config."""
        if overwrite or self.get("git_rev") is None:
            state = git_state()
            self.set("git_rev", state.revision)
            self.set("git_dirty", state.dirty)
        return self

    # -- set-up --------------------------------------------------------------------------------
    def _setup_flags(self) -> tuple[bool, bool, str | None]:
        """``(--resume, --purge, --inherit)``, refusing the combinations that make no sense."""
        args = self._require_args()
        resume = bool(args.get("resume", False))
        purge = bool(args.get("purge", False))
        inherit = self._raw_flag("inherit")
        if resume and purge:
            raise ArgumentError("--resume continues a run and --purge deletes it: pass one")
        if resume and inherit is not None:
            raise ArgumentError("--resume continues the directory's own config; drop --inherit")
        return resume, purge, inherit

    def _resolve_configuration(self, inherit: str | None, resume: bool,
                               update_git_revision: bool) -> None:
        """The run's config: inherited or the directory's own, then macros, overrides, git."""
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

    def auto_setup(self: S, update_git_revision: bool = True,
                   dump_configuration: bool = True) -> S:
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
            return self._follow_main_setup(update_git_revision, dump_configuration)
        if self._world_size > 1:  # should this set-up fail, the other ranks learn it at exit
            positionals = self._require_args().positionals
            _launch.announce_failure_at_exit(positionals[0] if positionals else None)
        if update_git_revision:
            prefetch_git_state()  # git runs while the configuration is read
        resume, purge, inherit = self._setup_flags()
        if purge:  # refuse a purge (foreign folder, symlink, home...) before touching anything
            purge = self._check_purge()  # False: nothing there to purge yet
        self.parse_experiment_directory()
        # The writer lock comes first and is held across the purge and the re-creation, so
        # exactly one of several processes started with --purge at once gets through.
        self._writer_lock = WriterLock(self._require_directory("auto_setup"))
        self._writer_lock.acquire()
        existing = [] if purge else list_checkpoints(self.checkpoint_directory)
        if existing and not resume:
            steps = ", ".join(str(step) for step, _ in existing[-5:])
            raise ExperimentDirectoryError(
                f"{self._experiment_directory} already has checkpoints (steps {steps}). Pass "
                f"--resume to continue that run, or --purge to delete it and start over."
            )
        self._resolve_configuration(inherit, resume, update_git_revision)
        if purge:  # the config was read above: the new directory starts with it
            self._purge_keeping_configuration(dump_configuration)
        if dump_configuration:
            self.dump_configuration()
        self._run_record = self._start_run_record()  # Configurations/run.json (main process)
        _preemption.install(self.get("speedrun/preemption_signals", _preemption.DEFAULT_SIGNALS))
        if resume:
            if existing:
                self._resume_pending = True
            else:
                warnings.warn(f"--resume: no checkpoint in {self.checkpoint_directory} yet; "
                              f"starting from step 0", stacklevel=2)
        if self._world_size > 1:  # the other ranks wait in _follow_main_setup() for this
            _launch.announce_setup(self._require_directory("auto_setup"),
                                   checkpoints=[step for step, _ in existing],
                                   config_dumped=dump_configuration)
        return self

    def _follow_main_setup(self: S, update_git_revision: bool, dump_configuration: bool) -> S:
        """``auto_setup()`` of a process other than the main one: wait, then read what it resolved.

        Nothing is written: the directory, the configuration dump and the writer lock belong to
        the main process. The configuration is the one the main process dumped (identical by
        construction); with ``dump_configuration=False`` it is resolved here from the same
        command line and files, as the main process did.
        """
        args = self._require_args()
        resume, _, inherit = self._setup_flags()
        if not args.positionals:
            self.parse_experiment_directory()  # raises the usual error
        record = _launch.wait_for_main_setup(os.fspath(args.positionals[0]))
        self.parse_experiment_directory()  # records the path; only rank 0 creates folders
        if dump_configuration and record.get("config_dumped"):
            self.read_config_file()
        else:
            self._resolve_configuration(inherit, resume, update_git_revision)
        _preemption.install(self.get("speedrun/preemption_signals", _preemption.DEFAULT_SIGNALS))
        steps = [step for step in record.get("checkpoints") or [] if isinstance(step, int)]
        self._resume_pending = bool(resume and steps)
        _launch.remember_resume_steps(os.path.join(os.fspath(args.positionals[0]), WEIGHTS), steps)
        return self

    def _start_run_record(self) -> RunRecord | None:
        """Write ``Configurations/run.json`` (main process only; see :mod:`._runinfo`)."""
        import weakref

        from ..checkpoint._files import class_path
        from ._runinfo import start_run_record

        reference = weakref.ref(self)  # the record must not keep the experiment alive

        def current_step() -> int | None:
            alive = reference()
            return None if alive is None else alive.step

        return start_run_record(self._require_directory("auto_setup"),
                                experiment_class=class_path(self), argv=self._argv,
                                args=self._args, current_step=current_step)
