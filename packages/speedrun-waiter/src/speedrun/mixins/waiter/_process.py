"""Process liveness that survives zombies and PID reuse.

A process is identified by its PID *and* its creation time: once the process we wait for has
ended, the kernel may hand its PID to an unrelated process, which has a different creation time.
A zombie (a process that exited but was not yet reaped by its parent) counts as finished.
"""

from __future__ import annotations

import math
import os
from typing import Any

from speedrun import ArgumentError

from ._lazy import import_psutil

__all__ = ["check_pid", "describe_process", "is_alive", "process_create_time"]

# psutil reports creation times with the platform's clock-tick resolution (10 ms on Linux) and
# computes them the same way on every call, so equal processes compare equal to the last bit.
# The tolerance only absorbs rounding in a creation time that went through a log or a config.
_CREATE_TIME_TOLERANCE = 1e-3


def check_pid(pid: Any, *, what: str = "pid") -> int:
    """Return ``pid`` as an ``int`` if it is a valid process ID, else raise ArgumentError."""
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise ArgumentError(
            f"{what} expects a process ID (a positive integer such as 12345), got {pid!r} "
            f"({type(pid).__name__})."
        )
    if pid <= 0:
        raise ArgumentError(
            f"{what} expects a process ID (a positive integer such as 12345), got {pid}: "
            f"PIDs 0 and below name process groups or the kernel, not a run to wait for."
        )
    return pid


def process_create_time(pid: int) -> float | None:
    """Creation time (seconds since the epoch) of the live process ``pid``.

    Returns ``None`` if there is no such process or it is a zombie (it already finished), and
    ``nan`` if the process exists but the system hides its details from us (then PID reuse
    cannot be detected for it, and :func:`is_alive` falls back to "the PID exists").
    """
    psutil = import_psutil()
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except psutil.NoSuchProcess:  # includes psutil.ZombieProcess
        return None
    except psutil.AccessDenied:
        # It exists, but the system hides its details from us (e.g. /proc mounted hidepid).
        return None if not psutil.pid_exists(pid) else math.nan


def is_alive(pid: int, create_time: float | None = None) -> bool:
    """Whether the process ``pid`` is still running.

    Parameters
    ----------
    pid : int
        The process ID.
    create_time : float, optional
        The creation time the process had when we started watching it (see
        :func:`process_create_time`). If given and the process now holding ``pid`` was created at
        a different time, the original process has ended and its PID was reused: not alive.

    Returns
    -------
    bool
        ``False`` if no process has this PID, if it is a zombie (exited but not yet reaped), or if
        the PID now belongs to a different process; ``True`` otherwise.
    """
    check_pid(pid)
    psutil = import_psutil()
    try:
        process = psutil.Process(pid)
        if create_time is not None and not math.isnan(create_time):
            if not math.isclose(
                process.create_time(), create_time, rel_tol=0.0, abs_tol=_CREATE_TIME_TOLERANCE
            ):
                return False
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:  # includes psutil.ZombieProcess
        return False
    except psutil.AccessDenied:
        return bool(psutil.pid_exists(pid))


def describe_process(pid: int, *, width: int = 60) -> str:
    """``'PID 123 (python train.py RUN-0)'``: the PID and, when readable, its command line."""
    psutil = import_psutil()
    command = ""
    try:
        process = psutil.Process(pid)
        try:
            parts = process.cmdline()
        except (psutil.AccessDenied, psutil.ZombieProcess):
            parts = []
        if parts:
            parts = [os.path.basename(parts[0]), *parts[1:]]
            command = " ".join(parts)
        else:
            command = process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    if len(command) > width:
        command = command[: width - 3] + "..."
    return f"PID {pid} ({command})" if command else f"PID {pid}"
