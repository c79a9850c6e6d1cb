"""One experiment, many processes: ranks, main-process-only writes, set-up barrier, per-rank state.

Under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``), a SLURM multi-task launch
(``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``) or submitit's local executor, every process
runs the same script with the same command line. Only the *main process* (rank 0) writes: it
purges and creates the experiment directory, takes the writer lock, dumps the configuration and
the run record, and writes checkpoints and logs. The rank comes from ``torch.distributed`` once a
process group is initialised (only if torch is already imported: asking never imports it), else
from the launcher's environment variables.

Set-up barrier
--------------
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

Checkpoints and random state
----------------------------
A save writes one checkpoint file for the whole job, from the main process (its own random state
inside, as in a single-process run). Every other rank writes only its random generators' state to
a small side file ``Weights/random_states/rank_<r>_iter_<step>.pkl``, with no collective: a
save therefore never deadlocks, even when user code calls ``checkpoint()`` on rank 0 only (the
other ranks then warn on resume that their state is missing). On ``--resume`` every rank loads the
one checkpoint (model, optimizer, step, attributes) and then restores its own random state.

Preemption: when a process group is initialised, ``next_step()`` agrees on a pending preemption
with one tiny ``all_reduce`` (MAX of a flag) so that every rank checkpoints at the same step; then
the ranks meet at a ``barrier`` after the save, and the other ranks wait (at most a minute) for the
main process to release the directory, so that a launcher tearing down the job when the first
process exits cannot kill the main process in the middle of its clean-up.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

from ._errors import CheckpointError, ExperimentDirectoryError, SpeedrunError

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from ._experiment import BaseExperiment

    F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "LAUNCH_FILE_NAME",
    "RANDOM_STATE_FOLDER",
    "announce_failure_at_exit",
    "announce_setup",
    "checkpoint_map_location",
    "follow_main_setup",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "launch_id",
    "load_announced_checkpoint",
    "load_rank_random_state",
    "main_process_only",
    "preemption_agreed",
    "rank_state_path",
    "save_rank_random_state",
    "wait_after_preemption_checkpoint",
    "wait_for_main_setup",
]

LAUNCH_FILE_NAME = ".speedrun.launch"
"""The main process's set-up announcement, in the experiment directory."""

RANDOM_STATE_FOLDER = "random_states"
"""Folder of the other ranks' random states, inside the checkpoint folder (``Weights/``)."""

_LAUNCH_FORMAT = "speedrun-launch"
_RANK_STATE_FORMAT = "speedrun-rank-random-state"
_DEFAULT_SETUP_TIMEOUT = 600.0
_STALE_SECONDS = 15 * 60.0
_EXIT_WAIT_SECONDS = 60.0
_POLL_SECONDS = 0.05
_IMPORTED_AT = time.time()
_announced: set[str] = set()  # directories whose set-up this process announced
_resume_steps: dict[str, list[int]] = {}  # other ranks: checkpoint steps rank 0 found at set-up

