"""What runs inside a submitit job: one sweep point's experiment script, requeued when preempted.

:class:`SweepJob` is the callable that submitit pickles for each point. It runs the point's
script **in the job's process** (``runpy``, as ``python script.py POINT_DIR [args] [--resume]``
would), so signals reach the experiment directly, exactly once: SLURM's timeout warning
(submitit's ``USR2``, ``#SBATCH --signal``), a preemption's ``SIGTERM``, or a test's ``kill``.
While the script runs, those signals go to speedrun's preemption flag: the experiment saves a
checkpoint at its next ``next_step()`` and ends with status 75 (``speedrun.Preempted``). Then:

- after submitit's requeue signal, :class:`SweepJob` hands over to submitit's own handler,
  which calls :meth:`SweepJob.checkpoint` (the same point, attempt + 1) and requeues the job
  (``scontrol requeue`` on SLURM, a restart by the local executor), counting timeouts as
  submitit does;
- after SIGTERM, the process exits with status 75: SLURM requeues preempted jobs itself when the
  partition says so, and ``speedrun-sweep --resume`` resubmits whatever did not finish.

A job that starts in a point directory that already has checkpoints passes ``--resume``, so a
requeued or resubmitted point continues from its latest valid checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

__all__ = ["SweepJob", "run_point"]


class SweepJob:
    """Run ``script`` on the experiment directory ``directory`` (one sweep point).

    Submitit sees a checkpointable callable (it has :meth:`checkpoint`): on its requeue signal
    the job is resubmitted as ``SweepJob(..., attempt=attempt + 1)``.

    Parameters
    ----------
    script
        The experiment script (absolute path).
    directory
        The point's experiment directory (absolute path), already holding its configuration.
    args
        More command-line arguments (``--dispatch train``).
    attempt
        How many times this point's job was requeued before.
    """

    def __init__(
        self, script: str, directory: str, args: list[str] | tuple[str, ...] = (), attempt: int = 0
    ) -> None:
        self.script = script
        self.directory = directory
        self.args = list(args)
        self.attempt = attempt

    def __repr__(self) -> str:
        return (
            f"SweepJob(script={self.script!r}, directory={self.directory!r}, "
            f"args={self.args!r}, attempt={self.attempt})"
        )

    def __call__(self) -> dict[str, Any]:
        return run_point(self.script, self.directory, self.args, self.attempt)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Submitit's requeue hook: the same point, one attempt later (it resumes by itself)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(SweepJob(self.script, self.directory, self.args, self.attempt + 1))


def _job_environment() -> Any:
    """submitit's JobEnvironment inside a submitit job, else None."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    import submitit

    try:
        return submitit.JobEnvironment()
    except Exception:
        return None


def _requeue_signal() -> int:
    """The signal submitit requeues on (``USR2``, or ``SUBMITIT_PREEMPT_SIGNAL``)."""
    from submitit.core.job_environment import JobEnvironment

    return int(JobEnvironment._usr_sig())


def _prepare_environment(environment: Any, attempt: int) -> None:
    """Variables the experiment needs: one launch id per attempt, torch.distributed's for
    multi-task jobs (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)."""
    job_id = environment.job_id if environment is not None else str(os.getpid())
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    # Every task of this attempt computes the same id, and the next attempt (requeue: same job
    # id) a different one; an id inherited from the submitting shell is replaced.
    os.environ["SPEEDRUN_LAUNCH_ID"] = f"submitit:{job_id}:{attempt}:{restarts}"
    os.environ["SPEEDRUN_SWEEP_ATTEMPT"] = str(attempt)
    if environment is not None and environment.num_tasks > 1:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def _exit_code(error: SystemExit) -> int:
    code = error.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints it and exits with 1
    return 1


def run_point(script: str, directory: str, args: list[str], attempt: int = 0) -> dict[str, Any]:
    """Run one point's experiment in this process and report how it ended.

    Returns
    -------
    dict
        ``directory``, ``status`` (from the run record, ``finished`` normally), ``final_step``,
        ``attempt`` and ``resumed``.

    Raises
    ------
    speedrun.Preempted
        The run was preempted by SIGTERM and saved a checkpoint (exit status 75).
    RuntimeError
        The script failed (its exception is chained) or exited with another status.
    """
    import runpy

    from speedrun import PREEMPTION_EXIT_CODE, Preempted
    from speedrun.ext import (
        install_preemption_handlers,
        list_checkpoints,
        preemption_signal,
        reset_preemption,
        uninstall_preemption_handlers,
    )

    environment = _job_environment()
    _prepare_environment(environment, attempt)
    requeue_signal = _requeue_signal()
    resume = bool(list_checkpoints(os.path.join(directory, "Weights")))
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [script, directory, *args, *(["--resume"] if resume else [])]
    sys.path.insert(0, os.path.dirname(script))  # as `python script.py` does
    signals = [requeue_signal, signal.SIGTERM]
    reset_preemption()
    install_preemption_handlers(signals)
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as error:
        code = _exit_code(error)
    except Exception as error:
        raise RuntimeError(
            f"sweep point {directory} failed in {os.path.basename(script)}: "
            f"{type(error).__name__}: {error}"
        ) from error
    finally:
        received = preemption_signal()
        uninstall_preemption_handlers()
        reset_preemption()
        sys.argv = saved_argv
        sys.path[:] = saved_path
    if code == PREEMPTION_EXIT_CODE:
        handler = signal.getsignal(requeue_signal)
        if received == requeue_signal and environment is not None and callable(handler):
            # submitit's handler: checkpoint() (this point, attempt + 1), requeue, exit. In
            # tasks other than rank 0 it returns, and the task ends like rank 0 (status 75).
            handler(requeue_signal, None)
        raise Preempted(
            message=(
                f"sweep point {directory} was preempted and saved a checkpoint; it continues with "
                f"--resume when requeued (or resubmit with speedrun-sweep --resume)."
            )
        )
    if code != 0:
        raise RuntimeError(
            f"sweep point {directory}: {os.path.basename(script)} exited with "
            f"status {code}; see the job's stderr and the point's Logs/"
        )
    return _outcome(directory, attempt, resume)


def _outcome(directory: str, attempt: int, resumed: bool) -> dict[str, Any]:
    outcome: dict[str, Any] = {
        "directory": directory,
        "status": "finished",
        "final_step": None,
        "attempt": attempt,
        "resumed": resumed,
    }
    try:
        from speedrun.ext import read_run_record

        record = read_run_record(directory) or {}
    except Exception:
        record = {}
    outcome["status"] = record.get("status", "finished")
    outcome["final_step"] = record.get("final_step")
    return outcome
