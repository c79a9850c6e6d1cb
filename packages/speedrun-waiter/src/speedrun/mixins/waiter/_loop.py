"""The wait itself: poll targets, print one line per state change, honour timeout and Ctrl-C."""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from speedrun import ArgumentError

from ._errors import WAIT_TIMEOUT_EXIT_CODE, WaitTimeout
from ._memory import format_bytes
from ._targets import DirectoryTarget, MemoryTarget, ProcessTarget, parse_wait_for

__all__ = [
    "PREFIX",
    "check_interval_value",
    "format_duration",
    "timeout_value",
    "verbose_value",
    "wait_for",
    "wait_for_targets",
]

#: Every line the waiter prints starts with this, so it is easy to grep in SLURM logs.
PREFIX = "[waiter] "

# Sleeps are cut into slices this long, to notice a preemption signal promptly.
_SLICE_SECONDS = 0.25

_TRUE_WORDS = {"true", "yes", "1", "on"}
_FALSE_WORDS = {"false", "no", "0", "off"}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_interval_value(value: Any, *, what: str = "--wait.check_interval") -> float:
    """Validate a polling interval: a finite number of seconds greater than 0."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ArgumentError(
            f"{what} expects a positive number of seconds between checks (e.g. {what} 10 or "
            f"0.5), got {value!r}. Fix: pass a number greater than 0."
        )
    return float(value)


def timeout_value(value: Any, *, what: str = "--wait.timeout") -> float | None:
    """Validate a timeout: ``None`` (wait forever) or a number of seconds, 0 or more."""
    if value is None:
        return None
    if not _is_number(value) or math.isnan(value) or value < 0:
        raise ArgumentError(
            f"{what} expects the number of seconds after which to give up (e.g. {what} 3600; "
            f"0 means check once and give up at once), got {value!r}. Fix: pass a number of "
            "seconds that is 0 or more, or leave the flag out to wait without a limit."
        )
    return None if math.isinf(value) else float(value)


def verbose_value(value: Any, *, what: str = "--wait.verbose") -> bool:
    """Validate a verbosity flag: True/False (also 'yes'/'no', 'on'/'off', 1/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ArgumentError(f"{what} expects True or False (also yes/no, on/off, 1/0), got {value!r}.")


def format_duration(seconds: float) -> str:
    """``'0.05s'``, ``'4.2s'``, ``'10s'``, ``'12m 04s'``, ``'3h 05m'``."""
    if seconds < 1:
        return f"{seconds:.2g}s"
    if seconds < 60:
        return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _default_say(message: str) -> None:
    print(message, flush=True)


def _default_warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _preemption_requested() -> BaseException | None:
    """A :class:`speedrun.Preempted` to raise if a preemption signal arrived, else None.

    After ``auto_setup`` speedrun catches SIGTERM and SIGUSR1 (what SLURM sends before it stops
    or requeues a job) and only raises a flag, to checkpoint at the next step. A waiting run has
    no step to reach: it must leave at once, with the requeue exit status, or the scheduler's
    grace period ends in a SIGKILL.
    """
    from speedrun import PREEMPTION_EXIT_CODE, Preempted
    from speedrun.ext import preemption_requested, preemption_signal

    if not preemption_requested():
        return None
    number = preemption_signal()
    try:
        cause = f"signal {signal.Signals(number).name}" if number is not None else "a request"
    except ValueError:  # pragma: no cover - an unnamed signal number
        cause = f"signal {number}"
    return Preempted(
        message=(
            f"preemption requested by {cause} before the run started; nothing to save. Exiting "
            f"with status {PREEMPTION_EXIT_CODE} so the job can be requeued."
        )
    )


def _sleep_unless_preempted(seconds: float) -> BaseException | None:
    """Sleep ``seconds`` in short slices; stop early and return the exception on preemption."""
    end = time.monotonic() + seconds
    while True:
        preempted = _preemption_requested()
        if preempted is not None:
            return preempted
        left = end - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(left, _SLICE_SECONDS))


def _listing(parts: Iterable[str]) -> str:
    return ", ".join(parts)


