import os
import sys

import pytest


@pytest.fixture
def argv(monkeypatch, tmp_path):
    """Set ``sys.argv`` for an experiment started as ``python <tmp>/train.py ...``."""
    script = str(tmp_path / "train.py")

    def set_argv(*tokens):
        monkeypatch.setattr(sys, "argv", [script, *map(str, tokens)])

    monkeypatch.chdir(tmp_path)
    yield set_argv
    from speedrun.distributed import _preemption

    _preemption.uninstall()
    _preemption.reset()


@pytest.fixture
def write(tmp_path):
    """Write a text file under tmp_path and return its path."""

    def write_file(relative, text):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write_file


@pytest.fixture(autouse=True)
def _no_git_from_outside(monkeypatch):
    # Keep provenance lookups inside tmp folders from walking up into the project's own repo.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", os.path.dirname(os.getcwd()))


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch, tmp_path_factory):
    # `speedrun mixins --keys` and completion cache the declared config keys under
    # XDG_CACHE_HOME: never in the user's own cache. Core's tests see core's keys only,
    # whatever mixins are installed beside it.
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    seed_core_keys_cache(cache)


def seed_core_keys_cache(cache):
    """Write the declared-keys cache under ``cache`` as if only speedrun-core were installed."""
    import json

    from speedrun.cli import _keys

    rows = [_keys._row(key, "BaseExperiment", "speedrun-core") for key in _keys.CORE_CONFIG_KEYS]
    path = os.path.join(str(cache), "speedrun", "config-keys.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(
            {"format": _keys._CACHE_FORMAT, "fingerprint": _keys._fingerprint(), "keys": rows},
            handle,
        )
