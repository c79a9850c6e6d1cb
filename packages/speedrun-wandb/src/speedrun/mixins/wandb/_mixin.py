"""``WandBMixin``: Weights & Biases logging that survives resumes, requeues and restarts."""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from speedrun import ArgumentError, ConfigError, is_main_process, register_hook
from speedrun.ext import (
    CLEAN_UP,
    POST_LOAD,
    PRE_CHECKPOINT,
    ConfigKey,
    list_checkpoints,
    preemption_requested,
)

from ._connect import MODES, load_wandb, resolve_mode, start_run
from ._images import image_array
from ._info import (
    flatten,
    new_run_id,
    offline_directories,
    read_info,
    sync_command,
    write_info,
)

if TYPE_CHECKING:
    from speedrun import BaseExperiment as _Base
else:
    _Base = object

__all__ = ["WandBMixin"]

WANDB_DIRECTORY = "WandB"
#: ``wandb/init_timeout``'s default, also ``SweepRunner``'s ``init_timeout``.
DEFAULT_INIT_TIMEOUT = 30.0


@dataclass
class _State:
    """What the mixin keeps per process (never checkpointed)."""

    run: Any = None
    mode: str | None = None
    deferred: bool = False  # --resume: start once the checkpoint is loaded
    loaded_step: int | None = None  # the step of the checkpoint loaded (post_load)
    hold_depth: int = 0
    held_step: int = 0
    pending_step: int | None = None  # a row W&B still accumulates (not yet committed)
    last_step: int = -1  # the last step handed to W&B
    barrier: int = 0  # steps below it are already in the W&B run
    skipped: list[int] = field(default_factory=list)  # [first, last] skipped step
    attempt: dict[str, Any] = field(default_factory=dict)


def _positive_seconds(value: Any) -> str | None:
    return None if value > 0 else "a positive number of seconds"


def _one_of(*choices: str) -> Any:
    def check(value: Any) -> str | None:
        return None if value in choices else f"one of {', '.join(choices)}"

    return check


def _mode_problem(value: Any) -> str | None:
    if value is None:
        return None
    try:
        resolve_mode(value)  # accepts W&B's aliases (dryrun, run) too
    except ConfigError:
        return f"one of {', '.join(MODES)} (or null: WANDB_MODE, else online)"
    return None


def _steps_problem(value: Any) -> str | None:
    if value is None or value >= 0:
        return None
    return "a whole number of steps (0 or null for never)"


def _watch_problem(value: Any) -> str | None:
    return None if value > 0 else "a positive whole number of steps"


def _text(path: str, doc: str) -> ConfigKey:
    return ConfigKey(path, None, doc, kinds=(str, type(None)))


