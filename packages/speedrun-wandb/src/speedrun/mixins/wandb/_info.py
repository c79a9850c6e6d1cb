"""``Logs/wandb_info.yml`` (the experiment's W&B run), the flattened config, run ids."""

from __future__ import annotations

import glob
import os
import secrets
import string
from collections.abc import Mapping
from typing import Any

from speedrun import ConfigError
from speedrun.ext import LOGS, atomic_write_text, dumps_yaml, load_yaml

__all__ = [
    "INFO_FILE",
    "flatten",
    "new_run_id",
    "offline_directories",
    "read_info",
    "sync_command",
    "unflatten_key",
    "write_info",
]

INFO_FILE = "wandb_info.yml"
SEPARATOR = "__"
_ID_ALPHABET = string.ascii_lowercase + string.digits


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a__b': 1}`` (W&B's config and sweeps are flat)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{SEPARATOR}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def unflatten_key(key: str) -> str:
    """``'a__b'`` -> ``'a/b'`` (the config path of a flattened key)."""
    return key.replace(SEPARATOR, "/")


def new_run_id() -> str:
    """A fresh W&B run id (8 characters of a-z0-9, as W&B makes them)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def info_path(experiment_directory: str) -> str:
    return os.path.join(experiment_directory, LOGS, INFO_FILE)


def read_info(experiment_directory: str | None) -> dict[str, Any]:
    """The contents of ``<dir>/Logs/wandb_info.yml``, or ``{}`` when there is none."""
    if not experiment_directory:
        return {}
    path = info_path(experiment_directory)
    if not os.path.isfile(path):
        return {}
    info = load_yaml(path)
    if not isinstance(info, Mapping):
        raise ConfigError(
            f"{path} should hold a mapping with wandb_run_id; it holds "
            f"{type(info).__name__}. Delete it to start a new W&B run."
        )
    return dict(info)


def write_info(experiment_directory: str, info: Mapping[str, Any]) -> str:
    """Write ``Logs/wandb_info.yml`` atomically (temp file, fsync, rename); return its path."""
    path = info_path(experiment_directory)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_text(path, dumps_yaml(dict(info)))
    return path


def offline_directories(wandb_directory: str, run_id: str) -> list[str]:
    """The offline run folders of ``run_id`` under ``wandb_directory``, oldest first."""
    pattern = os.path.join(wandb_directory, "wandb", f"offline-run-*-{run_id}")
    return sorted(path for path in glob.glob(pattern) if os.path.isdir(path))


def sync_command(
    run_id: str, project: str | None, entity: str | None, directories: list[str]
) -> str:
    """The ``wandb sync`` command that uploads every offline attempt of a run, in order."""
    parts = ["wandb", "sync", "--id", run_id]
    if project:
        parts += ["-p", project]
    if entity:
        parts += ["-e", entity]
    return " ".join(parts + [_quote(os.path.abspath(path)) for path in directories])


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
