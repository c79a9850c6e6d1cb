"""The set-up barrier of a multi-process run: rank 0 sets the directory up, the others wait.

``auto_setup()`` usually runs before the user's ``init_process_group()``, so it cannot use a
collective. The main process finishes its set-up and then writes ``<directory>/.speedrun.launch``
(atomically) holding a *launch id*; the other processes wait for that file to hold **their**
launch id. The id is derived from what the launcher makes unique for each launch:
``TORCHELASTIC_RUN_ID`` and ``TORCHELASTIC_RESTART_COUNT``, ``SLURM_JOB_ID``, ``SLURM_STEP_ID`` and
``SLURM_RESTART_COUNT``, ``MASTER_ADDR:MASTER_PORT``, and on a single node the launcher's PID (the
parent every local rank shares) — or simply ``SPEEDRUN_LAUNCH_ID`` when set. A file left by an
earlier launch (an old directory, or one about to be deleted by ``--purge``) holds another id and
is ignored; as a second guard, a file written more than 15 minutes before this process started
is ignored too. While waiting, a process that saw the main process hold the directory's writer
lock and then let it go without announcing its set-up stops at once (the main process failed);
otherwise it gives up after ``SPEEDRUN_SETUP_TIMEOUT`` seconds (default 600) with an error naming
the directory, the launch id and the fix.

On ``--resume`` the other ranks load the newest valid checkpoint among those rank 0 found at
set-up (the one it resumes from), never one it saved since.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

from .._errors import CheckpointError, ExperimentDirectoryError, SpeedrunError
from ._ranks import (
    _POLL_SECONDS,
    _env_int,
    checkpoint_map_location,
    get_rank,
    get_world_size,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = [
    "LAUNCH_FILE_NAME",
    "announce_failure_at_exit",
    "announce_setup",
    "launch_id",
    "load_announced_checkpoint",
    "remember_resume_steps",
    "wait_for_main_setup",
]

LAUNCH_FILE_NAME = ".speedrun.launch"
"""The main process's set-up announcement, in the experiment directory."""

_LAUNCH_FORMAT = "speedrun-launch"
_DEFAULT_SETUP_TIMEOUT = 600.0
_STALE_SECONDS = 15 * 60.0
_IMPORTED_AT = time.time()
_announced: set[str] = set()  # directories whose set-up this process announced
_resume_steps: dict[str, list[int]] = {}  # other ranks: checkpoint steps rank 0 found at set-up


def _single_node() -> bool:
    """Whether every process of this launch runs on this machine (True when nothing says not)."""
    local, world = _env_int_or_none("LOCAL_WORLD_SIZE"), _env_int_or_none("WORLD_SIZE")
    if local is not None and world is not None:
        return local == world
    for name in ("GROUP_WORLD_SIZE", "SLURM_STEP_NUM_NODES", "SLURM_JOB_NUM_NODES", "SLURM_NNODES"):
        nodes = _env_int_or_none(name)
        if nodes is not None:
            return nodes <= 1
    return True


def _env_int_or_none(name: str) -> int | None:
    try:
        return _env_int(name)
    except SpeedrunError:
        return None


def launch_id() -> str:
    """An identifier shared by every process of this launch and different for the next launch.

    ``SPEEDRUN_LAUNCH_ID`` when set; else built from the launcher's variables (torchrun's run
    id and restart count, SLURM's job, step and restart count, the rendezvous address) and, on
    a single node, the PID of the launcher that started the processes.
    """
    explicit = os.environ.get("SPEEDRUN_LAUNCH_ID", "").strip()
    if explicit:
        return f"SPEEDRUN_LAUNCH_ID={explicit}"
    parts = [
        f"{name}={os.environ[name]}"
        for name in (
            "TORCHELASTIC_RUN_ID",
            "TORCHELASTIC_RESTART_COUNT",
            "SLURM_JOB_ID",
            "SLURM_STEP_ID",
            "SLURM_RESTART_COUNT",
            "SUBMITIT_LOCAL_JOB_ID",
            "MASTER_ADDR",
            "MASTER_PORT",
        )
        if os.environ.get(name, "").strip()
    ]
    if _single_node():
        parts.append(f"launcher_pid={os.getppid()}")
    return ";".join(parts)