def wait_for_targets(
    targets: Sequence[ProcessTarget | DirectoryTarget],
    memory: MemoryTarget | None = None,
    *,
    check_interval: float = 1.0,
    timeout: float | None = None,
    verbose: bool = True,
    say: Callable[[str], Any] | None = None,
    warn: Callable[[str], Any] | None = None,
    timeout_hint: str = "",
) -> float:
    """Block until every target has finished and ``memory`` (if any) is available.

    Prints (through ``say``, only when ``verbose``) one line when the wait starts, one when a
    target finishes while others are still pending, and one when the wait ends. A give-up or an
    interruption is always reported, through ``warn``.

    Returns
    -------
    float
        Seconds spent waiting (0.0 when nothing was pending).

    Raises
    ------
    WaitTimeout
        When ``timeout`` seconds passed and something is still pending.
    KeyboardInterrupt
        On Ctrl-C, after a one-line message; raised afresh from the waiter so the traceback
        does not run through the sleeps inside it.
    speedrun.Preempted
        When speedrun's preemption handlers (installed by ``auto_setup``) caught SIGTERM or
        SIGUSR1 before or during the wait: nothing has started, so the run exits at once with
        the requeue status (75) instead of waiting into the scheduler's SIGKILL.
    """
    say = say or _default_say
    warn = warn or _default_warn
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    pending: list[ProcessTarget | DirectoryTarget] = []
    memory_ok = True

    def blocking() -> list[str]:
        parts = [target.label for target in pending]
        if memory is not None and not memory_ok:
            parts.append(memory.status())
        return parts

    try:
        preempted = _preemption_requested()
        if preempted is not None:
            warn(f"{PREFIX}Not waiting: {preempted}")
            raise preempted
        pending = [target for target in targets if not target.finished()]
        memory_ok = memory is None or memory.satisfied()
        if not pending and memory_ok:
            if verbose:
                done = [f"{target.label} is not running" for target in targets]
                if memory is not None:
                    done.append(
                        f"{format_bytes(memory.available())} of RAM available (asked "
                        f"for {format_bytes(memory.required)})"
                    )
                say(f"{PREFIX}Nothing to wait for: {_listing(done) or 'no targets given'}.")
            return 0.0
        if verbose:
            already = [target.label for target in targets if target not in pending]
            extra = f" ({_listing(already)}: not running)" if already else ""
            limit = f", giving up after {format_duration(timeout)}" if timeout is not None else ""
            say(
                f"{PREFIX}Waiting for {_listing(blocking())}{extra}. Checking every "
                f"{format_duration(check_interval)}{limit}. (My PID is {os.getpid()}.)"
            )
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                waited = now - start
                still = blocking()
                message = (
                    f"{PREFIX}Gave up waiting after {format_duration(waited)}{timeout_hint}: still "
                    f"waiting for {_listing(still)}. Not starting (exit status "
                    f"{WAIT_TIMEOUT_EXIT_CODE})."
                )
                warn(message)
                raise WaitTimeout(message[len(PREFIX) :], pending=tuple(still), waited=waited)
            pause = check_interval if deadline is None else min(check_interval, deadline - now)
            preempted = _sleep_unless_preempted(pause)
            if preempted is not None:
                waited = time.monotonic() - start
                warn(
                    f"{PREFIX}Stopped after {format_duration(waited)} while waiting for "
                    f"{_listing(blocking())}: {preempted}"
                )
                raise preempted
            finished_now = [target for target in pending if target.finished()]
            pending = [target for target in pending if target not in finished_now]
            memory_ok = memory is None or memory.satisfied()
            elapsed = format_duration(time.monotonic() - start)
            if not pending and memory_ok:
                if verbose:
                    say(f"{PREFIX}Done waiting after {elapsed}. It's showtime!")
                return time.monotonic() - start
            if verbose and finished_now:
                names = _listing(
                    f"{target.label} {target.done_phrase()}" for target in finished_now
                )
                say(f"{PREFIX}{names} after {elapsed}; still waiting for {_listing(blocking())}.")
    except KeyboardInterrupt:
        waited = time.monotonic() - start
        what = _listing(blocking()) or "the targets"
        message = (
            f"{PREFIX}Interrupted after {format_duration(waited)} while waiting for "
            f"{what}; not starting."
        )
        warn(message)
        raise KeyboardInterrupt(message[len(PREFIX) :]) from None


def wait_for(
    pids_or_runs: Any = None,
    *,
    memory: Any = None,
    check_interval: float = 1.0,
    timeout: float | None = None,
    verbose: bool = True,
    say: Callable[[str], Any] | None = None,
    warn: Callable[[str], Any] | None = None,
) -> float:
    """Block until processes and experiment runs have finished and enough RAM is available.

    The function behind :meth:`WaiterMixin.wait`, usable without an experiment.

    Parameters
    ----------
    pids_or_runs : int, str, path, or a list of those, optional
        PIDs (``12345``) and experiment directories (``"experiments/RUN-0"``: waits until the
        run holding its writer lock ends, crashes or is killed).
    memory : str, optional
        Wait until this much RAM is available, e.g. ``"8GB"`` or ``"512MiB"`` (B, KB, MB, GB, TB,
        KiB, MiB, GiB, TiB; case-insensitive).
    check_interval : float
        Seconds between checks.
    timeout : float, optional
        Give up after this many seconds by raising :class:`WaitTimeout`.
    verbose : bool
        Print one line when the wait starts, when a target finishes and when it ends.
    say, warn : callable, optional
        Where progress lines and error lines go (default: ``print`` to stdout and stderr).

    Returns
    -------
    float
        Seconds spent waiting (0.0 when nothing was pending).
    """
    interval = check_interval_value(check_interval, what="check_interval")
    limit = timeout_value(timeout, what="timeout")
    loud = verbose_value(verbose, what="verbose")
    targets = parse_wait_for(pids_or_runs, what="pids_or_runs")
    memory_target = None if memory is None else MemoryTarget(memory, what="memory")
    return wait_for_targets(
        targets,
        memory_target,
        check_interval=interval,
        timeout=limit,
        verbose=loud,
        say=say,
        warn=warn,
    )
