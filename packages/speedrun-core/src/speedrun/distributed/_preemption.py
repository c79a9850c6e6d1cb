"""Preemption requests from signals: checkpoint at the next step boundary, then exit for a requeue.

Cluster schedulers warn a job before they stop it: SLURM sends SIGTERM (and, with
``#SBATCH --signal=USR1@120``, SIGUSR1 two minutes ahead), Kubernetes sends SIGTERM.
:func:`install` replaces the handlers of those signals with one that only sets a flag; the
training loop polls :func:`requested` (a module-level flag read, nanoseconds) at each step
boundary, saves a checkpoint, and exits with :data:`PREEMPTION_EXIT_CODE` by raising
:class:`Preempted`. A requeue wrapper then restarts the job with ``--resume``::

    python train.py experiments/RUN-0 --resume
    [ $? -eq 75 ] && scontrol requeue "$SLURM_JOB_ID"

The handler does nothing else: no I/O, no exception in the middle of a step, so a signal can
never interrupt a checkpoint write. A second signal while a request is still pending gets the
signal's previous behaviour (for SIGTERM: the process ends at once), so a run that never reaches
a step boundary can still be stopped; the atomic checkpoint writes make that safe.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._errors import SpeedrunError

if TYPE_CHECKING:
    from typing import Any


__all__ = [
    "DEFAULT_SIGNALS",
    "PREEMPTION_EXIT_CODE",
    "Preempted",
    "install",
    "installed_signals",
    "received_signal",
    "request",
    "requested",
    "reset",
    "uninstall",
]

#: Exit status of a preempted run: 75 is ``EX_TEMPFAIL`` (sysexits.h), "temporary failure, try
#: again": the run saved a checkpoint and should be restarted with ``--resume``.
PREEMPTION_EXIT_CODE = 75

#: Signals handled by :func:`install` when none are given.
DEFAULT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1)

SignalLike = int | str | signal.Signals

_requested = False
_signal: int | None = None
_previous: dict[int, Any] = {}


def _reset_in_forked_child() -> None:
    """A forked child (a ``multiprocessing`` or DataLoader worker) is not the run: it gets the
    signals' previous behaviour back, so SIGTERM ends it instead of setting a flag nobody reads."""
    global _requested, _signal
    for number in list(_previous):
        previous = _previous.pop(number)
        try:
            if signal.getsignal(number) is _handler:
                signal.signal(number, _restorable(previous))
        except (OSError, ValueError):  # pragma: no cover - not the main thread
            continue
    _requested = False
    _signal = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_forked_child)


class Preempted(SystemExit):
    """Raised to end a preempted run after its checkpoint; exits with :data:`PREEMPTION_EXIT_CODE`.

    Being a :class:`SystemExit`, an uncaught ``Preempted`` ends the process with status 75
    without a traceback, and ``finally`` blocks (clean-up hooks) still run. ``code`` is 75;
    ``str()`` is ``message`` when given (also accepted as the only positional argument), else a
    sentence naming the signal (the one received, unless ``signum`` says otherwise) and ``step``.
    """

    def __init__(
        self, step: int | None = None, signum: int | None = None, *, message: str | None = None
    ) -> None:
        super().__init__(PREEMPTION_EXIT_CODE)
        if isinstance(step, str):  # Preempted("message")
            step, message = None, step
        self.message = message
        self.step = step
        self.signum = _signal if signum is None else signum

    def __str__(self) -> str:
        if self.message:
            return self.message
        cause = f"signal {_signal_name(self.signum)}" if self.signum is not None else "a request"
        at = f" at step {self.step}" if self.step is not None else ""
        return (
            f"Preempted by {cause}{at}: checkpoint saved; exiting with status "
            f"{PREEMPTION_EXIT_CODE} so the job can be requeued and continued with --resume."
        )


def _handler(signum: int, frame: Any) -> None:
    global _requested, _signal
    if _requested:
        # A second signal: the run did not reach a step boundary in between (it may never call
        # next_step()). Give the signal its previous meaning and deliver it again, so a plain
        # `kill` twice (or a scheduler's repeated TERM) still ends the process.
        signal.signal(signum, _restorable(_previous.pop(signum, signal.SIG_DFL)))
        os.kill(os.getpid(), signum)
        return
    _signal = signum
    _requested = True