# (rank, world size, local rank) variables of each launcher, most specific first: torchrun inside
# a SLURM job sets both RANK and SLURM_PROCID, and RANK is the one that counts then.
_LAUNCHERS = (
    ("RANK", ("WORLD_SIZE",), "LOCAL_RANK"),
    ("SLURM_PROCID", ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"), "SLURM_LOCALID"),
    ("SUBMITIT_LOCAL_GLOBALID", ("SUBMITIT_LOCAL_NTASKS",), "SUBMITIT_LOCAL_LOCALID"),
)


# ------------------------------------------------------------------------------------------------
# ranks


def _initialized_distributed() -> Any:
    """``torch.distributed`` if torch is imported and a process group is initialised, else None."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is None:
        return None
    try:
        if distributed.is_available() and distributed.is_initialized():
            return distributed
    except Exception:  # noqa: BLE001 - a half-imported or stubbed torch: fall back to the env
        return None
    return None


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SpeedrunError(
            f"Expected the environment variable {name} to hold a non-negative integer (set by "
            f"torchrun or SLURM), got {raw!r}. Fix: unset it, or launch with torchrun/srun."
        ) from None
    if value < 0:
        raise SpeedrunError(f"Expected {name} to be a non-negative integer, got {value}.")
    return value


def _env_launcher() -> tuple[str, str | None, str] | None:
    for rank_name, world_names, local_name in _LAUNCHERS:
        if os.environ.get(rank_name, "").strip():
            world_name = next((n for n in world_names if os.environ.get(n, "").strip()), None)
            return rank_name, world_name, local_name
    return None


def get_rank() -> int:
    """This process's global rank: 0 for the main process and for single-process runs.

    From ``torch.distributed`` when a process group is initialised, else from ``RANK``
    (torchrun), ``SLURM_PROCID`` (srun) or ``SUBMITIT_LOCAL_GLOBALID`` (submitit's local
    executor).
    """
    distributed = _initialized_distributed()
    if distributed is not None:
        return int(distributed.get_rank())
    launcher = _env_launcher()
    if launcher is None:
        return 0
    return _env_int(launcher[0]) or 0


def get_world_size() -> int:
    """The number of processes of this experiment (1 outside a multi-process launch)."""
    distributed = _initialized_distributed()
    if distributed is not None:
        return int(distributed.get_world_size())
    launcher = _env_launcher()
    if launcher is None or launcher[1] is None:
        return 1
    return max(_env_int(launcher[1]) or 1, 1)


def get_local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK``, ``SLURM_LOCALID``); 0 by default."""
    launcher = _env_launcher()
    if launcher is None:
        return 0
    return _env_int(launcher[2]) or 0


def is_main_process() -> bool:
    """Whether this process is the main one (rank 0), the only one that writes files.

    True in single-process runs. Safe to call anywhere: it never imports torch.
    """
    return get_rank() == 0


def main_process_only(function: F) -> F:
    """Decorator: run ``function`` in the main process only; elsewhere return None.

    >>> @main_process_only  # doctest: +SKIP
    ... def save_predictions(path, predictions): ...
    """
    import functools

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if get_rank() == 0:
            return function(*args, **kwargs)
        return None

    return wrapper  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------
# launch id and the set-up barrier


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
        for name in ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "SLURM_JOB_ID",
                     "SLURM_STEP_ID", "SLURM_RESTART_COUNT", "SUBMITIT_LOCAL_JOB_ID",
                     "MASTER_ADDR", "MASTER_PORT")
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

    from ._fs import atomic_write_text
    from ._lock import _hostname

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
    atomic_write_text(os.path.join(directory, LAUNCH_FILE_NAME),
                      json.dumps(record, indent=2) + "\n", durable=False)
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

    from ._directory import is_experiment_directory
    from ._fs import atomic_write_text
    from ._lock import _hostname

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
        atomic_write_text(os.path.join(directory, LAUNCH_FILE_NAME),
                          json.dumps(record, indent=2) + "\n", durable=False)
    except Exception:  # noqa: BLE001 - at exit, nothing more to do: the others time out
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
    from ._lock import _describe_holder, read_lock_holder

    token = launch_id()
    path = os.path.join(directory, LAUNCH_FILE_NAME)
    oldest = _process_start_time() - _STALE_SECONDS
    limit = _setup_timeout() if timeout is None else timeout
    deadline = time.monotonic() + limit
    seen_holder: dict[str, Any] | None = None

    def announced() -> dict[str, Any] | None:
        record = _read_json(path)
        if (record is not None and record.get("format") == _LAUNCH_FORMAT
                and record.get("launch") == token
                and isinstance(record.get("written"), (int, float))
                and record["written"] >= oldest):
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


