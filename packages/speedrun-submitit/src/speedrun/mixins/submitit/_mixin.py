"""``SubmititMixin``: what an experiment can know about the sweep point and job it runs in."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from speedrun.ext import ConfigKey

if TYPE_CHECKING:
    from speedrun import BaseExperiment as _Base
else:
    _Base = object

__all__ = ["SubmititMixin"]


class SubmititMixin(_Base):
    """Sweep and job information for an experiment started by ``speedrun-sweep``.

    Nothing is needed to run an experiment in a sweep: any speedrun experiment script works.
    Mix this in to read which point and attempt this is (for example, to log the swept values
    as hyperparameters) and the submitit job environment. Outside a sweep or a submitit job the
    properties are ``None``, ``{}`` and ``0``.
    """

    CONFIG_KEYS = (
        ConfigKey(
            "speedrun/sweep",
            None,
            "Written by speedrun-sweep into each point's config: name, index, point, "
            "overrides, base, sweep_file. Not set by hand.",
            kinds=(dict, type(None)),
        ),
    )

    @property
    def sweep_point(self) -> dict[str, Any] | None:
        """The sweep record of this run's config (``speedrun/sweep``): ``name``, ``index``,
        ``point``, ``overrides``, ``base``, ``sweep_file``; None outside a sweep."""
        record = self.config_value("speedrun/sweep")
        return dict(record) if record is not None else None

    @property
    def sweep_overrides(self) -> dict[str, Any]:
        """The values this point sets, by dotted config path (``{"training.lr": 0.01}``)."""
        point = self.sweep_point or {}
        overrides = point.get("overrides")
        return dict(overrides) if isinstance(overrides, dict) else {}

    @property
    def job_attempt(self) -> int:
        """0 for a point's first job, then 1, 2, ... after each requeue."""
        try:
            return int(os.environ.get("SPEEDRUN_SWEEP_ATTEMPT", "0"))
        except ValueError:
            return 0

    @property
    def job_environment(self) -> Any:
        """submitit's ``JobEnvironment`` (job id, hostnames, ranks) inside a submitit job, else
        None. Imports submitit only inside a job."""
        if not os.environ.get("SUBMITIT_EXECUTOR"):
            return None
        import submitit

        try:
            return submitit.JobEnvironment()
        except Exception:
            return None

    @property
    def job_id(self) -> str | None:
        """The submitit (SLURM, or local) job id, or None outside a job."""
        environment = self.job_environment
        return None if environment is None else str(environment.job_id)
