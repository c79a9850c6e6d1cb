"""speedrun-submitit: sweeps of speedrun experiments as submitit job arrays.

A sweep file (a base configuration plus a grid and/or a list of overrides) becomes one normal
experiment directory per point, submitted as one job array: SLURM on a cluster, local processes
on a workstation. Preempted and timed-out jobs save a checkpoint, are requeued and continue with
``--resume``. Run ``speedrun-sweep sweep.yml``; ``speedrun ls`` shows the points' status.

``SubmititMixin`` (``from speedrun.mixins.submitit import SubmititMixin``, or
``from speedrun import SubmititMixin``) tells an experiment which sweep point and attempt it is.
Importing this package does not import submitit; submitting does.
"""

from __future__ import annotations

from speedrun.ext import set_public_module

from ._job import SweepJob, run_point
from ._mixin import SubmititMixin
from ._submit import make_executor, point_status, prepare_sweep, submit_sweep, wait_for_jobs
from ._sweep import MANIFEST_NAME, Sweep, SweepPoint, expand_points, load_sweep, point_config

__all__ = [
    "MANIFEST_NAME",
    "SubmititMixin",
    "Sweep",
    "SweepJob",
    "SweepPoint",
    "expand_points",
    "load_sweep",
    "make_executor",
    "point_config",
    "point_status",
    "prepare_sweep",
    "run_point",
    "submit_sweep",
    "wait_for_jobs",
]

__version__ = "0.2.0"

# Last: the classes and functions above report this package as their module (tracebacks,
# repr() and pickles say speedrun.mixins.submitit.X, not its private module).
set_public_module(globals())
