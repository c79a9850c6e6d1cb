"""Turning a sweep into experiment directories and submitting them as one submitit job array."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any

from speedrun import ConfigError, ExperimentDirectoryError
from speedrun.ext import require

from ._job import SweepJob
from ._sweep import CONFIG_FILE, Sweep, SweepPoint, existing_points, point_config

__all__ = ["make_executor", "point_status", "prepare_sweep", "submit_sweep", "wait_for_jobs"]

# Arguments of submitit's executor constructors (everything else goes to update_parameters).
_CONSTRUCTOR_KEYS = frozenset(
    {"slurm_max_num_timeout", "slurm_python", "local_max_num_timeout", "local_python"}
)
_CLUSTERS = ("slurm", "local", "debug")


def point_status(point: SweepPoint) -> str:
    """``new`` (set up, never started), or the run's status as ``speedrun ls`` shows it."""
    from speedrun.ext import read_run_record, resolve_status

    if not os.path.isdir(point.directory):
        return "missing"
    record = read_run_record(point.directory)
    status = resolve_status(point.directory, record)
    if record is None and status == "unknown":
        return "new"
    return status


def _read_manifest(sweep: Sweep) -> dict[str, Any] | None:
    from speedrun.ext import load_mapping

    if not os.path.isfile(sweep.manifest_path):
        return None
    return load_mapping(sweep.manifest_path)


def _manifest_points(sweep: Sweep) -> list[dict[str, Any]]:
    return [
        {
            "name": point.name,
            "overrides": {path.replace("/", "."): value for path, value in point.overrides.items()},
        }
        for point in sweep.points
    ]


def _write_manifest(sweep: Sweep, submission: dict[str, Any] | None) -> None:
    from speedrun.ext import atomic_write_text, dumps_yaml

    previous = _read_manifest(sweep) or {}
    submissions = list(previous.get("submissions") or [])
    if submission is not None:
        submissions.append(submission)
    manifest = {
        "name": sweep.name,
        "sweep_file": sweep.source,
        "script": sweep.script,
        "args": sweep.args,
        "base": sweep.base,
        "executor": sweep.executor,
        "points": _manifest_points(sweep),
        "submissions": submissions,
    }
    atomic_write_text(sweep.manifest_path, dumps_yaml(manifest))


def _report(findings: dict[str, list[str]]) -> None:
    """Overrides that add keys or change types, each listed once with the points it affects."""
    if not findings:
        return
    print(
        f"speedrun-sweep: {len(findings)} override(s) do not match the base config "
        "(set strict: true to make this an error):",
        file=sys.stderr,
    )
    for finding, names in findings.items():
        where = names[0] if len(names) == 1 else f"{len(names)} points"
        print(f"  - {finding} ({where})", file=sys.stderr)


def prepare_sweep(sweep: Sweep, *, resume: bool = False, purge: bool = False) -> list[SweepPoint]:
    """Create one experiment directory per point; return the points to submit.

    A fresh sweep directory gets every point. If it already holds this sweep's points,
    ``resume=True`` returns those that did not finish and are not running (recreating missing
    ones), and ``purge=True`` deletes them (and the jobs' logs) to start over; without either,
    it is refused. Every configuration is computed before anything is written.

    Raises
    ------
    ExperimentDirectoryError
        The sweep directory holds points but neither ``resume`` nor ``purge`` was given, or it
        is itself an experiment directory, or a point to purge is running.
    ConfigError
        ``resume`` with a sweep file whose points changed since they were submitted; a
        ``strict`` sweep whose overrides do not match the base.
    """
    from speedrun.ext import (
        atomic_write_text,
        dumps_yaml,
        ensure_experiment_directory,
        is_experiment_directory,
        purge_experiment_directory,
    )

    if resume and purge:
        raise ExperimentDirectoryError(
            "--resume continues a sweep and --purge deletes it: pass one"
        )
    if is_experiment_directory(sweep.directory):
        raise ExperimentDirectoryError(
            f"the sweep directory {sweep.directory} is itself an experiment directory; expected a "
            "folder for the sweep's points. Fix: set directory: in the sweep file to a new path."
        )
    existing = existing_points(sweep.directory)
    manifest = _read_manifest(sweep)
    todo = list(sweep.points)
    if existing or manifest is not None:
        if purge:
            for name in existing:
                purge_experiment_directory(os.path.join(sweep.directory, name))
            shutil.rmtree(sweep.jobs_folder, ignore_errors=True)
            if os.path.exists(sweep.manifest_path):
                os.unlink(sweep.manifest_path)
        elif resume:
            recorded = (manifest or {}).get("points")
            if recorded is not None and recorded != _manifest_points(sweep):
                raise ConfigError(
                    f"{sweep.source}: its points differ from those submitted to "
                    f"{sweep.directory} ({len(recorded)} recorded in "
                    f"{os.path.basename(sweep.manifest_path)}, {len(sweep.points)} now, or "
                    "other overrides). Fix: put the changed sweep in a new directory, or pass "
                    "--purge to start this one over."
                )
            todo = [
                point
                for point in sweep.points
                if point_status(point) not in ("finished", "running")
            ]
        else:
            raise ExperimentDirectoryError(
                f"{sweep.directory} already holds {len(existing)} point(s) of a sweep. Pass "
                "--resume to resubmit the points that did not finish, or --purge to delete them "
                "and start over."
            )
    fresh = [
        point for point in todo if not os.path.isfile(os.path.join(point.directory, CONFIG_FILE))
    ]
    findings: dict[str, list[str]] = {}
    configs = []
    for point in fresh:
        config, found = point_config(sweep, point)
        configs.append((point, dumps_yaml(config)))
        for finding in found:
            findings.setdefault(finding, []).append(point.name)
    _report(findings)
    os.makedirs(sweep.directory, exist_ok=True)
    for point, text in configs:
        ensure_experiment_directory(point.directory)
        atomic_write_text(os.path.join(point.directory, CONFIG_FILE), text)
    if manifest is None or purge:
        _write_manifest(sweep, None)
    return todo