class WandBMixin(_Base):
    """Weights & Biases logging for a :class:`~speedrun.BaseExperiment`.

    The W&B run belongs to the experiment directory: its id is stored (atomically) in
    ``Logs/wandb_info.yml``, and ``--resume`` (a SLURM/submitit requeue, a torchrun restart)
    continues that same run. W&B's step is the experiment's ``step``; see the README for what
    happens to the steps logged between the last checkpoint and an interruption.

    Config keys (all optional): ``wandb/mode`` (``online``, ``offline``, ``disabled``; default
    ``WANDB_MODE``, else ``online``), ``wandb/init_timeout`` (seconds, 30),
    ``wandb/on_init_failure`` (``offline`` or ``error``), ``wandb/project``, ``wandb/entity``,
    ``wandb/job_type``, ``wandb/name``, ``wandb/group``, ``wandb/tags``, ``wandb/log_every``
    (1), ``wandb/flush_secs`` (2), ``wandb/resume_steps`` (``keep`` or ``rewind``).

    Only the main process (``speedrun.is_main_process()``) starts W&B; on the other ranks
    :attr:`wandb_run` is ``None`` and the ``wandb_log*`` methods do nothing.
    """

    #: This process's W&B run and step bookkeeping.
    NOT_CHECKPOINTED: ClassVar[frozenset[str]] = frozenset({"_wandb_state"})
    CONFIG_KEYS: ClassVar[tuple[ConfigKey, ...]] = (
        ConfigKey(
            "wandb/mode",
            None,
            "online, offline (files only, upload later with wandb "
            "sync) or disabled; unset: WANDB_MODE, else online.",
            kinds=(str, type(None)),
            check=_mode_problem,
        ),
        ConfigKey(
            "wandb/init_timeout",
            DEFAULT_INIT_TIMEOUT,
            "Seconds an online start may take "
            "(server check plus wandb.init) before wandb/on_init_failure applies.",
            kinds=(int, float),
            check=_positive_seconds,
        ),
        ConfigKey(
            "wandb/on_init_failure",
            "offline",
            "offline: log offline with a warning; error: stop with WandBInitError.",
            kinds=(str,),
            check=_one_of("offline", "error"),
        ),
        _text("wandb/project", "The W&B project; unset: the class attribute WANDB_PROJECT."),
        _text("wandb/entity", "The W&B entity; unset: the class attribute WANDB_ENTITY."),
        _text("wandb/job_type", "The run's job type; unset: the class attribute WANDB_JOB_TYPE."),
        _text("wandb/name", "The run's display name; unset: W&B's."),
        _text("wandb/group", "The run's group; unset: W&B's."),
        ConfigKey(
            "wandb/tags", None, "The run's tags; unset: none.", kinds=(list, tuple, type(None))
        ),
        ConfigKey(
            "wandb/log_every",
            1,
            "log_wandb_now is true when step % log_every == 0; 0 or null: never.",
            kinds=(int, type(None)),
            check=_steps_problem,
        ),
        ConfigKey(
            "wandb/watch_every",
            1000,
            "wandb_watch's default log_freq, in steps.",
            kinds=(int,),
            check=_watch_problem,
        ),
        ConfigKey(
            "wandb/flush_secs",
            2.0,
            "How often W&B writes the run's .wandb file (W&B's "
            "x_transaction_log_flush_interval; its own 15 s loses more on kill -9).",
            kinds=(int, float),
            check=_positive_seconds,
        ),
        ConfigKey(
            "wandb/resume_steps",
            "keep",
            "What happens to the steps logged between the "
            "checkpoint and an interruption: keep or rewind.",
            kinds=(str,),
            check=_one_of("keep", "rewind"),
        ),
    )

    WANDB_PROJECT: str | None = None
    WANDB_ENTITY: str | None = None
    WANDB_JOB_TYPE: str | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def _wandb(self) -> _State:
        state = self.__dict__.get("_wandb_state")
        if state is None:
            state = self.__dict__["_wandb_state"] = _State()
        return state

    @property
    def wandb_directory(self) -> str:
        """``<experiment>/WandB``: where W&B keeps its files for this experiment (created)."""
        if self.experiment_directory is None:
            raise ConfigError(
                "WandBMixin keeps W&B's files in <experiment>/WandB, but the "
                "experiment has no directory: call auto_setup() first (python "
                "train.py experiments/RUN-0)"
            )
        directory = os.path.join(self.experiment_directory, WANDB_DIRECTORY)
        os.makedirs(directory, exist_ok=True)
        return directory

    @property
    def wandb_config(self) -> dict[str, Any]:
        """The configuration flattened with ``__`` (``training__lr``), as W&B stores it."""
        return flatten(self._config.to_dict())

    @property
    def wandb_run(self) -> Any:
        """The ``wandb`` run (started on first use), or ``None`` on ranks other than the main."""
        state = self._wandb
        if state.run is None and is_main_process():
            if state.deferred:
                self._wandb_start(resume=True)
            else:
                self.initialize_wandb()
        return state.run

    # -- starting ------------------------------------------------------------------------------
    def initialize_wandb(self, resume: bool | None = None) -> WandBMixin:
        """Start (or continue) this experiment's W&B run; only the main process does.

        ``resume`` (default: whether ``--resume`` was given) continues the run whose id
        :meth:`find_existing_wandb_run_id` finds. When a checkpoint is still to be loaded
        (``--resume`` before ``run()``), W&B starts right after it is loaded, so that the run
        continues from the checkpoint's step.
        """
        state = self._wandb
        if state.run is not None or not is_main_process():
            return self
        if resume is None:
            resume = self._wandb_flag("resume")
        if (
            resume
            and state.loaded_step is None
            and self.checkpoint_directory is not None
            and list_checkpoints(self.checkpoint_directory)
        ):
            state.deferred = True
            return self
        self._wandb_start(bool(resume))
        return self

    def _wandb_flag(self, name: str) -> bool:
        try:
            return bool(self.get_arg(name, False))
        except ArgumentError:  # no command line (experiment built in code)
            return False

    def _wandb_setting(self, key: str, attribute: str | None = None) -> Any:
        value = self.config_value(f"wandb/{key}")
        if value is None and attribute is not None:
            value = getattr(self, attribute)
        return value

    def _wandb_start(self, resume: bool) -> None:
        state = self._wandb
        state.deferred = False
        wandb = load_wandb()
        mode = resolve_mode(self.config_value("wandb/mode"))
        run_id = self.find_existing_wandb_run_id() if resume else os.environ.get("WANDB_RUN_ID")
        continuing = bool(resume and run_id)
        run_id = run_id or new_run_id()
        step = self.step
        init: dict[str, Any] = {
            "project": self._wandb_setting("project", "WANDB_PROJECT"),
            "entity": self._wandb_setting("entity", "WANDB_ENTITY"),
            "job_type": self._wandb_setting("job_type", "WANDB_JOB_TYPE"),
            "name": self.config_value("wandb/name"),
            "group": self.config_value("wandb/group"),
            "tags": self.config_value("wandb/tags"),
            "config": self.wandb_config,
            "dir": self.wandb_directory,
            "id": run_id,
        }
        init = {key: value for key, value in init.items() if value is not None}
        resume_steps = self.config_value("wandb/resume_steps")
        if continuing and resume_steps == "rewind" and step > 0:
            init["resume_from"] = f"{run_id}?_step={step - 1}"  # W&B continues at `step`
        elif continuing:
            init["resume"] = "allow"
        settings = {
            "x_transaction_log_flush_interval": float(self.config_value("wandb/flush_secs"))
        }
        run, mode = start_run(
            wandb,
            mode=mode,
            init=init,
            settings=settings,
            timeout=float(self.config_value("wandb/init_timeout")),
            on_failure=self.config_value("wandb/on_init_failure"),
        )
        state.run, state.mode = run, mode
        state.pending_step, state.last_step, state.skipped = None, step - 1, []
        state.barrier = step
        if continuing and "resume_from" not in init:
            # Online, W&B knows the run's next step; offline, the last step a clean exit saw.
            known = int(getattr(run, "step", 0) or 0) if mode == "online" else 0
            recorded = read_info(self.experiment_directory).get("last_step")
            if isinstance(recorded, int) and mode != "online":
                known = max(known, recorded + 1)
            state.barrier = max(step, known)
        state.last_step = state.barrier - 1  # what the W&B run holds, as far as we know
        state.attempt = {
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "mode": mode,
            "step": step,
        }
        if mode != "disabled":
            self.dump_wandb_info()
        if mode == "offline":
            print(
                f"speedrun: W&B run {run_id} is logged offline in {self.wandb_directory}; "
                f"upload it with: {self._wandb_sync_command(run)}",
                file=sys.stderr,
                flush=True,
            )

    def find_existing_wandb_run_id(self) -> str | None:
        """The W&B run to continue: ``WANDB_RUN_ID``, else ``Logs/wandb_info.yml``'s, else the
        ``--inherit`` run's; ``None`` if there is none."""
        from_environment = os.environ.get("WANDB_RUN_ID")
        if from_environment:
            return from_environment
        for directory in (self.experiment_directory, self._wandb_inherited_directory()):
            run_id = read_info(directory).get("wandb_run_id")
            if run_id:
                return str(run_id)
        return None

    def _wandb_inherited_directory(self) -> str | None:
        try:
            source = self.get_arg("inherit")
        except ArgumentError:
            return None
        return source if isinstance(source, str) and os.path.isdir(source) else None

    def dump_wandb_info(self) -> WandBMixin:
        """Write ``Logs/wandb_info.yml`` (run id, project, mode, URL, attempts), atomically."""
        state = self._wandb
        run = state.run
        if run is None or not is_main_process() or self.experiment_directory is None:
            return self
        previous = read_info(self.experiment_directory)
        attempts = (
            list(previous.get("attempts") or []) if previous.get("wandb_run_id") == run.id else []
        )
        if state.attempt and state.attempt not in attempts:
            attempts.append(state.attempt)
        info = {
            "wandb_run_id": run.id,
            "run_name": getattr(run, "name", None),
            "project": getattr(run, "project", None)
            or self._wandb_setting("project", "WANDB_PROJECT"),
            "entity": getattr(run, "entity", None) or self._wandb_setting("entity", "WANDB_ENTITY"),
            "mode": state.mode,
            "url": getattr(run, "url", None) if state.mode == "online" else None,
            "last_step": state.last_step,
            "attempts": attempts,
        }
        write_info(self.experiment_directory, info)
        return self

    def _wandb_sync_command(self, run: Any) -> str:
        info = read_info(self.experiment_directory)
        return sync_command(
            run.id,
            info.get("project"),
            info.get("entity"),
            offline_directories(self.wandb_directory, run.id),
        )

    # -- steps ---------------------------------------------------------------------------------
    def wandb_pause_step_counter(self) -> WandBMixin:
        """Log everything until :meth:`wandb_resume_step_counter` at the current W&B step."""
        state = self._wandb
        if state.hold_depth == 0:
            state.held_step = self.step
        state.hold_depth += 1
        return self

    def wandb_resume_step_counter(self) -> WandBMixin:
        """Undo one :meth:`wandb_pause_step_counter`: logs follow ``step`` again."""
        state = self._wandb
        state.hold_depth = max(0, state.hold_depth - 1)
        return self

    @contextlib.contextmanager
    def wandb_hold_step(self) -> Iterator[None]:
        """Everything logged inside the ``with`` block goes to one W&B step (one row)."""
        self.wandb_pause_step_counter()
        try:
            yield
        finally:
            self.wandb_resume_step_counter()

    @property
    def log_wandb_now(self) -> bool:
        """True when ``step % wandb/log_every == 0`` (default 1: every step; 0/null: never)."""
        every = self.config_value("wandb/log_every")
        if not every:
            return False
        return self.step % int(every) == 0

    # -- logging -------------------------------------------------------------------------------
    def wandb_log(
        self,
        metrics: Mapping[str, Any] | None = None,
        step: int | None = None,
        commit: bool | None = None,
        **more_metrics: Any,
    ) -> WandBMixin:
        """Log ``metrics`` (a dict and/or keywords) at ``step`` (default: the experiment's step,
        or the held one), adding ``step`` and ``epoch``.

        Steps that the W&B run already holds from an interrupted attempt are skipped (see the
        README: resume); the first skip is reported once.
        """
        run = self.wandb_run
        if run is None:
            return self
        state = self._wandb
        if step is None:
            step = state.held_step if state.hold_depth else self.step
        step = int(step)
        if step < state.barrier:
            self._wandb_note_skip(step)
            return self
        data = dict(metrics or {})
        data.update(more_metrics)
        data.setdefault("step", step)
        data.setdefault("epoch", self.epoch)
        run.log(data, step=step, commit=commit)
        state.last_step = max(state.last_step, step)
        state.pending_step = None if commit else step
        return self

    def _wandb_note_skip(self, step: int) -> None:
        state = self._wandb
        if not state.skipped:
            state.skipped = [step, step]
            print(
                f"speedrun: W&B run {state.run.id} already holds steps up to "
                f"{state.barrier - 1} from the interrupted attempt; logs below that step are "
                f"not sent again (the earlier values stay). wandb/resume_steps: rewind "
                f"replaces them instead.",
                file=sys.stderr,
                flush=True,
            )
        else:
            state.skipped[1] = max(state.skipped[1], step)

    def wandb_log_scalar(self, tag: str, value: Any, step: int | None = None) -> WandBMixin:
        """Log one number (int, float, NumPy scalar, 1-element tensor) under ``tag``."""
        if callable(getattr(value, "item", None)):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f"wandb_log_scalar({tag!r}) expects a number, got {type(value).__name__} {value!r}"
            )
        return self.wandb_log({tag: value}, step=step)

    def as_wandb_image(
        self, value: Any, image_format: str = "chw", caption: str | None = None
    ) -> Any:
        """A ``wandb.Image`` from a torch tensor or NumPy array (``'chw'`` or ``'hwc'``)."""
        wandb = load_wandb()
        return wandb.Image(image_array(value, image_format), caption=caption)

    def wandb_log_image(
        self,
        tag: str,
        value: Any,
        image_format: str = "chw",
        caption: str | None = None,
        step: int | None = None,
    ) -> WandBMixin:
        """Log an image (see :meth:`as_wandb_image`) under ``tag``."""
        if self.wandb_run is None:
            return self
        return self.wandb_log({tag: self.as_wandb_image(value, image_format, caption)}, step=step)

    def wandb_watch(
        self,
        model: Any,
        criterion: Any = None,
        log: str | None = "gradients",
        log_freq: int | None = None,
    ) -> WandBMixin:
        """``wandb.watch`` the model (gradients/parameters every ``log_freq`` steps; default
        ``wandb/watch_every``, else 1000)."""
        run = self.wandb_run
        if run is not None:
            run.watch(
                model,
                criterion=criterion,
                log=log,
                log_freq=int(log_freq or self.config_value("wandb/watch_every")),
            )
        return self

    # -- hooks ---------------------------------------------------------------------------------
    def _wandb_before_checkpoint(self) -> None:
        """Commit the row of an earlier step, so that it is not lost if the job dies now."""
        state = self._wandb
        if (
            state.run is not None
            and state.pending_step is not None
            and state.pending_step < self.step
        ):
            state.run.log({}, step=state.pending_step, commit=True)
            state.pending_step = None

    register_hook(_wandb_before_checkpoint, PRE_CHECKPOINT)

    def _wandb_after_load(self) -> None:
        state = self._wandb
        state.loaded_step = self.step
        if state.deferred and is_main_process():
            self._wandb_start(resume=True)

    register_hook(_wandb_after_load, POST_LOAD)

    def _wandb_finish(self) -> None:
        """Finish the run (``clean_up``): preempted runs stay resumable, offline ones say how to
        upload them."""
        state = self._wandb
        run = state.run
        if run is None:
            return
        if state.mode != "disabled":
            try:
                self.dump_wandb_info()
            except Exception as problem:
                warnings.warn(f"could not update Logs/wandb_info.yml: {problem}", stacklevel=2)
        state.run = None
        error = sys.exc_info()[1]
        if preemption_requested():
            run.mark_preempting()
            exit_code = 75
        else:
            exit_code = 0 if error is None else 1
        sync = self._wandb_sync_command(run) if state.mode == "offline" else None
        run.finish(exit_code=exit_code)
        if sync:
            print(
                f"speedrun: W&B run {run.id} was logged offline; upload it with: {sync}",
                file=sys.stderr,
                flush=True,
            )

    register_hook(_wandb_finish, CLEAN_UP)