def requested() -> bool:
    """Whether a preemption was requested (by a handled signal or :func:`request`)."""
    return _requested


def received_signal() -> int | None:
    """The signal number that requested preemption, or None (none yet, or :func:`request`)."""
    return _signal


def request() -> None:
    """Request preemption from code (e.g. a wall-clock budget), as a handled signal would."""
    global _requested
    _requested = True


def reset() -> None:
    """Clear a pending preemption request (handlers stay installed)."""
    global _requested, _signal
    _requested = False
    _signal = None


def install(signals: Iterable[SignalLike] | None = None) -> bool:
    """Handle ``signals`` (default SIGTERM and SIGUSR1) by requesting preemption.

    Signals may be given as numbers, :class:`signal.Signals` or names (``"SIGTERM"``,
    ``"TERM"``). The previous handlers are kept and restored by :func:`uninstall`; installing
    again is harmless. Python only allows handlers to be set from the main thread: elsewhere
    nothing is installed, a warning says so, and False is returned.

    Raises
    ------
    SpeedrunError
        For an unknown signal name or a signal that cannot be caught (SIGKILL, SIGSTOP); no
        handler is changed then.
    """
    numbers = [_to_signal(item) for item in (DEFAULT_SIGNALS if signals is None else signals)]
    if threading.current_thread() is not threading.main_thread():
        warnings.warn(
            "speedrun's preemption handlers were not installed: signal handlers can only be set "
            "from the main thread, and this is "
            f"{threading.current_thread().name!r}. Signals keep their current behaviour.",
            stacklevel=2,
        )
        return False
    changed: list[int] = []
    try:
        for number in numbers:
            if number in _previous:
                continue
            previous = signal.signal(number, _handler)
            _previous[number] = previous
            changed.append(number)
    except (OSError, ValueError) as exc:
        for number in changed:
            signal.signal(number, _restorable(_previous.pop(number)))
        raise SpeedrunError(
            f"Cannot handle signal {_signal_name(number)} for preemption: {exc}. Expected "
            "catchable signals such as SIGTERM, SIGUSR1, SIGUSR2 (SIGKILL and SIGSTOP cannot "
            "be caught)."
        ) from exc
    return True


def uninstall() -> None:
    """Restore the handlers that :func:`install` replaced.

    A handler that someone else set after :func:`install` is left in place. Does nothing when
    called off the main thread or when nothing is installed. The request flag is kept (see
    :func:`reset`).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for number in list(_previous):
        previous = _previous.pop(number)
        if signal.getsignal(number) is _handler:
            signal.signal(number, _restorable(previous))


def installed_signals() -> tuple[int, ...]:
    """The signals currently routed to the preemption flag."""
    return tuple(number for number in _previous if signal.getsignal(number) is _handler)


def _restorable(handler: Any) -> Any:
    # getsignal() returns None for a handler installed from C; SIG_DFL is the closest we can do.
    return signal.SIG_DFL if handler is None else handler


def _to_signal(item: SignalLike) -> int:
    if isinstance(item, bool):
        raise SpeedrunError(f"Expected a signal number or name such as 'SIGTERM', got {item!r}.")
    if isinstance(item, int):
        try:
            return int(signal.Signals(item))
        except ValueError:
            raise SpeedrunError(
                f"Expected a valid signal number or a name such as 'SIGTERM', got {item}."
            ) from None
    if isinstance(item, str):
        name = item.strip().upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        try:
            return int(signal.Signals[name])
        except KeyError:
            raise SpeedrunError(
                f"Unknown signal name {item!r}; expected a name such as 'SIGTERM', 'SIGUSR1' "
                "or 'SIGUSR2'."
            ) from None
    raise SpeedrunError(
        f"Expected a signal number or name such as 'SIGTERM', got {type(item).__name__} {item!r}."
    )


def _signal_name(number: int | None) -> str:
    try:
        return signal.Signals(number).name  # type: ignore[arg-type]  # None raises TypeError, caught below
    except (ValueError, TypeError):
        return str(number)
