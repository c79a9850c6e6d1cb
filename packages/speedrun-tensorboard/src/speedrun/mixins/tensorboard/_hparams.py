"""Hyperparameters for TensorBoard's HParams view: the config flattened to slash paths."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["flatten_hparams"]


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
