"""The run record: how a run was started and how it ended, next to its configuration.

``auto_setup()`` writes ``Configurations/run.json`` in the experiment directory: the command
line, the ``--inherit`` parent and ``--macro`` files, the git revision, branch and dirty flag
(with the uncommitted changes in ``Configurations/git_diff.patch``), the Python and speedrun
versions, the host, the start time and, when the run ends, the end time and status:

``finished``
    ``run()`` returned (or the script ended normally).
``crashed``
    an exception ended the run; the record names its type.
``preempted``
    the run saved a checkpoint on SIGTERM/SIGUSR1 and exited with status 75.
``killed``
    never written: a record that still says ``running`` while nobody holds the directory's
    writer lock belongs to a process that died without writing its end (``kill -9``, OOM
    killer, node failure).

A resumed run becomes a new *attempt*: the record of the earlier attempts moves into
``history``. Only the main process of a multi-process run writes. Writes are atomic (temp
file and rename) but not fsynced: losing the record to a power cut costs a status, never data,
and the run then shows as killed, which it was.

This module is imported by ``auto_setup()`` and by the ``speedrun`` command, never by
``import speedrun``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from .._errors import ExperimentDirectoryError
from ..checkpoint._files import list_checkpoints
from ..directory._fs import atomic_write_text, keep_previous_version
from ..directory._lock import is_locked
from ._provenance import (
    git_diff,
    host_name,
    python_version,
    recent_git_state,
    speedrun_distributions,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config._arguments import Arguments

__all__ = [
    "PATCH_NAME",
    "RECORD_NAME",
    "RunRecord",
    "describe_exception",
    "last_activity",
    "latest_valid_checkpoint",
    "read_run_record",
    "record_path",
    "resolve_status",
    "start_run_record",
]

RECORD_NAME = "run.json"
"""The run record's file name, in the experiment's ``Configurations/`` folder."""

PATCH_NAME = "git_diff.patch"
"""The uncommitted changes of the code at start, next to the run record."""

RECORD_FORMAT = "speedrun-run-record"
RECORD_VERSION = 1
_MAX_PATCH_BYTES = 20 * 1024 * 1024
_MAX_MESSAGE = 500
# Fields of an earlier attempt kept in the record's history when a run is resumed.
_HISTORY_FIELDS = ("attempt", "status", "exception", "message", "exit_code", "started",
                   "started_at", "ended", "ended_at", "final_step", "host", "pid", "git",
                   "command")


def _is_main_process() -> bool:
    """Whether this process writes the record (rank 0 of a torchrun or SLURM job)."""
    from ..distributed._ranks import is_main_process

    return is_main_process()


def _now() -> tuple[str, float]:
    from datetime import datetime

    moment = datetime.now().astimezone()
    return moment.isoformat(timespec="seconds"), moment.timestamp()


def record_path(directory: str | os.PathLike[str]) -> str:
    """``<directory>/Configurations/run.json``."""
    return os.path.join(os.fspath(directory), "Configurations", RECORD_NAME)


def describe_exception(error: BaseException) -> str:
    """``ValueError`` for builtins, ``module.QualName`` for the others."""
    kind = type(error)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _short_message(error: BaseException) -> str | None:
    try:
        text = str(error).strip()
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the record
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
        return "crashed", 130
    return "crashed", 1


class RunRecord:
    """The run record of one attempt of a run, as this process writes it.

    Created by :func:`start_run_record`; :meth:`finish` writes the end (once). If the process
    exits without :meth:`finish` (the script never called ``run()``), an ``atexit`` handler
    writes it: ``crashed`` after an uncaught exception, ``preempted`` after a preemption
    request, else ``finished``.
    """

    def __init__(self, directory: str, data: dict[str, Any]) -> None:
        self.directory = directory
        self.data = data
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

    def finish(self, status: str, exit_code: int | None = None, *,
               error: BaseException | None = None, step: int | None = None) -> None:
        """Write the end time and ``status``; later calls do nothing."""
        if self.finished:
            return
        self.finished = True
        import atexit

        atexit.unregister(self._at_exit)
        stamp, moment = _now()
        self.data.update(
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
            self.data["final_step"] = step
        try:
            self.write()
        except OSError as failure:
            import warnings

            warnings.warn(f"speedrun could not write the end of the run record {self.path}: "
                          f"{failure}", RuntimeWarning, stacklevel=2)

    def _still_ours(self) -> bool:
        """Whether the record on disk is still this attempt's (no later run took over)."""
        try:
            current = read_run_record(self.directory)
        except ExperimentDirectoryError:
            return False
        return current is not None and current.get("pid") == self.data.get("pid") and \
            current.get("started_at") == self.data.get("started_at")

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
        return {"skipped": f"the uncommitted changes are {len(data)} bytes, more than the "
                           f"{_MAX_PATCH_BYTES} kept"}
    if existing != data:
        from ..directory._fs import atomic_write_bytes

        atomic_write_bytes(path, data, durable=False)
    return PATCH_NAME


