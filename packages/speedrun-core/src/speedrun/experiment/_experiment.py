"""``BaseExperiment``: the class every speedrun experiment derives from.

It composes the layers below it — ``ExperimentState`` (directory, counters, config, cache),
``Checkpointing``, ``CommandLineSetup`` and ``Dispatcher`` — and fills in the parts of
``run()`` that belong to an experiment. It keeps the original speedrun's public names and
meanings.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING

from .._errors import CheckpointError
from ..directory._layout import (
    CONFIG_FILE_NAME,
    CONFIGURATIONS,
    WEIGHTS,
    is_experiment_directory,
)
from ..distributed import _preemption
from ._dispatch import Dispatcher
from ._setup import CommandLineSetup
from ._sharding import wait as wait_for_sharded_save

if TYPE_CHECKING:
    from typing import TypeVar

    E = TypeVar("E", bound="BaseExperiment")


__all__ = ["BaseExperiment"]


class BaseExperiment(CommandLineSetup, Dispatcher):
    """Base class for experiments.

    Parameters
    ----------
    experiment_directory : str, optional
        The experiment's folder. It is created (if missing) with ``Configurations/``,
        ``Logs/``, ``Weights/`` and ``Plots/`` and a ``.speedrun`` marker.
    """

    def __init__(self, experiment_directory: str | os.PathLike[str] | None = None) -> None:
        super().__init__(experiment_directory)

    @classmethod
    def open(
        cls: type[E],
        directory: str | os.PathLike[str],
        step: int | None = None,
        *,
        strict_class: bool = False,
    ) -> E:
        """Open a run read-only, for analysis: its config and the checkpoint at ``step``
        (default: the latest valid one; none is fine when the run saved none).

        Your ``__init__`` is not called (it would set a run up from the command line); the
        experiment holds the run's config and the attributes its checkpoint saved. No writer
        lock is taken and nothing is written into ``directory``: ``checkpoint()`` and
        ``dump_configuration()`` raise. ``strict_class=True`` refuses a checkpoint written by
        a class that is neither ``cls`` nor one of its bases.
        """
        path = os.fspath(directory)
        if not is_experiment_directory(path):
            raise _not_a_run(path)
        experiment = cls.__new__(cls)
        BaseExperiment.__init__(experiment)
        experiment._experiment_directory = path
        experiment._read_only = True
        config = os.path.join(path, CONFIGURATIONS, CONFIG_FILE_NAME)
        if os.path.isfile(config):
            experiment.read_config_file(path=config)
        experiment._configured = True
        from ..checkpoint._files import list_checkpoints

        if step is not None or list_checkpoints(os.path.join(path, WEIGHTS)):
            experiment.load_from_checkpoint(step, strict_class=strict_class)
        return experiment

    # -- run: the parts of Dispatcher.run() that belong to the experiment -----------------------
    def _training_method(self) -> str | None:
        return self.find_default_dispatch() or self._default_dispatch or self.DEFAULT_DISPATCH

    def _dispatch_flag(self) -> str | None:
        if self._request is not None:
            return self._request.dispatch
        return self._raw_flag("dispatch")

    def _before_dispatch(self) -> None:
        self._require_initialised()
        record = self._run_record
        if record is not None:
            record.enter_run()
        self._report_unknown_flags()
        if self._resume_pending:
            any_class = self._request is not None and self._request.any_class
            self.load_from_checkpoint(strict_class=not any_class)

    def _after_dispatch(self, key: str) -> None:
        trains = key == self._training_method() or (
            self._request is not None and key == self._request.dispatch
        )
        if trains and not self._evaluation:  # the method that trains returned normally
            self._checkpoint_at_end()

    def _after_run(self) -> None:
        if "_tree" not in vars(self):  # never initialised: _before_dispatch said so
            return
        error = sys.exc_info()[1]
        wait_for_sharded_save(self, failing=error is not None)
        failure: CheckpointError | None = None
        try:  # a pending background save commits before the run ends
            self.wait_for_checkpoint()
        except CheckpointError as exc:
            failure = exc
        record = self._run_record
        if record is not None:  # the end status, written while the writer lock is still held
            record.finish_run(error or failure, self.step)
        if isinstance(error, KeyboardInterrupt) and self._experiment_directory is not None:
            saved = self._last_saved_step
            print(
                f"speedrun: interrupted at step {self.step}; "
                + (
                    f"the last checkpoint is from step {saved} (continue with --resume)."
                    if saved is not None
                    else "no checkpoint was written in this run."
                ),
                file=sys.stderr,
                flush=True,
            )
        _preemption.uninstall()
        if self._writer_lock is not None:
            self._writer_lock.release()
        if failure is not None:
            if error is None:
                raise failure
            warnings.warn(
                f"{failure} (reported here because the run is already ending with "
                f"{type(error).__name__}: {error})",
                stacklevel=2,
            )


def _not_a_run(path: str) -> Exception:
    from .._errors import ExperimentDirectoryError

    what = "no such folder" if not os.path.exists(path) else "not a speedrun experiment directory"
    return ExperimentDirectoryError(
        f"BaseExperiment.open({path!r}): {what}; expected a folder made by auto_setup() (with "
        "a .speedrun marker)."
    )
