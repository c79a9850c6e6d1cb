"""Sweep files: a base configuration plus a grid and/or a list of overrides, one run per point.

A sweep file is YAML (read with speedrun's safe loader)::

    name: lr-sweep                          # default: the file name without .yml
    script: examples/regression/train.py    # the experiment script (required)
    args: [--dispatch, train]               # more command-line arguments for every point
    base: examples/regression/base_config.yml   # a .yml config or an experiment directory
    directory: experiments/lr-sweep         # default: experiments/<name>
    strict: false                           # true: overrides must match the base's keys and types
    grid:                                   # every combination of these values
      training.lr: [0.001, 0.003]
      model.hidden: [[32], [64, 64]]
    points:                                 # and/or explicit override sets
      - {training.num_steps: 800}
      - --config.training.num_steps 1600 --config.seed 1
    executor: {cluster: slurm, slurm_partition: gpu, timeout_min: 240, gpus_per_node: 1}

Relative paths are relative to the sweep file's folder. Keys are config paths written with dots
(as on the command line) or slashes. With both ``grid`` and ``points``, every point is combined
with every grid combination. Each point becomes a normal experiment directory
``<directory>/<index>-<key=value...>/`` whose ``Configurations/train_config.yml`` is the base with
the point's overrides applied and recorded under ``speedrun/sweep``.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from speedrun import ConfigError, ExperimentDirectoryError

__all__ = [
    "MANIFEST_NAME",
    "JOBS_FOLDER",
    "Sweep",
    "SweepPoint",
    "expand_points",
    "load_sweep",
    "normalize_key",
    "point_config",
]

MANIFEST_NAME = "sweep.yml"
"""The resolved sweep, written into the sweep directory when it is submitted."""

JOBS_FOLDER = "jobs"
"""submitit's folder (job pickles, stdout and stderr of every job) inside the sweep directory."""