def follow_main_setup(experiment: BaseExperiment, update_git_revision: bool,
                      dump_configuration: bool) -> BaseExperiment:
    """``auto_setup()`` of a process other than the main one: wait, then read what it resolved.

    Nothing is written: the directory, the configuration dump and the writer lock belong to the
    main process. The configuration is the one the main process dumped (identical by
    construction); with ``dump_configuration=False`` it is resolved here from the same command
    line and files, as the main process did.
    """
    from . import _preemption
    from ._errors import ArgumentError

    args = experiment._require_args()
    resume = bool(args.get("resume", False))
    purge = bool(args.get("purge", False))
    inherit = experiment._raw_flag("inherit")
    if resume and purge:
        raise ArgumentError("--resume continues a run and --purge deletes it: pass one")
    if resume and inherit is not None:
        raise ArgumentError("--resume continues the directory's own config; drop --inherit")
    if not args.positionals:
        experiment.parse_experiment_directory()  # raises the usual error
    record = wait_for_main_setup(os.fspath(args.positionals[0]))
    experiment.parse_experiment_directory()  # records the path; only rank 0 creates folders
    if dump_configuration and record.get("config_dumped"):
        experiment.read_config_file()
    else:
        if inherit is not None:
            experiment.inherit_configuration(inherit)
        else:
            try:
                experiment.read_config_file()
            except FileNotFoundError:
                if resume:
                    raise
        experiment.read_macro()
        experiment.update_configuration_from_args()
        if update_git_revision:
            experiment.update_git_revision(overwrite=True)
    _preemption.install(experiment.get("speedrun/preemption_signals", _preemption.DEFAULT_SIGNALS))
    steps = [step for step in record.get("checkpoints") or [] if isinstance(step, int)]
    experiment._resume_pending = bool(resume and steps)
    if steps:
        weights = os.path.join(os.fspath(args.positionals[0]), "Weights")
        _resume_steps[os.path.abspath(weights)] = sorted(steps)
    return experiment


def load_announced_checkpoint(checkpoint_directory: str, experiment_class: str) -> Any:
    """Other ranks on ``--resume``: the newest valid checkpoint among those rank 0 found at
    set-up (the one it resumes from), never a newer one it may have saved since. None in the
    main process, or when this process did not follow a set-up of this directory."""
    steps = _resume_steps.get(os.path.abspath(checkpoint_directory))
    if not steps or get_rank() == 0:
        return None
    from ._checkpoint import _CorruptCheckpointError, list_checkpoints, load_checkpoint

    files = dict(list_checkpoints(checkpoint_directory))  # newest file name per step wins
    failures = []
    for step in reversed(steps):
        if step not in files:
            failures.append(f"step {step}: deleted since set-up")
            continue
        try:
            return load_checkpoint(files[step], experiment_class=experiment_class,
                                   map_location=checkpoint_map_location())
        except _CorruptCheckpointError as error:  # rank 0 skipped it too
            failures.append(f"step {step}: {error}")
    raise CheckpointError(
        f"Rank {get_rank()} found none of the checkpoints of {checkpoint_directory} that rank 0 "
        f"saw at set-up loadable: {'; '.join(failures)}. Start again without --resume, or "
        "restore the checkpoint files."
    )


# ------------------------------------------------------------------------------------------------
# per-rank random state


def rank_state_path(checkpoint_directory: str, step: int, rank: int | None = None) -> str:
    """``<Weights>/random_states/rank_<rank>_iter_<step>.pkl``."""
    rank = get_rank() if rank is None else rank
    return os.path.join(checkpoint_directory, RANDOM_STATE_FOLDER, f"rank_{rank}_iter_{step}.pkl")


def _rank_state_steps(folder: str, rank: int) -> list[int]:
    prefix, suffix = f"rank_{rank}_iter_", ".pkl"
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    steps = []
    for name in names:
        if name.startswith(prefix) and name.endswith(suffix):
            middle = name[len(prefix):-len(suffix)]
            if middle.isdigit():
                steps.append(int(middle))
    return sorted(steps)