def start_run_record(directory: str, *, experiment_class: str, argv: list[str] | None,
                     args: Arguments | None, current_step: Callable[[], int | None]
                     ) -> RunRecord | None:
    """Write the start of a run to ``<directory>/Configurations/run.json``.

    Called by ``auto_setup()`` once the configuration is dumped and the writer lock is held,
    with the experiment's class path, its command line (``argv`` and its parsed ``args``) and a
    function that tells its current step (the record's end says where the run stopped).
    Returns None in processes other than the main one, which write nothing. A record that
    cannot be written costs a warning, not the run.
    """
    if not _is_main_process():
        return None
    directory = os.path.abspath(directory)
    argv = list(argv if argv is not None else sys.argv)
    flags = args.flags if args is not None else {}
    raw_inherit, raw_macro = flags.get("inherit"), flags.get("macro")
    inherit = raw_inherit if isinstance(raw_inherit, str) else None
    macro = raw_macro if isinstance(raw_macro, str) else None
    resume = bool(args.get("resume", False)) if args is not None else False

    try:
        old = read_run_record(directory)
    except ExperimentDirectoryError:  # unreadable: kept under previous/, not overwritten
        old = None
        try:
            _backup(directory, RECORD_NAME)
        except OSError:
            pass
    history = _previous_attempts(directory, old)
    started, started_at = _now()
    state = recent_git_state()
    git: dict[str, Any] = {"revision": state.revision, "branch": state.branch,
                           "dirty": state.dirty, "patch": None}
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
        "final_step": None,
        "experiment_class": experiment_class,
        "command": {
            "argv": argv,
            "orig_argv": list(getattr(sys, "orig_argv", [sys.executable, *argv])),
            "executable": sys.executable,
            "cwd": os.getcwd(),
        },
        # A resumed (or re-run) directory keeps the parent its configuration came from.
        "inherit": _describe_inherit(inherit) if inherit is not None or not old
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
    }
    record = RunRecord(directory, data)
    try:
        patch = git_diff(revision=state.revision) if state.dirty else None
        git["patch"] = _write_patch(directory, patch, history)
        record.write()
    except OSError as failure:
        import warnings

        warnings.warn(f"speedrun could not write the run record {record.path}: {failure}. "
                      "The run goes on; `speedrun ls` will not know how it was started.",
                      RuntimeWarning, stacklevel=3)
        return None
    import atexit

    record._step = current_step
    atexit.register(record._at_exit)
    return record


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
    except Exception:  # noqa: BLE001 - auto_setup already reported a bad --inherit
        source = None
    path = os.path.abspath(inherit)
    return {"argument": inherit, "path": path, "config_file": source,
            "kind": "file" if os.path.isfile(path) else "directory"}


# ------------------------------------------------------------------------------------------------
# reading


def read_run_record(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run record of ``directory``, or None when it has none.

    Raises
    ------
    ExperimentDirectoryError
        The record exists but cannot be read or is not a speedrun run record.
    """
    path = record_path(directory)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ExperimentDirectoryError(
            f"cannot read the run record {path}: {getattr(error, 'strerror', None) or error}; "
            "check its permissions"
        ) from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ExperimentDirectoryError(
            f"{path} is not valid JSON ({error}); expected a speedrun run record. Restore it "
            "or delete it (the run's configuration and checkpoints do not depend on it)"
        ) from None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise ExperimentDirectoryError(
            f"{path} is not a speedrun run record (expected a JSON object with "
            f"format={RECORD_FORMAT!r}); restore it or delete it"
        )
    return data


def resolve_status(directory: str | os.PathLike[str], record: dict[str, Any] | None) -> str:
    """The status of a run: the record's, with ``running`` checked against the writer lock.

    ``running`` with a free lock is ``killed``; a directory without a record is ``running``
    while locked, else ``unknown`` (made by the original speedrun, or without ``auto_setup``).
    """
    status = record.get("status") if record else None
    if status in (None, "running"):
        if is_locked(directory):
            return "running"
        return "killed" if status == "running" else "unknown"
    return str(status)


_ZIP_END = b"PK\x05\x06"
_TORCH_LEGACY_PREFIX = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def _looks_complete(path: str) -> bool:
    """A cheap check that a checkpoint file was written to the end, without unpickling it.

    torch archives must hold the zip end record in their last 64 KiB; pickle streams (dill,
    pickle, the original speedrun's files) must end with pickle's STOP opcode. A sharded
    checkpoint directory must be committed (DCP's metadata and speedrun's commit marker).
    """
    if os.path.isdir(path):
        from ..checkpoint._shard_dirs import ENVELOPE_NAME, is_committed

        return is_committed(path) and _looks_complete(os.path.join(path, ENVELOPE_NAME))
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(16)
            if size < 2 or len(head) < 2:
                return False
            if head.startswith(b"PK\x03\x04"):
                tail_size = min(size, 65536 + 22)
                handle.seek(size - tail_size)
                return _ZIP_END in handle.read(tail_size)
            if head[0] == 0x80:
                if head.startswith(_TORCH_LEGACY_PREFIX):
                    return True  # torch < 1.6: raw storage bytes end the file
                handle.seek(size - 1)
                return handle.read(1) == b"."
    except OSError:
        return False
    return False


def last_activity(directory: str | os.PathLike[str]) -> float | None:
    """When a run last wrote: the newest mtime of its checkpoints and of the files in Logs/."""
    times = []
    for folder in ("Weights", "Logs"):
        try:
            with os.scandir(os.path.join(os.fspath(directory), folder)) as entries:
                for entry in entries:
                    try:
                        times.append(entry.stat().st_mtime)
                    except OSError:
                        continue
        except OSError:
            continue
    return max(times) if times else None


def latest_valid_checkpoint(directory: str | os.PathLike[str]) -> tuple[int, str] | None:
    """``(step, path)`` of the newest checkpoint in ``<directory>/Weights`` that looks complete.

    Nothing is unpickled (no torch needed): see :func:`_looks_complete`.
    """
    try:
        entries = list_checkpoints(os.path.join(os.fspath(directory), "Weights"))
    except Exception:  # noqa: BLE001 - an unreadable Weights/ has no valid checkpoint
        return None
    for step, path in reversed(entries):
        if _looks_complete(os.fspath(path)):
            return step, os.fspath(path)
    return None