CONFIG_FILE = os.path.join("Configurations", "train_config.yml")
_KNOWN_KEYS = (
    "name",
    "script",
    "args",
    "base",
    "directory",
    "strict",
    "grid",
    "points",
    "executor",
)
_SLUG_LIMIT = 60


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep.

    Attributes
    ----------
    index : int
        Position in the sweep (0-based).
    name : str
        Folder name: ``<index>-<leaf key>=<value>_...`` (e.g. ``003-lr=0.01_hidden=64-64``).
    overrides : dict
        Config path (``training/lr``) to value, in the order they are applied.
    directory : str
        The point's experiment directory (absolute).
    """

    index: int
    name: str
    overrides: dict[str, Any]
    directory: str


@dataclass
class Sweep:
    """A resolved sweep file (see the module docs); every path is absolute."""

    name: str
    script: str
    directory: str
    points: list[SweepPoint]
    base: str | None = None
    args: list[str] = field(default_factory=list)
    executor: dict[str, Any] = field(default_factory=dict)
    strict: bool = False
    source: str | None = None

    @property
    def jobs_folder(self) -> str:
        """``<directory>/jobs``: submitit's pickles and the jobs' stdout/stderr."""
        return os.path.join(self.directory, JOBS_FOLDER)

    @property
    def manifest_path(self) -> str:
        """``<directory>/sweep.yml``."""
        return os.path.join(self.directory, MANIFEST_NAME)


def _fail(source: str, where: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {where}: {message}")


def normalize_key(key: Any, source: str = "<sweep>", where: str = "key") -> str:
    """A config path in slash form: ``training.lr``, ``--config.training.lr`` -> ``training/lr``."""
    if not isinstance(key, str) or not key.strip():
        raise _fail(source, where, f"expected a config path such as training.lr, got {key!r}")
    text = key.strip()
    for prefix in ("--config.", "config."):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    path = text if "/" in text else text.replace(".", "/")
    parts = path.split("/")
    if any(not part for part in parts):
        raise _fail(
            source,
            where,
            f"expected a config path such as training.lr, got {key!r} "
            "(empty part between separators)",
        )
    return "/".join(parts)


def _point_overrides(entry: Any, source: str, where: str) -> dict[str, Any]:
    """One ``points`` entry: a mapping of keys to values, or a string of --config flags."""
    if isinstance(entry, dict):
        if not entry:
            raise _fail(source, where, "an empty mapping; give at least one key: value")
        overrides: dict[str, Any] = {}
        for key, value in entry.items():
            overrides[normalize_key(key, source, f"{where} key {key!r}")] = value
        return overrides
    if isinstance(entry, str):
        from speedrun.ext import parse_arguments

        try:
            tokens = shlex.split(entry)
        except ValueError as error:
            raise _fail(source, where, f"cannot split {entry!r} into arguments: {error}") from None
        args = parse_arguments(["sweep", *tokens])
        other_flags = [name for name in args.flags if not name.startswith("config.")]
        if args.positionals or other_flags or not args.overrides:
            raise _fail(source, where, f"expected only --config.a.b VALUE overrides, got {entry!r}")
        return dict(args.parsed_overrides())
    raise _fail(
        source,
        where,
        f"expected a mapping (training.lr: 0.1) or a string of --config "
        f"flags, got {type(entry).__name__} {entry!r}",
    )


def expand_points(
    grid: Any = None, points: Any = None, source: str = "<sweep>"
) -> list[dict[str, Any]]:
    """The override sets of a sweep: every ``grid`` combination, combined with every ``points``
    entry (either alone works; neither gives one point without overrides)."""
    grid_sets: list[dict[str, Any]] = [{}]
    if grid is not None:
        if not isinstance(grid, dict) or not grid:
            raise _fail(
                source,
                "grid",
                f"expected a mapping of config paths to lists of values, got {grid!r}",
            )
        keys, choices = [], []
        for key, values in grid.items():
            path = normalize_key(key, source, f"grid key {key!r}")
            if not isinstance(values, list) or not values:
                raise _fail(
                    source,
                    f"grid/{key}",
                    f"expected a non-empty list of values to try, got {values!r}; "
                    f"write [{values!r}] for one value",
                )
            keys.append(path)
            choices.append(values)
        grid_sets = [
            dict(zip(keys, combination, strict=True)) for combination in itertools.product(*choices)
        ]
    point_sets: list[dict[str, Any]] = [{}]
    if points is not None:
        if not isinstance(points, list) or not points:
            raise _fail(
                source, "points", f"expected a non-empty list of override sets, got {points!r}"
            )
        point_sets = [
            _point_overrides(entry, source, f"points[{index}]")
            for index, entry in enumerate(points)
        ]
    expanded = []
    for index, point in enumerate(point_sets):
        for combination in grid_sets:
            both = sorted(set(point) & set(combination))
            if both:
                raise _fail(
                    source,
                    f"points[{index}]",
                    f"sets {', '.join(both)}, which the grid also sets; set each key in one place",
                )
            expanded.append({**combination, **point})
    seen: dict[str, int] = {}
    for index, overrides in enumerate(expanded):
        key = repr(sorted(overrides.items(), key=lambda item: item[0]))
        if key in seen:
            raise _fail(
                source,
                "points",
                f"points {seen[key]} and {index} have the same overrides "
                f"{overrides}; make them differ (e.g. by a seed)",
            )
        seen[key] = index
    return expanded


def _compact(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "-".join(_compact(item) for item in value) or "empty"
    if isinstance(value, dict):
        return "-".join(f"{key}{_compact(item)}" for key, item in value.items()) or "empty"
    return str(value)


def point_name(index: int, overrides: dict[str, Any]) -> str:
    """``<index>-<leaf>=<value>_...``, filesystem- and shell-friendly, at most ~64 characters."""
    slug = "_".join(
        f"{path.rsplit('/', 1)[-1]}={_compact(value)}" for path, value in overrides.items()
    )
    slug = re.sub(r"[^A-Za-z0-9.=+-]+", "_", slug).strip("_.")[:_SLUG_LIMIT].rstrip("_.")
    return f"{index:03d}-{slug}" if slug else f"{index:03d}"


def _resolve(folder: str, path: Any, source: str, where: str) -> str:
    if not isinstance(path, str) or not path.strip():
        raise _fail(source, where, f"expected a path, got {path!r}")
    return os.path.abspath(os.path.join(folder, os.path.expanduser(path)))


def _base_config_file(base: str, source: str) -> str:
    """The config file that ``base`` (a .yml file or an experiment directory) stands for."""
    if base.endswith((".yml", ".yaml")):
        if not os.path.isfile(base):
            raise _fail(
                source,
                "base",
                f"no such file {base}; expected a .yml config or an experiment directory",
            )
        return base
    candidate = os.path.join(base, CONFIG_FILE)
    if os.path.isfile(candidate):
        return candidate
    raise _fail(
        source,
        "base",
        f"expected a .yml config or an experiment directory holding "
        f"{CONFIG_FILE}, got {base} (no such file {candidate})",
    )


def load_sweep(path: str | os.PathLike[str]) -> Sweep:
    """Read and check a sweep file; relative paths are taken from the file's folder.

    Raises
    ------
    ConfigError
        For a missing or malformed file, an unknown key, a bad grid or point, a missing script
        or base; the message names the file, the key and the fix.
    """
    from speedrun.ext import load_mapping

    source = os.path.abspath(os.fspath(path))
    if not os.path.isfile(source):
        raise ConfigError(
            f"no sweep file at {source}: expected a YAML file with script, base "
            "and grid and/or points (see speedrun-sweep --help)"
        )
    spec = load_mapping(source)
    unknown = [key for key in spec if key not in _KNOWN_KEYS]
    if unknown:
        raise _fail(
            source,
            ", ".join(map(str, unknown)),
            f"unknown key(s); a sweep file has {', '.join(_KNOWN_KEYS)}",
        )
    folder = os.path.dirname(source)
    name = spec.get("name") or os.path.splitext(os.path.basename(source))[0]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._=+-]*", name):
        raise _fail(
            source,
            "name",
            f"expected a folder-friendly name (letters, digits, . _ = + -), got {name!r}",
        )
    if "script" not in spec:
        raise _fail(source, "script", "missing: name the experiment script, e.g. script: train.py")
    script = _resolve(folder, spec["script"], source, "script")
    if not os.path.isfile(script):
        raise _fail(source, "script", f"no such file {script}")
    args = spec.get("args", [])
    if isinstance(args, str):
        args = shlex.split(args)
    if not isinstance(args, list) or not all(isinstance(arg, (str, int, float)) for arg in args):
        raise _fail(source, "args", f"expected a list of command-line arguments, got {args!r}")
    args = [str(arg) for arg in args]
    reserved = [
        arg
        for arg in args
        if arg in ("--resume", "--purge", "--inherit") or arg.startswith("--config.")
    ]
    if reserved:
        raise _fail(
            source,
            "args",
            f"{', '.join(reserved)} cannot be given here: the sweep sets "
            "configs (use base, grid, points) and adds --resume itself",
        )
    base = None
    if spec.get("base") is not None:
        base = _base_config_file(_resolve(folder, spec["base"], source, "base"), source)
    directory = _resolve(
        folder, spec.get("directory", os.path.join("experiments", name)), source, "directory"
    )
    strict = spec.get("strict", False)
    if not isinstance(strict, bool):
        raise _fail(source, "strict", f"expected true or false, got {strict!r}")
    executor = spec.get("executor") or {}
    if not isinstance(executor, dict) or not all(isinstance(key, str) for key in executor):
        raise _fail(
            source, "executor", f"expected a mapping of submitit parameters, got {executor!r}"
        )
    overrides = expand_points(spec.get("grid"), spec.get("points"), source)
    points = [
        SweepPoint(
            index,
            point_name(index, values),
            values,
            os.path.join(directory, point_name(index, values)),
        )
        for index, values in enumerate(overrides)
    ]
    return Sweep(
        name=name,
        script=script,
        directory=directory,
        points=points,
        base=base,
        args=args,
        executor=dict(executor),
        strict=strict,
        source=source,
    )


def point_config(sweep: Sweep, point: SweepPoint) -> tuple[Any, list[str]]:
    """The configuration of ``point`` and the findings about its overrides.

    The base (if any) with the overrides applied, the sweep recorded under ``speedrun/sweep``
    and the script's git revision as ``auto_setup()`` records it. Findings list overrides that
    add keys or change types (a ConfigError with ``strict``).
    """
    from speedrun import Config
    from speedrun.ext import diff_overrides, git_state, load_mapping

    config = Config()
    if sweep.base is not None:
        config.replace(load_mapping(sweep.base))
    findings = diff_overrides(config, list(point.overrides.items()))
    if findings and sweep.strict:
        listing = "\n".join(f"  - {finding}" for finding in findings)
        raise ConfigError(
            f"{sweep.source or sweep.name}: strict: point {point.name} has "
            f"overrides that do not match the base config:\n{listing}\n"
            "Fix the key names or types, or set strict: false."
        )
    for path, value in point.overrides.items():
        config.assign(path, value)
    config.assign(
        "speedrun/sweep",
        {
            "name": sweep.name,
            "index": point.index,
            "point": point.name,
            "overrides": {path.replace("/", "."): value for path, value in point.overrides.items()},
            "base": sweep.base,
            "sweep_file": sweep.source,
        },
    )
    state = git_state(os.path.dirname(sweep.script))
    config.assign("git_rev", state.revision)
    config.assign("git_dirty", state.dirty)
    return config, findings


def existing_points(directory: str) -> list[str]:
    """Names of the experiment directories directly inside a sweep directory."""
    from speedrun.ext import is_experiment_directory

    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise ExperimentDirectoryError(
            f"the sweep directory {directory} is a file; expected a folder (or nothing) there. "
            "Fix: set directory: in the sweep file to another path."
        ) from None
    return [name for name in names if is_experiment_directory(os.path.join(directory, name))]