def _process_start_time() -> float:
    """When this process started (wall clock), from /proc on Linux; else when speedrun loaded."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of stat(5); fields[0] is field 3
        with open("/proc/stat", "rb") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED_AT


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError):
        return None
    import json

    try:
        content = json.loads(text)
    except ValueError:
        return None
    return content if isinstance(content, dict) else None


def announce_setup(directory: str, *, checkpoints: list[int], config_dumped: bool) -> None:
    """Main process: tell the other processes that ``directory`` is set up (see module docs)."""
    import json

    from ..directory._fs import atomic_write_text
    from ..directory._lock import _hostname

    record = {
        "format": _LAUNCH_FORMAT,
        "launch": launch_id(),
        "written": time.time(),
        "pid": os.getpid(),
        "host": _hostname(),
        "world_size": get_world_size(),
        "checkpoints": list(checkpoints),
        "config_dumped": bool(config_dumped),
    }
    # Atomic (readers never see half a file) but not fsynced: it only matters while this launch
    # runs, and a rename is visible to the other processes at once.
    atomic_write_text(
        os.path.join(directory, LAUNCH_FILE_NAME),
        json.dumps(record, indent=2) + "\n",
        durable=False,
    )
    _announced.add(os.path.abspath(directory))


def announce_failure_at_exit(directory: str | None) -> None:
    """Main process, before its set-up: should this process exit before :func:`announce_setup`
    for ``directory``, tell the other processes, so that they stop at once instead of waiting
    for the time-out. Written only into an existing speedrun experiment directory."""
    if directory is None:
        return
    import atexit

    atexit.register(_announce_failure, os.path.abspath(directory))


def _announce_failure(directory: str) -> None:
    if directory in _announced:
        return
    import json

    from ..directory._fs import atomic_write_text
    from ..directory._layout import is_experiment_directory
    from ..directory._lock import _hostname

    try:
        if not is_experiment_directory(directory):
            return
        error = getattr(sys, "last_value", None)  # set when an uncaught exception ended the run
        record = {
            "format": _LAUNCH_FORMAT,
            "launch": launch_id(),
            "written": time.time(),
            "pid": os.getpid(),
            "host": _hostname(),
            "failed": True,
            "error": f"{type(error).__name__}: {error}" if error is not None else None,
        }
        atomic_write_text(
            os.path.join(directory, LAUNCH_FILE_NAME),
            json.dumps(record, indent=2) + "\n",
            durable=False,
        )
    except Exception:
        return


def _setup_timeout() -> float:
    raw = os.environ.get("SPEEDRUN_SETUP_TIMEOUT", "").strip()
    if not raw:
        return _DEFAULT_SETUP_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SpeedrunError(
            f"Expected SPEEDRUN_SETUP_TIMEOUT to be a positive number of seconds, got {raw!r}."
        )
    return value


def wait_for_main_setup(directory: str, timeout: float | None = None) -> dict[str, Any]:
    """Other processes: wait until the main process announced this launch's set-up of ``directory``.

    Returns the announcement (``checkpoints``: the steps found at set-up, ``config_dumped``).

    Raises
    ------
    ExperimentDirectoryError
        When the main process let go of the directory without announcing (it failed), or after
        ``timeout`` seconds (default ``SPEEDRUN_SETUP_TIMEOUT``, 600).
    """
    from ..directory._lock import _describe_holder, read_lock_holder

    token = launch_id()
    path = os.path.join(directory, LAUNCH_FILE_NAME)
    oldest = _process_start_time() - _STALE_SECONDS
    limit = _setup_timeout() if timeout is None else timeout
    deadline = time.monotonic() + limit
    seen_holder: dict[str, Any] | None = None

    def announced() -> dict[str, Any] | None:
        record = _read_json(path)
        if (
            record is not None
            and record.get("format") == _LAUNCH_FORMAT
            and record.get("launch") == token
            and isinstance(record.get("written"), (int, float))
            and record["written"] >= oldest
        ):
            return record
        return None

    while True:
        record = announced()
        if record is not None:
            if record.get("failed"):
                raise ExperimentDirectoryError(
                    f"Rank {get_rank()} waited for the main process (rank 0) to set up "
                    f"{directory}, but it failed (process {record.get('pid')} on host "
                    f"{record.get('host')}): "
                    f"{str(record.get('error') or 'see its output').rstrip('.')}."
                )
            return record
        try:
            holder = read_lock_holder(directory) if os.path.isdir(directory) else None
        except SpeedrunError:
            holder = None
        if holder is not None:
            seen_holder = holder
        elif seen_holder is not None:
            record = announced()  # it may have announced and finished in between
            if record is not None and not record.get("failed"):
                return record
            raise ExperimentDirectoryError(
                f"Rank {get_rank()} waited for the main process (rank 0) to set up {directory}, "
                f"but {_describe_holder(seen_holder, mark_self=False)} released the directory "
                "without finishing its set-up: it failed. See rank 0's output for the error."
            )
        if time.monotonic() >= deadline:
            raise ExperimentDirectoryError(
                f"Rank {get_rank()} waited {limit:.0f} s for the main process (rank 0) to set up "
                f"{directory} and announce launch {token!r} in {LAUNCH_FILE_NAME}; it did not. "
                "Expected every process of one launch to get the same command line and the same "
                "launcher environment. Fix: see rank 0's output for an error; if the processes "
                "were started by hand rather than by torchrun or srun, export the same "
                "SPEEDRUN_LAUNCH_ID=<unique value> in all of them; if rank 0's set-up is slow, "
                "raise SPEEDRUN_SETUP_TIMEOUT (seconds)."
            )
        time.sleep(_POLL_SECONDS)


def remember_resume_steps(checkpoint_directory: str, steps: list[int]) -> None:
    """Other ranks: record the checkpoint steps rank 0 found at set-up (from its announcement),
    so that :func:`load_announced_checkpoint` loads the one rank 0 resumes from."""
    if steps:
        _resume_steps[os.path.abspath(checkpoint_directory)] = sorted(steps)


def load_announced_checkpoint(
    checkpoint_directory: str,
    experiment_class: str | Sequence[str] | None,
    strict_class: bool = True,
    *,
    trust: bool = False,
) -> Any:
    """Other ranks on ``--resume``: the newest valid checkpoint among those rank 0 found at
    set-up (the one it resumes from), never a newer one it may have saved since. None in the
    main process, or when this process did not follow a set-up of this directory."""
    steps = _resume_steps.get(os.path.abspath(checkpoint_directory))
    if not steps or get_rank() == 0:
        return None
    from ..checkpoint._files import _CorruptCheckpointError, list_checkpoints
    from ..checkpoint._io import load_checkpoint

    files = dict(list_checkpoints(checkpoint_directory))  # newest file name per step wins
    failures = []
    for step in reversed(steps):
        if step not in files:
            failures.append(f"step {step}: deleted since set-up")
            continue
        try:
            return load_checkpoint(
                files[step],
                experiment_class=experiment_class,
                strict_class=strict_class,
                map_location=checkpoint_map_location(),
                trust=trust,
            )
        except _CorruptCheckpointError as error:  # rank 0 skipped it too
            failures.append(f"step {step}: {error}")
    raise CheckpointError(
        f"Rank {get_rank()} found none of the checkpoints of {checkpoint_directory} that rank 0 "
        f"saw at set-up loadable: {'; '.join(failures)}. Start again without --resume, or "
        "restore the checkpoint files."
    )