def make_executor(sweep: Sweep, cluster: str | None = None) -> Any:
    """A submitit ``AutoExecutor`` for the sweep's ``executor`` settings.

    ``cluster`` (or ``executor: cluster:``) picks ``slurm``, ``local`` or ``debug``; without
    it submitit picks SLURM when ``sbatch`` is available, else local processes.
    """
    submitit = require(
        "submitit",
        feature="Submitting a sweep",
        install="pip install speedrun-submitit (or pip install submitit)",
    )

    params = dict(sweep.executor)
    chosen = cluster or params.pop("cluster", None)
    params.pop("cluster", None)
    if chosen in (None, "auto"):
        chosen = None
    elif chosen not in _CLUSTERS:
        raise ConfigError(
            f"{sweep.source}: executor/cluster: expected one of "
            f"{', '.join(_CLUSTERS)} or auto, got {chosen!r}"
        )
    constructor = {key: params.pop(key) for key in list(params) if key in _CONSTRUCTOR_KEYS}
    params.setdefault("name", f"speedrun-{sweep.name}")
    try:
        executor = submitit.AutoExecutor(folder=sweep.jobs_folder, cluster=chosen, **constructor)
        executor.update_parameters(**params)
    except (AssertionError, NameError, TypeError, ValueError, RuntimeError) as error:
        raise ConfigError(
            f"{sweep.source}: executor: submitit refused these settings: {error}\nExpected "
            "submitit AutoExecutor parameters: timeout_min, mem_gb, nodes, cpus_per_task, "
            "gpus_per_node, tasks_per_node, name, and cluster-prefixed ones such as "
            "slurm_partition, slurm_array_parallelism, slurm_signal_delay_s."
        ) from error
    return executor


def submit_sweep(
    sweep: Sweep, *, cluster: str | None = None, resume: bool = False, purge: bool = False
) -> list[tuple[SweepPoint, Any]]:
    """Prepare the sweep's directories and submit its points as one job array.

    Returns ``(point, submitit Job)`` pairs (empty when nothing is left to run). The job ids
    are recorded in ``<directory>/sweep.yml``.
    """
    todo = prepare_sweep(sweep, resume=resume, purge=purge)
    if not todo:
        return []
    executor = make_executor(sweep, cluster)
    with executor.batch():
        jobs = [
            executor.submit(SweepJob(sweep.script, point.directory, sweep.args)) for point in todo
        ]
    submitted = list(zip(todo, jobs, strict=True))
    from datetime import datetime

    _write_manifest(
        sweep,
        {
            "submitted": datetime.now().astimezone().isoformat(timespec="seconds"),
            "cluster": executor.cluster,
            "jobs": {point.name: str(job.job_id) for point, job in submitted},
        },
    )
    return submitted


def wait_for_jobs(
    submitted: list[tuple[SweepPoint, Any]], poll: float = 1.0
) -> dict[str, dict[str, Any]]:
    """Wait until every job ended; ``{point name: {"status": ..., "error": ...}}``."""
    outcomes: dict[str, dict[str, Any]] = {}
    for point, job in submitted:
        while not job.done():
            time.sleep(poll)
        try:
            result = job.results()[0]  # one per task; rank 0's describes the run
        except Exception as error:
            outcomes[point.name] = {"status": point_status(point), "error": str(error).strip()}
        else:
            outcomes[point.name] = dict(result)
    return outcomes
