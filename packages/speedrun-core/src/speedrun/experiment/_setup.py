"""Setting an experiment up from its command line: ``auto_setup()`` and the pieces it uses.

``CommandLineSetup`` is a base class of ``BaseExperiment``; it holds the methods that read
``sys.argv`` (``record_args``, ``get_arg``, ``update_configuration_from_args``,
``parse_experiment_directory``, ``purge_existing_experiment_directory``, ``read_macro``),
record provenance (``update_git_revision``) and ``auto_setup`` itself. The command line is
parsed into a plain :class:`~speedrun.config._arguments.SetupRequest` first; everything that
can fail (flags, the ``--inherit`` target, ``--resume``'s directory, the config, ``--strict``)
is checked before anything is created, so a failed set-up leaves nothing behind.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Collection  # with ClassVar at run time: typing.get_type_hints
from typing import TYPE_CHECKING, ClassVar

from .._errors import ArgumentError, ConfigError, ExperimentDirectoryError
from ..checkpoint._files import list_checkpoints
from ..config._arguments import Arguments, SetupRequest, parse_arguments, parse_setup
from ..config._tree import diff_overrides
from ..directory._layout import (
    CONFIG_FILE_NAME,
    CONFIGURATIONS,
    WEIGHTS,
    is_run_directory,
)
from ..directory._lock import WriterLock
from ..distributed import _preemption
from ..distributed import _ranks as _distributed
from ._dispatch import POST_LOAD, find_marked
from ._persistence import Checkpointing
from ._provenance import git_state, prefetch_git_state
from ._report import (
    install_error_hook,
    nothing_to_resume,
    report_resume_overrides,
    report_unknown_flags,
)

if TYPE_CHECKING:
    from typing import Any, TypeVar

    from ._runinfo import RunRecord

    S = TypeVar("S", bound="CommandLineSetup")

__all__ = ["CommandLineSetup"]


class CommandLineSetup(Checkpointing):
    """The command-line half of ``BaseExperiment`` (see the module docstring)."""

    #: Flags the experiment reads itself (``"lr"`` for ``--lr``; ``"wait."`` for every
    #: ``--wait.*``), collected over the class's bases: never reported as unknown, never
    #: taken for a typo of one of speedrun's. Flags read with ``get_arg`` before ``run()``
    #: starts need no declaration.
    COMMAND_LINE_FLAGS: ClassVar[Collection[str]] = ()

    def __init__(self, experiment_directory: str | os.PathLike[str] | None = None) -> None:
        self._argv: list[str] | None = None
        self._args: Arguments | None = None
        self._request: SetupRequest | None = None
        self._writer_lock: WriterLock | None = None
        self._run_record: RunRecord | None = None
        self._flags_read: set[str] = set()
        self._flags_reported = False
        self._resume_overrides: dict[str, Any] = {}
        self._evaluation = False  # this launch evaluates an existing run (see _is_evaluation)
        super().__init__(experiment_directory)

    # -- command line --------------------------------------------------------------------------
    def record_args(self: S) -> S:
        """Record and parse ``sys.argv``; needed before ``get_arg``."""
        self._require_initialised()
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

        A bare ``--tag`` gives ``True``. A flag read here is the experiment's own: it is not
        reported as unknown (see ``COMMAND_LINE_FLAGS`` for flags read later than ``run()``'s
        start).
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
        self._flags_read.add(tag)
        if tag in args.flags:
            return args.get(tag)
        if ensure_exists:
            raise ArgumentError(f"expected --{tag} VALUE on the command line, got {args.argv[1:]}")
        return default

    @classmethod
    def _declared_flags(cls) -> set[str]:
        return {flag for klass in cls.__mro__ for flag in vars(klass).get("COMMAND_LINE_FLAGS", ())}

    def setup_request(self) -> SetupRequest:
        """The recorded command line as a checked, plain :class:`SetupRequest` (flags one edit
        away from speedrun's own, and contradictory flags, raise an ``ArgumentError``)."""
        return parse_setup(self._require_args(), self._declared_flags())

    def _report_unknown_flags(self) -> None:
        """List, once, the flags that are neither speedrun's, declared, nor read."""
        if self._flags_reported or self._request is None:
            return
        self._flags_reported = True
        unread = [name for name in self._request.unknown_flags if name not in self._flags_read]
        report_unknown_flags(unread)

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
            print(
                f"speedrun: {len(findings)} --config override(s) do not match the base "
                f"config (use --strict to make this an error):\n{listing}",
                file=sys.stderr,
            )
        for path, value in overrides:
            self._tree.assign(path, value)
        if overrides:
            self._configured = True
        return self

    def parse_experiment_directory(self: S) -> S:
        """Set the experiment directory from the first positional command-line argument."""
        args = self._require_args()
        if not args.positionals:
            raise _no_directory(args)
        self.experiment_directory = args.positionals[0]
        return self

    def purge_existing_experiment_directory(self: S, experiment_directory: str | None = None) -> S:
        """Delete a speedrun experiment directory (refused for anything else)."""
        if experiment_directory is None:
            args = self._require_args()
            if not args.positionals:
                raise ArgumentError("--purge needs the experiment directory as first argument")
            experiment_directory = args.positionals[0]
        from ..directory._purge import purge_experiment_directory  # only for --purge

        purge_experiment_directory(experiment_directory)
        return self

    def read_macro(self: S, path: str | None = None) -> S:
        """Merge macro files (``--macro a.yml:b.yml``, or ``path``) into the config, in order."""
        if path is None:
            path = self._raw_flag("macro")
        if path is not None:
            from ..config._macro import merge_macro, read_macro_files

            for _, macro in read_macro_files(path):
                merge_macro(self._tree, macro)
            self._configured = True
        return self

    def _check_purge(self) -> bool:
        """Refuse a ``--purge`` that would be refused later; whether there is anything to purge."""
        from ..directory._purge import check_purge_allowed, leftover_purges

        args = self._require_args()
        if not args.positionals:
            return False
        check_purge_allowed(args.positionals[0])
        for leftover in leftover_purges(args.positionals[0]):
            warnings.warn(
                f"{leftover} is left over from a purge that was interrupted; "
                f"delete it yourself once you have checked it",
                stacklevel=3,
            )
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
                with open(
                    os.path.join(self._require_directory("--purge"), relative), "rb"
                ) as handle:
                    files = {relative: handle.read()}
            except FileNotFoundError:
                files = {}
        purge_and_recreate(self._require_directory("--purge"), self._writer_lock, files)

    # -- provenance ----------------------------------------------------------------------------
    def update_git_revision(self: S, overwrite: bool = False) -> S:
        """Record the git revision (``git_rev``) and dirty flag (``git_dirty``) in the config."""
        if overwrite or self.get("git_rev", None) is None:
            state = git_state()
            self.set("git_rev", state.revision)
            self.set("git_dirty", state.dirty)
        return self

    # -- set-up --------------------------------------------------------------------------------
    @property
    def resume_overrides(self) -> dict[str, Any]:
        """The ``--config`` overrides given with ``--resume`` that changed a value of the
        config the run was started with, as ``{'training/lr': 0.5}``. Objects restored from the
        checkpoint (an optimizer, a model built from the config) keep their saved values; apply
        these in a ``post_load`` hook where they should win (see the README)."""
        return dict(self._resume_overrides)

    def _resolve_configuration(self, request: SetupRequest, update_git_revision: bool) -> None:
        """The run's config: inherited or the directory's own, then macros, overrides, git.

        Reads ``request.directory``'s config file by path: nothing is created here.
        """
        if request.inherit is not None:
            self.inherit_configuration(request.inherit)
        elif request.directory is not None:
            path = os.path.join(request.directory, CONFIGURATIONS, CONFIG_FILE_NAME)
            if os.path.isfile(path) or request.resume:
                self.read_config_file(path=path)
        self._configured = True
        self.read_macro()
        if request.resume:
            self._resume_overrides = {
                path: value
                for path, value in request.overrides
                if self._tree.lookup(path, None) != value
            }
        self.update_configuration_from_args(strict=request.strict)
        self._validate_config_keys()
        if update_git_revision:
            self.update_git_revision(overwrite=True)

    def _training_method(self) -> str | None:
        """The method that trains the run (``BaseExperiment``: its default dispatch)."""
        return None

    def _is_evaluation(self, request: SetupRequest) -> bool:
        """Whether this launch opens an existing run to call another method than the one that
        trains it (``--dispatch evaluate``): then it is recorded as an evaluation of the run,
        and the run's config, command and status stay the training's. The training method is
        the default dispatch, or the ``--dispatch`` the run's last attempt was started with."""
        if request.dispatch is None or request.directory is None:
            return False
        if request.dispatch == self._training_method():
            return False
        from ._runinfo import read_run_record

        try:
            record = read_run_record(request.directory)
        except ExperimentDirectoryError:
            return False
        if not record:
            return False
        argv = (record.get("command") or {}).get("argv") or []
        try:
            trained_with = parse_arguments([str(arg) for arg in argv]).flags.get("dispatch")
        except ArgumentError:
            trained_with = None
        return request.dispatch != trained_with

    def auto_setup(self: S, update_git_revision: bool = True, dump_configuration: bool = True) -> S:
        """Set the run up from the command line.

        ``python exp.py DIR [--inherit DIR_OR_YML] [--macro a.yml:b.yml]
        [--config.a.b VALUE ...] [--purge | --resume [--any-class]] [--strict]
        [--dispatch NAME]``: reads the config (inherited, or DIR's own), merges macros, applies
        overrides, records the git revision, dumps the result to
        ``DIR/Configurations/train_config.yml``, takes the directory's writer lock and installs
        the preemption handlers. With ``--resume`` the latest valid checkpoint is loaded when
        ``run()`` starts (or call ``load_from_checkpoint()`` yourself once your objects exist).
        A set-up that fails creates nothing; speedrun's errors print without a traceback
        (``SPEEDRUN_TRACEBACK=1`` shows it).
        """
        install_error_hook()
        self.record_args()
        request = self._request = self.setup_request()
        if not _distributed.is_main_process():  # wait for rank 0's set-up, then read its result
            return self._follow_main_setup(request, update_git_revision, dump_configuration)
        if self._world_size > 1:  # should this set-up fail, the other ranks learn it at exit
            from ..distributed import _launch  # here: a single process never needs it

            _launch.announce_failure_at_exit(request.directory)
        if request.directory is None:
            raise _no_directory(self._require_args())
        directory = request.directory
        if request.resume and not is_run_directory(directory):
            raise nothing_to_resume(directory)
        if request.unknown_flags:  # reported when run() starts, or at exit without run()
            import atexit
            import weakref

            atexit.register(_report_at_exit, weakref.ref(self))
        if update_git_revision:
            prefetch_git_state()  # git runs while the configuration is read and the folder made
        self._resolve_configuration(request, False)  # may fail: nothing made yet
        # refuse a purge (foreign folder, symlink, home...) before touching anything
        purge = request.purge and self._check_purge()  # False: nothing there to purge yet
        self.parse_experiment_directory()
        # The writer lock comes first and is held across the purge and the re-creation, so
        # exactly one of several processes started with --purge at once gets through.
        self._writer_lock = WriterLock(self._require_directory("auto_setup"))
        self._writer_lock.acquire()
        existing = [] if purge else list_checkpoints(os.path.join(directory, WEIGHTS))
        if existing and not request.resume:
            steps = ", ".join(str(step) for step, _ in existing[-5:])
            self._writer_lock.release()
            raise ExperimentDirectoryError(
                f"{self._experiment_directory} already has checkpoints (steps {steps}). Pass "
                f"--resume to continue that run, or --purge to delete it and start over."
            )
        if update_git_revision:  # collected only now, so that git ran meanwhile
            self.update_git_revision(overwrite=True)
        if purge:  # the config was read above: the new directory starts with it
            self._purge_keeping_configuration(dump_configuration)
        evaluation = self._evaluation = self._is_evaluation(request)
        if dump_configuration and not evaluation:
            self.dump_configuration()
        if existing and self._resume_overrides:
            report_resume_overrides(
                self._resume_overrides, existing[-1][0], find_marked(type(self), POST_LOAD)
            )
        self._run_record = self._start_run_record(evaluation)  # Configurations/run.json
        _preemption.install(self.config_value("speedrun/preemption_signals"))
        if request.resume:
            if existing:
                self._resume_pending = True
            else:
                warnings.warn(
                    f"--resume: no checkpoint in {self.checkpoint_directory} yet; "
                    f"starting from step 0",
                    stacklevel=2,
                )
        if self._world_size > 1:  # the other ranks wait in _follow_main_setup() for this
            from ..distributed import _launch

            _launch.announce_setup(
                self._require_directory("auto_setup"),
                checkpoints=[step for step, _ in existing],
                config_dumped=dump_configuration and not evaluation,
            )
        return self

    def _follow_main_setup(
        self: S, request: SetupRequest, update_git_revision: bool, dump_configuration: bool
    ) -> S:
        """``auto_setup()`` of a process other than the main one: wait, then read what it resolved.

        Nothing is written: the directory, the configuration dump and the writer lock belong to
        the main process. The configuration is the one the main process dumped (identical by
        construction); with ``dump_configuration=False`` it is resolved here from the same
        command line and files, as the main process did.
        """
        if request.directory is None:
            raise _no_directory(self._require_args())
        directory = request.directory
        from ..distributed import _launch

        announcement = _launch.wait_for_main_setup(directory)
        self.parse_experiment_directory()  # records the path; only rank 0 creates folders
        if dump_configuration and announcement.get("config_dumped"):
            self.read_config_file()
            self._validate_config_keys()
        else:
            self._resolve_configuration(request, update_git_revision)
        _preemption.install(self.config_value("speedrun/preemption_signals"))
        steps = [step for step in announcement.get("checkpoints") or [] if isinstance(step, int)]
        self._resume_pending = bool(request.resume and steps)
        _launch.remember_resume_steps(os.path.join(directory, WEIGHTS), steps)
        return self

    def _start_run_record(self, evaluation: bool = False) -> RunRecord | None:
        """Write ``Configurations/run.json`` (main process only; see :mod:`._runinfo`)."""
        import weakref

        from ..checkpoint._files import class_path
        from ._contract import recorded_keys
        from ._runinfo import start_run_record

        reference = weakref.ref(self)  # the record must not keep the experiment alive

        def current_step() -> int | None:
            alive = reference()
            return None if alive is None else alive.step

        request = self._request if self._request is not None else self.setup_request()
        return start_run_record(
            self._require_directory("auto_setup"),
            experiment_class=class_path(self),
            request=request,
            resume_overrides=self._resume_overrides,
            evaluation=evaluation,
            current_step=current_step,
            config_keys=recorded_keys(type(self)),
        )


def _no_directory(args: Arguments) -> ArgumentError:
    return ArgumentError(
        "expected the experiment directory as the first argument, e.g. "
        f"python {os.path.basename(args.argv[0] if args.argv else 'train.py')} "
        f"experiments/RUN-0; got {args.argv[1:] or 'no arguments'}"
    )


def _report_at_exit(reference: Any) -> None:
    experiment = reference()
    if experiment is not None:
        experiment._report_unknown_flags()
