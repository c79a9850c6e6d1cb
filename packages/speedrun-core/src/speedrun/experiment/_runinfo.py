"""The run record: how a run was started and how it ended, next to its configuration.

``auto_setup()`` writes ``Configurations/run.json`` in the experiment directory: the command
line, the ``--inherit`` parent and ``--macro`` files, the git revision, branch and dirty flag
(with the uncommitted changes in ``Configurations/git_diff.patch``), the Python and speedrun
versions, the host, the experiment's class and the config keys it declares (``config_keys``:
path, default, accepted kinds, declaring class and doc of each, so ``speedrun show`` lists them
without importing the experiment), the start time and, when the run ends, the end time and
status:

``finished``
    ``run()`` returned (or the script ended normally).
``crashed``
    an exception ended the run; the record names its type.
``preempted``
    the run saved a checkpoint on SIGTERM/SIGUSR1 and exited with status 75.
``interrupted``
    Ctrl-C (``KeyboardInterrupt``) ended the run; exit status 130.
``killed``
    never written: a record that still says ``running`` while nobody holds the directory's
    writer lock belongs to a process that died without writing its end (``kill -9``, OOM
    killer, node failure).

A resumed run becomes a new *attempt*: the record of the earlier attempts moves into
``history``; the ``--config`` overrides given with ``--resume`` that changed a value are kept
as ``resume_overrides`` (objects restored from the checkpoint may not follow them). A launch
that opens an existing run to call another method than its training one (``--resume
--dispatch evaluate``) is an *evaluation*: it is appended to ``evaluations`` with its own
command, status and times, and the run's own status, command and config stay as they were.
Only the main process of a multi-process run writes. Writes are atomic (temp file and rename)
but not fsynced: losing the record to a power cut costs a status, never data, and the run then
shows as killed, which it was.

This module is imported by ``auto_setup()`` and by the ``speedrun`` command, never by
``import speedrun``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from .._errors import ExperimentDirectoryError
from ..directory._fs import atomic_write_text, keep_previous_version
from ._provenance import (
    git_diff,
    host_name,
    python_version,
    recent_git_state,
    speedrun_distributions,
)
from ._runstatus import (
    PATCH_NAME,
    RECORD_FORMAT,
    RECORD_NAME,
    RECORD_VERSION,
    last_activity,
    latest_valid_checkpoint,
    read_run_record,
    record_path,
    resolve_status,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config._arguments import SetupRequest

__all__ = [
    "PATCH_NAME",
    "RECORD_NAME",
    "RunRecord",
    "classify_exit",
    "describe_exception",
    "last_activity",
    "latest_valid_checkpoint",
    "read_run_record",
    "record_path",
    "resolve_status",
    "start_run_record",
]

_MAX_PATCH_BYTES = 20 * 1024 * 1024
_MAX_MESSAGE = 500
# Fields of an earlier attempt kept in the record's history when a run is resumed.
_HISTORY_FIELDS = (
    "attempt",
    "status",
    "exception",
    "message",
    "exit_code",
    "started",
    "started_at",
    "ended",
    "ended_at",
    "final_step",
    "host",
    "pid",
    "git",
    "command",
    "resume_overrides",
)


def _is_main_process() -> bool:
    """Whether this process writes the record (rank 0 of a torchrun or SLURM job)."""
    from ..distributed._ranks import is_main_process

    return is_main_process()


def _now() -> tuple[str, float]:
    from datetime import datetime

    moment = datetime.now().astimezone()
    return moment.isoformat(timespec="seconds"), moment.timestamp()


def describe_exception(error: BaseException) -> str:
    """``ValueError`` for builtins, ``module.QualName`` for the others."""
    kind = type(error)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _short_message(error: BaseException) -> str | None:
    try:
        text = str(error).strip()
    except Exception:
        return None
    if not text:
        return None
    first = text.splitlines()[0]
    return first if len(first) <= _MAX_MESSAGE else first[: _MAX_MESSAGE - 3] + "..."


def classify_exit(error: BaseException | None) -> tuple[str, int | None]:
    """``(status, exit_code)`` of a run that ended with ``error`` (None: returned normally)."""
    from ..distributed._preemption import PREEMPTION_EXIT_CODE, Preempted

    if error is None:
        return "finished", 0
    if isinstance(error, Preempted):
        return "preempted", PREEMPTION_EXIT_CODE
    if isinstance(error, SystemExit):
        code = error.code
        if code is None or code == 0:
            return "finished", 0
        if code == PREEMPTION_EXIT_CODE:
            return "preempted", PREEMPTION_EXIT_CODE
        return "crashed", code if isinstance(code, int) else 1
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", 130
    return "crashed", 1


class RunRecord:
    """The run record of one attempt (or one evaluation) of a run, as this process writes it.

    Created by :func:`start_run_record`; :meth:`finish` writes the end (once). If the process
    exits without :meth:`finish` (the script never called ``run()``), an ``atexit`` handler
    writes it: ``crashed`` after an uncaught exception, ``preempted`` after a preemption
    request, else ``finished``. ``entry`` is the part of ``data`` this launch owns: ``data``
    itself for an attempt, its entry in ``data['evaluations']`` for an evaluation.
    """

    def __init__(
        self, directory: str, data: dict[str, Any], entry: dict[str, Any] | None = None
    ) -> None:
        self.directory = directory
        self.data = data
        self.entry = data if entry is None else entry
        self.finished = False
        self._ambient: BaseException | None = None
        self._step: Any = None

    @property
    def path(self) -> str:
        """The record file, ``<directory>/Configurations/run.json``."""
        return record_path(self.directory)

    def write(self) -> None:
        """Write the record (atomic, not fsynced: see the module docstring)."""
        text = json.dumps(self.data, indent=2, ensure_ascii=False, default=str) + "\n"
        atomic_write_text(self.path, text, durable=False)

    def enter_run(self) -> None:
        """Note the exception being handled when ``run()`` starts (it is not the run's own)."""
        self._ambient = sys.exc_info()[1]

    def finish_run(self, error: BaseException | None, step: int | None = None) -> None:
        """Write the end of a ``run()`` that ended with ``error`` (``sys.exc_info()[1]``)."""
        if error is self._ambient:
            error = None
        self.finish(*classify_exit(error), error=error, step=step)

    def finish(
        self,
        status: str,
        exit_code: int | None = None,
        *,
        error: BaseException | None = None,
        step: int | None = None,
    ) -> None:
        """Write the end time and ``status``; later calls do nothing."""
        if self.finished:
            return
        self.finished = True
        import atexit

        atexit.unregister(self._at_exit)
        stamp, moment = _now()
        self.entry.update(
            status=status,
            exit_code=exit_code,
            ended=stamp,
            ended_at=moment,
            exception=describe_exception(error) if status == "crashed" and error else None,
            message=_short_message(error) if status != "finished" and error else None,
        )
        if step is None and self._step is not None:
            step = self._step()
        if step is not None:
            self.entry["final_step"] = step
        try:
            self.write()
        except OSError as failure:
            import warnings

            warnings.warn(
                f"speedrun could not write the end of the run record {self.path}: {failure}",
                RuntimeWarning,
                stacklevel=2,
            )

    def _still_ours(self) -> bool:
        """Whether the record on disk still holds this launch's entry (no later run took over)."""
        try:
            current = read_run_record(self.directory)
        except ExperimentDirectoryError:
            return False
        if current is None:
            return False
        entries = [current] if self.entry is self.data else current.get("evaluations") or []
        return any(
            isinstance(entry, dict)
            and entry.get("pid") == self.entry.get("pid")
            and entry.get("started_at") == self.entry.get("started_at")
            for entry in entries
        )

    def _at_exit(self) -> None:
        # The experiment may be long gone (and its lock with it): write only over our own record.
        if self.finished or not self._still_ours():
            self.finished = True
            return
        error = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
        if error is not None:
            self.finish(*classify_exit(error), error=error)
            return
        from ..distributed import _preemption

        if _preemption.requested():
            self.finish("preempted", _preemption.PREEMPTION_EXIT_CODE)
        else:
            self.finish("finished", 0)


def _previous_attempts(directory: str, old: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The history of a new attempt: the old record's history plus the old attempt itself."""
    if not old:
        return []
    history = [entry for entry in old.get("history") or [] if isinstance(entry, dict)]
    summary = {key: old.get(key) for key in _HISTORY_FIELDS if key in old}
    if summary.get("status") == "running":
        # This process holds the writer lock now, so the earlier process is gone; it was last
        # seen writing a checkpoint or a log.
        summary["status"] = "killed"
        summary["last_activity_at"] = last_activity(directory)
    history.append(summary)
    return history


def _backup(directory: str, name: str) -> str | None:
    """Move ``Configurations/<name>`` to ``Configurations/previous/``; its new relative path."""
    folder = os.path.join(directory, "Configurations")
    moved = keep_previous_version(os.path.join(folder, name))
    return None if moved is None else os.path.relpath(moved, folder)


def _write_patch(directory: str, patch: str | None, history: list[dict[str, Any]]) -> Any:
    """Keep this attempt's patch as ``git_diff.patch``; an earlier one moves to ``previous/``."""
    path = os.path.join(directory, "Configurations", PATCH_NAME)
    data = patch.encode("utf-8", errors="surrogateescape") if patch else None
    try:
        with open(path, "rb") as handle:
            existing: bytes | None = handle.read()
    except OSError:
        existing = None
    if existing is not None and existing != data:
        moved = _backup(directory, PATCH_NAME)
        for entry in reversed(history):
            git = entry.get("git")
            if isinstance(git, dict) and git.get("patch") == PATCH_NAME:
                git["patch"] = moved
                break
    if data is None:
        return None
    if len(data) > _MAX_PATCH_BYTES:
        return {
            "skipped": f"the uncommitted changes are {len(data)} bytes, more than the "
            f"{_MAX_PATCH_BYTES} kept"
        }
    if existing != data:
        from ..directory._fs import atomic_write_bytes

        atomic_write_bytes(path, data, durable=False)
    return PATCH_NAME


def _command(argv: list[str]) -> dict[str, Any]:
    return {
        "argv": argv,
        "orig_argv": list(getattr(sys, "orig_argv", [sys.executable, *argv])),
        "executable": sys.executable,
        "cwd": os.getcwd(),
    }


def _register(record: RunRecord, current_step: Callable[[], int | None]) -> RunRecord:
    import atexit

    record._step = current_step
    atexit.register(record._at_exit)
    return record


def _start_evaluation(
    directory: str,
    old: dict[str, Any],
    request: SetupRequest,
    current_step: Callable[[], int | None],
) -> RunRecord | None:
    """Append this launch to ``old['evaluations']``; the rest of the record stays as it is."""
    started, started_at = _now()
    state = recent_git_state()
    entry: dict[str, Any] = {
        "method": request.dispatch,
        "status": "running",
        "exception": None,
        "message": None,
        "exit_code": None,
        "started": started,
        "started_at": started_at,
        "ended": None,
        "ended_at": None,
        "final_step": None,
        "overrides": {path: value for path, value in request.overrides},
        "command": _command(list(request.argv)),
        "git": {"revision": state.revision, "branch": state.branch, "dirty": state.dirty},
        "host": host_name(),
        "pid": os.getpid(),
    }
    evaluations = old.get("evaluations")
    if not isinstance(evaluations, list):
        evaluations = old["evaluations"] = []
    evaluations.append(entry)
    record = RunRecord(directory, old, entry)
    try:
        record.write()
    except OSError as failure:
        import warnings

        warnings.warn(
            f"speedrun could not write the run record {record.path}: {failure}.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return _register(record, current_step)


def start_run_record(
    directory: str,
    *,
    experiment_class: str,
    request: SetupRequest,
    current_step: Callable[[], int | None],
    resume_overrides: dict[str, Any] | None = None,
    evaluation: bool = False,
    config_keys: list[dict[str, Any]] | None = None,
) -> RunRecord | None:
    """Write the start of a run to ``<directory>/Configurations/run.json``.

    Called by ``auto_setup()`` once the configuration is dumped and the writer lock is held,
    with the experiment's class path, its command line as a
    :class:`~speedrun.config._arguments.SetupRequest`, a function that tells its current step
    (the record's end says where the run stopped), the overrides given with ``--resume`` that
    changed a value, whether this launch is an evaluation of the run (see the module
    docstring), and the declared config keys as plain data
    (:func:`~speedrun.experiment._contract.recorded_keys`; None: not recorded). An attempt
    records the keys of its own start; an evaluation leaves the record's as they are. Returns
    None in processes other than the main one, which write nothing. A record that cannot be
    written costs a warning, not the run.
    """
    if not _is_main_process():
        return None
    directory = os.path.abspath(directory)
    argv = list(request.argv)
    inherit, macro, resume = request.inherit, request.macros, request.resume

    try:
        old = read_run_record(directory)
    except ExperimentDirectoryError:  # unreadable: kept under previous/, not overwritten
        old = None
        try:
            _backup(directory, RECORD_NAME)
        except OSError:
            pass
    if evaluation and old:
        return _start_evaluation(directory, old, request, current_step)
    history = _previous_attempts(directory, old)
    started, started_at = _now()
    state = recent_git_state()
    git: dict[str, Any] = {
        "revision": state.revision,
        "branch": state.branch,
        "dirty": state.dirty,
        "patch": None,
    }
    data: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "version": RECORD_VERSION,
        "status": "running",
        "exception": None,
        "message": None,
        "exit_code": None,
        "started": started,
        "started_at": started_at,
        "ended": None,
        "ended_at": None,
        "attempt": len(history) + 1,
        "resumed": resume,
        "resume_overrides": dict(resume_overrides or {}),
        "final_step": None,
        "experiment_class": experiment_class,
        "config_keys": config_keys,
        "command": _command(argv),
        # A resumed (or re-run) directory keeps the parent its configuration came from.
        "inherit": _describe_inherit(inherit)
        if inherit is not None or not old
        else old.get("inherit"),
        "macros": _macro_paths(macro),
        "git": git,
        "python": python_version(),
        "speedrun": speedrun_distributions(),
        "host": host_name(),
        "pid": os.getpid(),
        "user": os.environ.get("USER") or os.environ.get("USERNAME"),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "history": history,
        "evaluations": (old or {}).get("evaluations") or [],
    }
    record = RunRecord(directory, data)
    try:
        patch = git_diff(revision=state.revision) if state.dirty else None
        git["patch"] = _write_patch(directory, patch, history)
        record.write()
    except OSError as failure:
        import warnings

        warnings.warn(
            f"speedrun could not write the run record {record.path}: {failure}. "
            "The run goes on; `speedrun ls` will not know how it was started.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return _register(record, current_step)


def _macro_paths(spec: str | None) -> list[str]:
    if not spec:
        return []
    from ..config._macro import _split_spec

    return [os.path.abspath(os.path.expanduser(path)) for path in _split_spec(spec)]


def _describe_inherit(inherit: str | None) -> dict[str, Any] | None:
    if inherit is None:
        return None
    from ..directory._layout import CONFIG_FILE_NAME, inherit_source

    try:
        source: str | None = os.path.abspath(inherit_source(inherit, CONFIG_FILE_NAME))
    except Exception:
        source = None
    path = os.path.abspath(inherit)
    return {
        "argument": inherit,
        "path": path,
        "config_file": source,
        "kind": "file" if os.path.isfile(path) else "directory",
    }