def save_rank_random_state(checkpoint_directory: str, step: int, state: dict[str, Any], *,
                           rank: int | None = None, keep: int | None = None) -> str:
    """Write this rank's random ``state`` for the checkpoint of ``step`` (atomic, durable).

    With ``keep`` (``training/checkpoint_keep``), only this rank's newest ``keep + 1`` files
    stay: one more than the checkpoints kept, since the main process may not have pruned yet.
    """
    import pickle

    from ._fs import atomic_write_bytes

    rank = get_rank() if rank is None else rank
    path = rank_state_path(checkpoint_directory, step, rank)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    payload = {"format": _RANK_STATE_FORMAT, "version": 1, "rank": rank, "step": step,
               "world_size": get_world_size(), "state": state}
    try:
        atomic_write_bytes(path, pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError as error:
        raise CheckpointError(
            f"Rank {rank} could not write its random state for step {step} to {path}: "
            f"{error.strerror or error}. Fix: check the free space and permissions of "
            f"{checkpoint_directory}."
        ) from error
    if keep is not None and int(keep) > 0:
        for old in _rank_state_steps(folder, rank)[: -(int(keep) + 1)]:
            if old != step:
                try:
                    os.unlink(rank_state_path(checkpoint_directory, old, rank))
                except OSError:
                    pass
    return path


def load_rank_random_state(checkpoint_directory: str, step: int,
                           rank: int | None = None) -> dict[str, Any] | None:
    """This rank's random state saved with the checkpoint of ``step``; None (and a warning) if
    it is missing or unreadable, in which case the rank's generators keep their current state."""
    import pickle

    rank = get_rank() if rank is None else rank
    path = rank_state_path(checkpoint_directory, step, rank)
    try:
        with open(path, "rb") as handle:
            payload = pickle.load(handle)  # noqa: S301 - written by this experiment's ranks
        if (not isinstance(payload, dict) or payload.get("format") != _RANK_STATE_FORMAT
                or payload.get("step") != step or not isinstance(payload.get("state"), dict)):
            raise ValueError("not a speedrun rank random-state file for this step")
    except FileNotFoundError:
        reason = "it was not saved (was checkpoint() called on this rank too?)"
    except Exception as error:  # noqa: BLE001 - a truncated or foreign file: warn, go on
        reason = f"it cannot be read ({type(error).__name__}: {error})"
    else:
        return payload["state"]  # type: ignore[no-any-return]
    warnings.warn(
        f"Rank {rank} resumes from step {step} without its own random state: {path} is "
        f"missing because {reason}. Its random generators keep their current state, so its "
        "random draws will differ from the interrupted run.",
        stacklevel=3,
    )
    return None


def checkpoint_map_location() -> Any:
    """``map_location`` for loading the main process's checkpoint in this process.

    On ranks other than 0 with CUDA initialised, tensors saved on any GPU are mapped to this
    process's current device (the main process saved them on its own); None otherwise.
    """
    if get_rank() == 0:
        return None
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is None or not cuda.is_available() or not cuda.is_initialized():
            return None
        current = f"cuda:{cuda.current_device()}"
        return {f"cuda:{index}": current for index in range(cuda.device_count())}
    except Exception:  # noqa: BLE001 - no usable CUDA: load as saved
        return None


# ------------------------------------------------------------------------------------------------
# preemption across ranks


def preemption_agreed(requested: bool) -> bool:
    """Whether any rank has a pending preemption (one ``all_reduce``); ``requested`` without a
    process group. Every rank must call it at the same step (``next_step()`` does)."""
    distributed = _initialized_distributed()
    if distributed is None or distributed.get_world_size() < 2:
        return requested
    import torch

    device = "cpu"
    if distributed.get_backend() == "nccl":
        device = f"cuda:{torch.cuda.current_device()}"
    flag = torch.tensor([1 if requested else 0], dtype=torch.int32, device=device)
    distributed.all_reduce(flag, op=distributed.ReduceOp.MAX)
    return bool(flag.item())


def wait_after_preemption_checkpoint(directory: str | None) -> None:
    """After a preemption checkpoint: meet the other ranks, then let the main process finish.

    With a process group, all ranks pass a barrier once the checkpoint is written; the other
    ranks then wait (at most a minute) until the main process released the directory's writer
    lock, because launchers end the whole job when the first process exits.
    """
    distributed = _initialized_distributed()
    if distributed is None or distributed.get_world_size() < 2:
        return
    distributed.barrier()
    if directory is None or get_rank() == 0:
        return
    from ._lock import is_locked

    deadline = time.monotonic() + _EXIT_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if not is_locked(directory):
                return
        except SpeedrunError:
            return
        time.sleep(_POLL_SECONDS)
