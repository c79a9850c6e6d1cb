"""What a wait can wait for: processes, experiment runs (their writer lock) and free memory.

``--wait.for`` accepts a PID, several PIDs and experiment directories; :func:`parse_wait_for`
turns such a value into targets. Process and run targets are *sticky*: once finished they stay
finished (a run that is restarted later does not make us wait again). The memory target is
re-checked on every poll, because free memory comes and goes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from speedrun import ArgumentError, ExperimentDirectoryError

from ._memory import available_memory, format_bytes, parse_memory_size, total_memory
from ._process import check_pid, describe_process, is_alive, process_create_time

__all__ = [
    "DirectoryTarget",
    "MemoryTarget",
    "ProcessTarget",
    "Target",
    "parse_wait_for",
]

_ACCEPTED_FOR = (
    'a process ID (--wait.for 12345), several PIDs (--wait.for "[123, 456]"), an experiment '
    "directory (--wait.for experiments/RUN-0), or a list mixing both "
    "(--wait.for \"[123, 'experiments/RUN-0']\")"
)


class Target(Protocol):
    """Something a wait is blocked on until :meth:`finished` returns True (sticky)."""

    label: str

    def finished(self) -> bool:
        """Whether this target no longer blocks the wait."""

    def done_phrase(self) -> str:
        """How to say it ended: ``'finished'``, ``'released its lock'``."""


class ProcessTarget:
    """A process, identified by PID and creation time (so a reused PID is not mistaken for it).

    Parameters
    ----------
    pid : int
        The process ID.
    create_time : float, optional
        The creation time of the process we mean. By default, the creation time of the process
        that has ``pid`` right now; if none does (or it is a zombie), the target is finished.
    """

    def __init__(self, pid: int, create_time: float | None = None) -> None:
        self.pid = check_pid(pid)
        if create_time is None:
            create_time = process_create_time(self.pid)
            self._finished = create_time is None
        else:
            self._finished = not is_alive(self.pid, create_time)
        self.create_time = create_time
        self.label = describe_process(self.pid) if not self._finished else f"PID {self.pid}"

    def finished(self) -> bool:
        if not self._finished:
            self._finished = not is_alive(self.pid, self.create_time)
        return self._finished

    def done_phrase(self) -> str:
        return "finished"

    def __repr__(self) -> str:
        return f"ProcessTarget(pid={self.pid}, create_time={self.create_time!r})"


def _looks_like_experiment_directory(path: Path) -> bool:
    """A run's directory, by core's one rule (``speedrun.ext.is_run_directory``)."""
    from speedrun.ext import is_run_directory

    return is_run_directory(path)


class DirectoryTarget:
    """An experiment run, identified by its directory: finished once its writer lock is free.

    The lock (``<directory>/.speedrun.lock``) is held by the live run and released by the kernel
    when that run ends, crashes or is killed, so this cannot miss a crash.

    Raises
    ------
    ExperimentDirectoryError
        If ``directory`` does not exist, is not a folder, or is not an experiment directory.
    ArgumentError
        If the run holding the lock is this very process (waiting would never end).
    """

    def __init__(self, directory: str | os.PathLike[str], *, what: str = "--wait.for") -> None:
        from speedrun.ext import read_lock_holder

        path = Path(os.path.expanduser(os.fspath(directory)))
        self.directory = path
        if not path.exists():
            raise ExperimentDirectoryError(
                f"{what} got {os.fspath(directory)!r}, which is neither a process ID nor an "
                f"existing directory. Expected {_ACCEPTED_FOR}. Fix: check the path (relative "
                f"paths are resolved from {os.getcwd()})."
            )
        if not path.is_dir():
            raise ExperimentDirectoryError(
                f"{what} got {os.fspath(directory)!r}, which is a file, not an experiment "
                f"directory. Expected {_ACCEPTED_FOR}."
            )
        if not _looks_like_experiment_directory(path):
            raise ExperimentDirectoryError(
                f"{what} got {os.fspath(directory)!r}, which is a directory but not a "
                "speedrun experiment directory (it has no .speedrun marker and no "
                f"Configurations/train_config.yml). Expected {_ACCEPTED_FOR}. Fix: pass the "
                "directory the run you want to wait for was started with."
            )
        holder = read_lock_holder(path)
        if (
            holder is not None
            and holder.get("pid") == os.getpid()
            and holder.get("host") == socket.gethostname()
        ):
            raise ArgumentError(
                f"{what} got {os.fspath(directory)!r}, the experiment directory of this very "
                "run: waiting for it to finish would never end. Fix: pass the directory of "
                "another run."
            )
        self._finished = holder is None
        self.label = os.fspath(directory)
        if holder:
            pid, host = holder.get("pid"), holder.get("host")
            where = f" on {host}" if host and host != socket.gethostname() else ""
            if pid is not None:
                self.label += f" (run PID {pid}{where})"

    def finished(self) -> bool:
        if not self._finished:
            from speedrun.ext import is_locked

            self._finished = not is_locked(self.directory)
        return self._finished

    def done_phrase(self) -> str:
        return "finished (its lock is free)"

    def __repr__(self) -> str:
        return f"DirectoryTarget({os.fspath(self.directory)!r})"


class MemoryTarget:
    """Enough available RAM (``psutil.virtual_memory().available``); re-checked on every poll.

    Raises
    ------
    ArgumentError
        If the amount is malformed, or larger than this machine's total RAM (it could never
        become available).
    """

    def __init__(self, amount: Any, *, what: str = "--wait.memory") -> None:
        self.required = parse_memory_size(amount, what=what)
        total = total_memory()
        if self.required > total:
            raise ArgumentError(
                f"{what} asks for {amount!r} ({format_bytes(self.required)}), but this "
                f"machine only has {format_bytes(total)} of RAM in total, so the wait could never "
                "end. Fix: ask for less, or run on a larger machine."
            )
        self.label = f"{format_bytes(self.required)} of available RAM"

    def available(self) -> int:
        """Bytes available right now."""
        return available_memory()

    def satisfied(self) -> bool:
        """Whether the required amount is available right now (not sticky)."""
        return self.available() >= self.required

    def status(self) -> str:
        """``'8.0 GB of available RAM (now 3.1 GB)'``."""
        return f"{self.label} (now {format_bytes(self.available())})"

    def __repr__(self) -> str:
        return f"MemoryTarget(required={self.required})"


def _is_pid_text(text: str) -> bool:
    return text.strip().isdigit()


def _one_target(item: Any, *, what: str) -> ProcessTarget | DirectoryTarget:
    if isinstance(item, bool):
        raise ArgumentError(
            f"{what} got {item!r}, a boolean (did you write --wait.for without a value?). "
            f"Expected {_ACCEPTED_FOR}."
        )
    if isinstance(item, int):
        check_pid(item, what=what)
        if item == os.getpid():
            raise ArgumentError(
                f"{what} got {item}, the PID of this very process: waiting for it would never "
                "end. Fix: pass the PID of the run to wait for."
            )
        return ProcessTarget(item)
    if isinstance(item, os.PathLike):
        return DirectoryTarget(item, what=what)
    if isinstance(item, str):
        if _is_pid_text(item) and not os.path.isdir(item):
            return _one_target(int(item), what=what)
        if not item.strip():
            raise ArgumentError(f"{what} got an empty string. Expected {_ACCEPTED_FOR}.")
        if not os.path.exists(os.path.expanduser(item)):
            hint = ""
            words = item.replace(",", " ").split()
            if len(words) > 1 and all(_is_pid_text(word) for word in words):
                hint = f' For several PIDs, write a list: --wait.for "[{", ".join(words)}]".'
            raise ArgumentError(
                f"{what} got {item!r}, which is neither a process ID nor an existing directory. "
                f"Expected {_ACCEPTED_FOR}.{hint}"
            )
        return DirectoryTarget(item, what=what)
    raise ArgumentError(f"{what} got {item!r} ({type(item).__name__}). Expected {_ACCEPTED_FOR}.")


def parse_wait_for(
    value: Any, *, what: str = "--wait.for"
) -> list[ProcessTarget | DirectoryTarget]:
    """Turn a ``--wait.for`` value into targets.

    Parameters
    ----------
    value : int, str, path, or a list/tuple/set of those
        Integers are PIDs; strings and paths are experiment directories (a string of digits is a
        PID unless a directory of that name exists; write ``./123`` to force the directory).

    Returns
    -------
    list
        One target per distinct PID or directory, in the order given.

    Raises
    ------
    ArgumentError, ExperimentDirectoryError
        For anything else, with a message listing what is accepted.
    """
    if value is None:
        return []
    items: Iterable[Any]
    is_list = isinstance(value, (list, tuple, set, frozenset))
    if is_list:
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
    else:
        items = [value]
    targets: list[ProcessTarget | DirectoryTarget] = []
    seen: set[Any] = set()
    for item in items:
        if is_list and isinstance(item, (list, tuple, set, frozenset, dict)):
            raise ArgumentError(
                f"{what} got the nested value {item!r} inside {value!r}. Expected {_ACCEPTED_FOR}."
            )
        target = _one_target(item, what=what)
        key: Any = (
            ("pid", target.pid)
            if isinstance(target, ProcessTarget)
            else ("dir", os.path.realpath(target.directory))
        )
        if key not in seen:
            seen.add(key)
            targets.append(target)
    return targets
