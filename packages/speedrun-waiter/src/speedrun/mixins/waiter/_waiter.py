"""WaiterMixin: start an experiment only when other runs are done and enough memory is free."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from speedrun.ext import has_mixin

from ._loop import (
    _default_say,
    _default_warn,
    check_interval_value,
    format_duration,
    timeout_value,
    verbose_value,
    wait_for_targets,
)
from ._process import check_pid
from ._process import is_alive as _is_alive
from ._targets import MemoryTarget, ProcessTarget, parse_wait_for

if TYPE_CHECKING:
    from speedrun import BaseExperiment as _Base
else:
    _Base = object

__all__ = ["WaiterMixin"]


class WaiterMixin(_Base):
    """Wait for other processes or runs to finish, and for free memory, before starting.

    Useful to queue experiments on a shared machine without a scheduler::

        class Train(WaiterMixin, BaseExperiment):
            def __init__(self):
                super().__init__()
                self.auto_setup()
                self.wait()          # blocks here as the command line asks
                ...

        $ python train.py experiments/RUN-1 --wait.for experiments/RUN-0 --wait.memory 8GB

    Command-line arguments read by :meth:`wait`:

    ``--wait.for``
        A PID (``12345``), several PIDs (``"[123, 456]"``), an experiment directory
        (``experiments/RUN-0``: until the run holding its writer lock ends, crashes or is
        killed), or a list mixing them.
    ``--wait.memory``
        Until this much RAM is available, e.g. ``8GB``, ``512MiB`` (units B, KB, MB, GB, TB are
        powers of 1000; KiB, MiB, GiB, TiB powers of 1024; case-insensitive).
    ``--wait.check_interval``
        Seconds between checks (default 1).
    ``--wait.timeout``
        Give up after this many seconds: raises :class:`WaitTimeout`, which ends the script
        with exit status :data:`WAIT_TIMEOUT_EXIT_CODE` (124) if nothing catches it.
    ``--wait.verbose``
        Print one line when the wait starts, when something finishes and when it ends
        (default True). Errors are printed either way.

    Lines go through the experiment's ``print`` when it has one (IOMixin), else to stdout
    (progress) and stderr (errors).
    """

    #: The ``--wait.*`` flags are this mixin's: speedrun does not report them as unknown.
    COMMAND_LINE_FLAGS = ("wait.",)

    @staticmethod
    def is_alive(pid: int, create_time: float | None = None) -> bool:
        """Whether process ``pid`` is running (zombies and reused PIDs count as finished).

        Parameters
        ----------
        pid : int
            The process ID.
        create_time : float, optional
            The creation time the process had when you started watching it
            (``psutil.Process(pid).create_time()``). If the PID now belongs to a process created
            at another time, the original one has ended: returns False.
        """
        return _is_alive(pid, create_time)

    def wait_for_pid(
        self,
        pid: int,
        timeout: float = 1,
        *,
        create_time: float | None = None,
        max_wait: float | None = None,
    ) -> float:
        """Block until process ``pid`` has finished.

        Parameters
        ----------
        pid : int
            The process ID to wait for.
        timeout : float
            Seconds between checks (the original speedrun's name for the check interval).
        create_time : float, optional
            Creation time of the process meant. By default it is read when the wait starts, so
            a PID reused by another process after ours ended does not keep us waiting.
        max_wait : float, optional
            Give up after this many seconds by raising :class:`WaitTimeout`.

        Returns
        -------
        float
            Seconds spent waiting.
        """
        target = ProcessTarget(check_pid(pid, what="wait_for_pid(pid=...)"), create_time)
        interval = check_interval_value(timeout, what="wait_for_pid(timeout=...)")
        limit = timeout_value(max_wait, what="wait_for_pid(max_wait=...)")
        say, warn = self._waiter_printers()
        return wait_for_targets(
            [target],
            None,
            check_interval=interval,
            timeout=limit,
            verbose=False,
            say=say,
            warn=warn,
        )

    def wait(self) -> bool | None:
        """Block as ``--wait.for``, ``--wait.memory`` and friends ask (see the class docstring).

        Call it any time after the command line was recorded (``auto_setup`` or
        ``record_args``), e.g. in ``__init__`` or right before the training loop. To queue a
        run behind another run *in the same experiment directory* (e.g. ``--resume`` once it
        is done), wait before ``auto_setup`` takes the directory's lock::

            self.record_args()
            self.wait()
            self.auto_setup()

        Waiting for the directory whose lock this process holds is refused (it would never end).

        Returns
        -------
        bool or None
            None when the command line asks for no wait, True once the wait is over.

        Raises
        ------
        WaitTimeout
            ``--wait.timeout`` passed while something was still pending (exit status 124 if
            uncaught).
        ArgumentError, ExperimentDirectoryError
            For malformed ``--wait.*`` values, naming what is accepted.
        KeyboardInterrupt
            On Ctrl-C, after a one-line message.
        """
        get_arg = getattr(self, "get_arg", None)
        if not callable(get_arg):
            raise TypeError(
                f"WaiterMixin.wait() reads --wait.* from the command line through "
                f"BaseExperiment.get_arg, but {type(self).__name__} has no get_arg. Fix: mix it "
                "into an experiment (class MyExperiment(WaiterMixin, BaseExperiment)), or call "
                "speedrun.mixins.waiter.wait_for(...) directly."
            )
        interval = check_interval_value(get_arg("wait.check_interval", 1))
        raw_timeout = get_arg("wait.timeout", None)
        limit = timeout_value(raw_timeout)
        verbose = verbose_value(get_arg("wait.verbose", True))
        raw_for = get_arg("wait.for", None)
        raw_memory = get_arg("wait.memory", None)
        if raw_for is None and raw_memory is None:
            return None
        targets = parse_wait_for(raw_for)
        memory = None if raw_memory is None else MemoryTarget(raw_memory)
        say, warn = self._waiter_printers()
        hint = "" if limit is None else f" (--wait.timeout {format_duration(limit)})"
        wait_for_targets(
            targets,
            memory,
            check_interval=interval,
            timeout=limit,
            verbose=verbose,
            say=say,
            warn=warn,
            timeout_hint=hint,
        )
        return True

    # -- helpers -------------------------------------------------------------------------------
    def _waiter_printers(self) -> tuple[Callable[[str], Any], Callable[[str], Any]]:
        """``(say, warn)``: the experiment's ``print`` for both if it is an ``IOMixin``."""
        if has_mixin(self, "speedrun.mixins.io:IOMixin"):
            return self.print, self.print  # type: ignore[attr-defined]  # print comes from IOMixin in the experiment's MRO
        return _default_say, _default_warn
