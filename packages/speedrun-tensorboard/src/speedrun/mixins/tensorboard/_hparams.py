"""Hyperparameters for TensorBoard's HParams view: the config flattened to slash paths, the
keys ``tensorboard/hparams`` selects and the metric tags ``tensorboard/hparams_metrics`` lists."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from speedrun import ConfigError

__all__ = ["flatten_hparams", "hparams_metric_tags", "select_hparams", "write_run_hparams"]


def _hparam_value(value: Any) -> bool | int | float | str | None:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value
    item = getattr(value, "item", None)  # NumPy scalars, 0-d arrays and tensors
    if callable(item) and getattr(value, "ndim", None) == 0:
        converted = item()
        if isinstance(converted, (bool, int, float)):
            return converted
    if isinstance(value, (list, tuple)):
        return repr(list(value))
    return str(value)


def flatten_hparams(config: Mapping[Any, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested config into ``{'training/lr': 0.1, ...}`` with HParams-compatible values.

    Booleans, numbers and strings stay; ``None`` values are left out (TensorBoard has no
    "none" hyperparameter); lists become their ``repr`` (``'[64, 128]'``), so each distinct
    list is one category; other objects become ``str(value)``. Empty mappings are left out.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_hparams(value, path + "/"))
            continue
        converted = _hparam_value(value)
        if converted is not None:
            flat[path] = converted
    return flat


def select_hparams(config: Mapping[Any, Any], selection: Any, key: str) -> dict[str, Any]:
    """The flattened ``config`` restricted to ``selection`` (the value of config ``key``).

    ``None`` or ``True`` selects everything; a list of slash paths selects those keys, a path
    naming a mapping its whole subtree (``training`` selects ``training/lr``, ...). Paths that
    are not in the config are reported in one warning.
    """
    flat = flatten_hparams(config)
    if selection is None or selection is True:
        return flat
    if isinstance(selection, str):
        selection = [selection]
    if not isinstance(selection, (list, tuple)) or not all(
        isinstance(path, str) for path in selection
    ):
        raise ConfigError(
            f"config '{key}' selects the hyperparameters TensorBoard shows: true (all), false "
            f"(none) or a list of keys such as [training/lr, model]; got "
            f"{type(selection).__name__} {selection!r}"
        )
    chosen: dict[str, Any] = {}
    missing = []
    for path in selection:
        path = path.strip("/").replace(".", "/")
        found = {
            name: value
            for name, value in flat.items()
            if name == path or name.startswith(path + "/")
        }
        if not found:
            missing.append(path)
        chosen.update(found)
    if missing:
        warnings.warn(
            f"config '{key}' names {', '.join(map(repr, missing))}, not found in the "
            f"config (or only null there); known keys: {', '.join(sorted(flat))}",
            stacklevel=3,
        )
    return chosen


def hparams_metric_tags(value: Any, key: str) -> list[str]:
    """The scalar tags of config ``key`` (``tensorboard/hparams_metrics``): a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(tag, str) for tag in value):
        raise ConfigError(
            f"config '{key}' lists the scalar tags shown as HParams metrics, such as "
            f"[train/loss, val/accuracy]; got {type(value).__name__} {value!r}"
        )
    return list(value)


def write_run_hparams(
    writer: Any, hparams: Mapping[str, Any], metric_tags: list[str], step: int
) -> None:
    """Write a run's hyperparameters (``SessionStartInfo``) through a tensorboardX writer.

    With ``metric_tags``, an ``Experiment`` summary names them as the metric columns; without,
    TensorBoard takes every scalar tag of the runs as a metric (its last value).
    """
    from tensorboardX.summary import hparams as hparams_summaries

    experiment, start, _ = hparams_summaries(dict(hparams), dict.fromkeys(metric_tags, 0.0))
    if metric_tags:
        writer.file_writer.add_summary(experiment, step)
    writer.file_writer.add_summary(start, step)
