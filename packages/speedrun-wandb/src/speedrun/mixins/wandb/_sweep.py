"""W&B sweeps: ``WandBSweepMixin`` (create or join a sweep) and ``SweepRunner`` (an agent)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from speedrun import ConfigError, is_main_process
from speedrun.ext import (
    CONFIGURATIONS,
    atomic_write_text,
    dumps_yaml,
    load_mapping,
    parse_arguments,
)

from ._connect import (
    WandBInitError,
    base_url,
    check_reachable,
    load_wandb,
    resolve_mode,
)
from ._info import unflatten_key
from ._mixin import DEFAULT_INIT_TIMEOUT, WandBMixin

__all__ = ["SWEEP_FILE", "SweepRunner", "WandBSweepMixin"]

#: The sweep an experiment belongs to, in its ``Configurations/`` folder.
SWEEP_FILE = "wandb_sweep.yml"
RUN_NUMBER = "{WANDB_RUN_NUM}"
_MAX_RUNS = 1_000_000


def _require_server(what: str, mode: str, timeout: float) -> Any:
    wandb = load_wandb()
    if mode != "online":
        raise WandBInitError(
            f"{what} needs a W&B server, but W&B runs {mode} here (wandb/mode or WANDB_MODE). "
            f"Fix: run this step online (--config.wandb.mode online, WANDB_MODE=online) on a "
            f"machine that reaches the server; the sweep's runs may then log offline."
        )
    url = base_url(wandb)
    problem = check_reachable(url, timeout)
    if problem is not None:
        raise WandBInitError(
            f"{what} needs the W&B server {url}, which is unreachable: "
            f"{problem}. Fix: check the network and `wandb login`."
        )
    return wandb


def claim_directory(template: str) -> str:
    """The first ``template.format(WANDB_RUN_NUM=n)`` (n = 0, 1, ...) that this call creates.

    ``os.mkdir`` either creates the folder or fails, so concurrent runs never share one.
    """
    parent = os.path.dirname(template.format(WANDB_RUN_NUM=0)) or "."
    os.makedirs(parent, exist_ok=True)
    for number in range(_MAX_RUNS):
        candidate = template.format(WANDB_RUN_NUM=number)
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise ConfigError(f"every directory {template} up to {_MAX_RUNS} exists already")


def read_sweep_file(experiment_directory: str | None) -> dict[str, Any]:
    """``<dir>/Configurations/wandb_sweep.yml`` as a dict, or ``{}``."""
    if not experiment_directory:
        return {}
    path = os.path.join(experiment_directory, CONFIGURATIONS, SWEEP_FILE)
    return load_mapping(path) if os.path.isfile(path) else {}


class WandBSweepMixin(WandBMixin):
    """:class:`WandBMixin` plus W&B sweeps: ``class Train(WandBSweepMixin, BaseExperiment)``
    (it extends ``auto_setup``, so it comes before ``BaseExperiment``).

    - ``python train.py experiments/SWEEP --wandb.sweep --wandb.sweep_config sweep.yml``
      creates a sweep on the W&B server (online only) and records it in
      ``Configurations/wandb_sweep.yml``.
    - ``python train.py "experiments/run-{WANDB_RUN_NUM}" --inherit experiments/SWEEP`` (what
      the sweep's ``command`` runs, through ``wandb agent`` or :class:`SweepRunner`) takes the
      next free run number, inherits the config and the sweep file, and after W&B starts
      writes the sweep's parameters (``a__b`` keys) into its configuration
      (:meth:`update_configuration_from_wandb`).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        before = mro[: mro.index(WandBSweepMixin)]
        if any(klass.__name__ == "BaseExperiment" for klass in before):
            raise TypeError(
                f"{cls.__name__}: WandBSweepMixin extends BaseExperiment's auto_setup and "
                f"parse_experiment_directory, so it must come before BaseExperiment in the "
                f"bases. Fix: class {cls.__name__}(WandBSweepMixin, BaseExperiment)"
            )

    def parse_experiment_directory(self) -> WandBSweepMixin:
        """The experiment directory from the command line; ``{WANDB_RUN_NUM}`` in it becomes the
        first free run number."""
        positionals = parse_arguments(sys.argv).positionals  # what record_args() parses
        template = positionals[0] if positionals else None
        if template is None or RUN_NUMBER not in template:
            super().parse_experiment_directory()
            return self
        if not is_main_process():
            raise ConfigError(
                f"{template}: {RUN_NUMBER} directories are claimed by one "
                f"process; pass the claimed directory to every rank"
            )
        self.experiment_directory = claim_directory(template)
        return self

    def auto_setup(
        self, update_git_revision: bool = True, dump_configuration: bool = True
    ) -> WandBSweepMixin:
        """``BaseExperiment.auto_setup``, then :meth:`setup_wandb_sweep`."""
        super().auto_setup(update_git_revision, dump_configuration)
        if is_main_process():
            self.setup_wandb_sweep()
        return self

    @property
    def wandb_sweep_file(self) -> str:
        """``Configurations/wandb_sweep.yml`` of this experiment."""
        if self.experiment_directory is None:
            raise ConfigError(
                "the sweep file lives in the experiment directory, but there is "
                "none yet: call auto_setup() first"
            )
        return os.path.join(self.experiment_directory, CONFIGURATIONS, SWEEP_FILE)

    @property
    def wandb_sweep_info(self) -> dict[str, Any]:
        """The sweep this experiment belongs to (``sweep_id``, ``project``, ``entity``,
        ``config``), or ``{}``."""
        return read_sweep_file(self.experiment_directory)

    def setup_wandb_sweep(self) -> WandBSweepMixin:
        """Create the sweep (``--wandb.sweep``) or take the ``--inherit`` run's sweep file."""
        if self._wandb_flag("wandb.sweep"):
            self.create_wandb_sweep()
        elif not os.path.isfile(self.wandb_sweep_file):
            inherited = read_sweep_file(self._wandb_inherited_directory())
            if inherited:
                self._write_sweep_file(inherited)
        return self

    def create_wandb_sweep(self, sweep_config: Mapping[str, Any] | str | None = None) -> str:
        """Create a W&B sweep (default config: ``--wandb.sweep_config FILE``); returns its id."""
        if sweep_config is None:
            sweep_config = self.get_arg("wandb.sweep_config")
            if sweep_config is None:
                raise ConfigError(
                    "--wandb.sweep needs --wandb.sweep_config FILE: the W&B sweep "
                    "configuration (method, metric, parameters) as YAML"
                )
        if isinstance(sweep_config, str):
            sweep_config = load_mapping(sweep_config)
        timeout = float(self.config_value("wandb/init_timeout"))
        wandb = _require_server(
            "Creating a W&B sweep", resolve_mode(self.config_value("wandb/mode")), timeout
        )
        project = self._wandb_setting("project", "WANDB_PROJECT")
        entity = self._wandb_setting("entity", "WANDB_ENTITY")
        sweep_id = str(wandb.sweep(dict(sweep_config), entity=entity, project=project))
        self._write_sweep_file(
            {
                "sweep_id": sweep_id,
                "project": project,
                "entity": entity,
                "config": dict(sweep_config),
            }
        )
        return sweep_id

    def _write_sweep_file(self, info: Mapping[str, Any]) -> None:
        path = self.wandb_sweep_file
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write_text(path, dumps_yaml(dict(info)))

    def initialize_wandb(self, resume: bool | None = None) -> WandBSweepMixin:
        """Start W&B; in a sweep run, then take the sweep's parameters into the config."""
        super().initialize_wandb(resume)
        run = self._wandb.run
        if run is not None and getattr(run, "sweep_id", None):
            self.update_configuration_from_wandb()
        return self

    def update_configuration_from_wandb(self, dump_configuration: bool = True) -> WandBSweepMixin:
        """Set every W&B config value (``a__b`` -> ``a/b``) in the experiment's config."""
        run = self.wandb_run
        if run is None:
            return self
        changed = False
        for key, value in dict(run.config).items():
            if key.startswith("_"):
                continue
            path = unflatten_key(key)
            if self.get(path) != value:
                self.set(path, value)
                changed = True
        if changed and dump_configuration:
            self.dump_configuration()
        return self


class SweepRunner:
    """Run a W&B sweep's trials in this process: ``SweepRunner(Train).run()``.

    Each trial builds ``experiment_class()`` (which reads the command line as usual: give it
    an experiment directory with ``{WANDB_RUN_NUM}`` and ``--inherit`` the sweep's
    directory) and calls its ``run()``. The sweep is ``sweep_id``, or the one recorded in
    ``sweep_directory``'s ``Configurations/wandb_sweep.yml``. Needs a reachable W&B server.
    """

    def __init__(
        self,
        experiment_class: Callable[[], Any],
        sweep_id: str | None = None,
        sweep_directory: str | None = None,
        project: str | None = None,
        entity: str | None = None,
        count: int | None = None,
        init_timeout: float = DEFAULT_INIT_TIMEOUT,
    ) -> None:
        info = read_sweep_file(sweep_directory)
        self.experiment_class = experiment_class
        self.sweep_id = sweep_id or info.get("sweep_id")
        self.project = project or info.get("project")
        self.entity = entity or info.get("entity")
        self.count = count
        self.init_timeout = init_timeout
        if not self.sweep_id:
            raise ConfigError(
                f"SweepRunner needs a sweep: pass sweep_id=... or the "
                f"sweep_directory of a run created with --wandb.sweep (got "
                f"{sweep_directory!r}, which has no {SWEEP_FILE})"
            )

    def run_one(self) -> Any:
        """One trial: build the experiment and run it."""
        return self.experiment_class().run()

    def run(self) -> None:
        """Ask the sweep for trials (at most ``count``) and run them one after another."""
        wandb = _require_server("Running a W&B sweep agent", resolve_mode(None), self.init_timeout)
        wandb.agent(
            str(self.sweep_id),
            function=self.run_one,
            project=self.project,
            entity=self.entity,
            count=self.count,
        )
