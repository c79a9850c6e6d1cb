"""``speedrun-sweep``: set a sweep up and submit it.

::

    speedrun-sweep SWEEP.yml [--cluster slurm|local|debug] [--resume | --purge] [--dry-run] [--wait]

Exit status: 0 submitted (with ``--wait``: every point finished), 1 some point did not finish
(``--wait``), 2 an error (one line on stderr saying what to fix).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

EXIT_OK, EXIT_UNFINISHED, EXIT_ERROR = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speedrun-sweep",
        description="Create one experiment directory per point of a sweep file and submit them "
        "as a submitit job array (SLURM, or local processes). See `speedrun ls DIR` "
        "for their status and `speedrun diff A B` to compare two points.",
    )
    parser.add_argument(
        "sweep_file", help="the sweep (YAML: script, base, grid and/or points, executor)"
    )
    parser.add_argument(
        "--cluster",
        choices=("slurm", "local", "debug"),
        help="where to run (default: the file's executor/cluster, else SLURM "
        "when sbatch is available, else local processes)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="resubmit the points that did not finish (they continue from their latest checkpoint)",
    )
    mode.add_argument(
        "--purge",
        action="store_true",
        help="delete the sweep's points and job logs, then start over",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list the points and their overrides; create and submit nothing",
    )
    parser.add_argument(
        "--wait", action="store_true", help="wait for the jobs and report how each point ended"
    )
    return parser


def _format(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = (
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    )
    return "\n".join(line.rstrip() for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``speedrun-sweep``; returns the exit status."""
    args = _parser().parse_args(argv)
    from speedrun import SpeedrunError

    from ._submit import point_status, submit_sweep, wait_for_jobs
    from ._sweep import load_sweep

    try:
        sweep = load_sweep(args.sweep_file)
        if args.dry_run:
            rows = [["point", "overrides"]]
            rows += [
                [
                    point.name,
                    ", ".join(
                        f"{path.replace('/', '.')}={_format(value)}"
                        for path, value in point.overrides.items()
                    )
                    or "-",
                ]
                for point in sweep.points
            ]
            print(
                f"{sweep.name}: {len(sweep.points)} point(s) in {sweep.directory}, running "
                f"{sweep.script}\n{_table(rows)}"
            )
            return EXIT_OK
        submitted = submit_sweep(sweep, cluster=args.cluster, resume=args.resume, purge=args.purge)
    except (SpeedrunError, OSError) as error:
        message = str(error).strip().splitlines() or [type(error).__name__]
        print(f"speedrun-sweep: error: {message[0]}", file=sys.stderr)
        for line in message[1:]:
            print(f"  {line}", file=sys.stderr)
        return EXIT_ERROR
    if not submitted:
        print(
            f"{sweep.name}: nothing to submit: every point of {sweep.directory} finished or "
            "is running (see speedrun ls)."
        )
        return EXIT_OK
    rows = [["point", "job"]] + [[point.name, str(job.job_id)] for point, job in submitted]
    print(
        f"{sweep.name}: submitted {len(submitted)} point(s) from {sweep.directory}; job logs "
        f"in {sweep.jobs_folder}\n{_table(rows)}"
    )
    if not args.wait:
        return EXIT_OK
    outcomes = wait_for_jobs(submitted)
    rows = [["point", "status", "detail"]]
    unfinished = 0
    for point, _ in submitted:
        outcome = outcomes[point.name]
        status = str(outcome.get("status") or point_status(point))
        if status != "finished":
            unfinished += 1
        detail = outcome.get("error") or f"step {outcome.get('final_step')}"
        rows.append([point.name, status, str(detail).splitlines()[-1][:80]])
    print(_table(rows))
    return EXIT_UNFINISHED if unfinished else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
