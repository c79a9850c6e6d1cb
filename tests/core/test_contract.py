"""The mixin contract: NOT_CHECKPOINTED and CONFIG_KEYS, collected over the MRO."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from speedrun import BaseExperiment, ConfigError
from speedrun.ext import ConfigKey


class HandleMixin:
    NOT_CHECKPOINTED = frozenset({"_handle"})
    CONFIG_KEYS = (
        ConfigKey(
            "handle/every",
            10,
            "How often.",
            kinds=(int,),
            check=lambda value: None if value > 0 else "a positive int",
        ),
        ConfigKey("handle/name", None, "A name.", kinds=(str, type(None))),
    )


class Experiment(HandleMixin, BaseExperiment):
    NOT_CHECKPOINTED = frozenset({"_scratch"})


def test_not_checkpointed_is_collected_over_the_mro(tmp_path) -> None:
    experiment = Experiment(tmp_path / "RUN")
    experiment._handle = "open file"
    experiment._scratch = "scratch"
    experiment.kept = 1
    experiment.register_unpickleable("_runtime")
    experiment._runtime = "runtime"
    state = experiment._checkpoint_state()
    assert "kept" in state
    assert not {"_handle", "_scratch", "_runtime", "_tree"} & set(state)
    experiment.checkpoint()
    experiment._handle, experiment.kept = "new file", 2
    experiment.load_from_checkpoint()
    assert (experiment._handle, experiment.kept) == ("new file", 1)  # kept, restored


def test_config_value_gives_the_declared_default_or_the_validated_value(tmp_path) -> None:
    experiment = Experiment(tmp_path / "RUN")
    assert experiment.config_value("handle/every") == 10
    assert experiment.config_value("training/checkpoint_keep") is None  # BaseExperiment's
    experiment.set("handle/every", 3)
    assert experiment.config_value("handle/every") == 3
    experiment.set("handle/every", True)
    with pytest.raises(
        ConfigError,
        match=r"config 'handle/every' \(read by HandleMixin\) "
        r"expects a value of type int, got bool True\. Fix it in "
        r"train_config.yml or pass --config.handle.every VALUE \(default: 10\)",
    ):
        experiment.config_value("handle/every")
    experiment.set("handle/every", -1)
    with pytest.raises(ConfigError, match="expects a positive int, got int -1"):
        experiment.config_value("handle/every")
    with pytest.raises(KeyError, match="'handle/other' is not declared"):
        experiment.config_value("handle/other")


def test_two_defaults_for_one_key_are_refused() -> None:
    class Other:
        CONFIG_KEYS = (ConfigKey("handle/every", 5),)

    class Both(Other, HandleMixin, BaseExperiment):
        pass

    with pytest.raises(
        TypeError,
        match="'handle/every' is declared by HandleMixin "
        r"\(default 10\) and Other \(default 5\)",
    ):
        Both().config_value("handle/every")


def test_a_wrong_value_fails_at_set_up(tmp_path) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        "from speedrun import BaseExperiment\n"
        "class E(BaseExperiment):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.auto_setup(update_git_revision=False)\n"
        "E()\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "RUN"),
            "--config.training.checkpoint_every",
            "'often'",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "config 'training/checkpoint_every' (read by BaseExperiment) expects" in result.stderr


def test_speedrun_mixins_lists_the_declared_keys() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "speedrun", "mixins", "--keys", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    keys = {row["path"]: row for row in json.loads(result.stdout)["config_keys"]}
    assert keys["training/checkpoint_every"]["owner"] == "BaseExperiment"
    assert keys["speedrun/preemption_signals"]["default"] == "['SIGTERM', 'SIGUSR1']"


def test_a_config_key_needs_a_slash_path() -> None:
    with pytest.raises(ValueError, match="Expected a slash path"):
        ConfigKey("/training/lr")


class _BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr today")


def test_recorded_keys_are_plain_json_and_yaml_data() -> None:
    import math

    import yaml

    from speedrun.experiment._contract import recorded_keys

    cyclic: list[object] = [1]
    cyclic.append(cyclic)

    class OddDefaults(BaseExperiment):
        CONFIG_KEYS = (
            ConfigKey("odd/shape", (2, (3, 4)), "A tuple.", kinds=(list, tuple)),
            ConfigKey("odd/nested", {"a": [1, 2.5, None, True, "x"]}, "Plain nesting."),
            ConfigKey("odd/nan", math.nan, "Not JSON."),
            ConfigKey("odd/int_keys", {1: "one"}, "Not a string key."),
            ConfigKey("odd/cyclic", cyclic, "Never ends."),
            ConfigKey("odd/object", HandleMixin, "A class."),
            ConfigKey("odd/broken", _BrokenRepr(), "repr raises."),
        )

    rows = {row["path"]: row for row in recorded_keys(OddDefaults)}
    assert list(rows) == sorted(rows)
    assert rows["odd/shape"] == {
        "path": "odd/shape",
        "default": [2, [3, 4]],
        "kinds": "list or tuple",
        "owner": "OddDefaults",
        "doc": "A tuple.",
    }
    assert rows["odd/nested"]["default"] == {"a": [1, 2.5, None, True, "x"]}
    assert "default_is_repr" not in rows["odd/nested"]
    assert rows["odd/nan"]["default"] == "nan"
    assert rows["odd/int_keys"]["default"] == "{1: 'one'}"
    assert rows["odd/cyclic"]["default"] == "[1, [...]]"
    assert rows["odd/object"]["default"] == repr(HandleMixin)
    assert rows["odd/broken"]["default"].startswith("<_BrokenRepr: repr failed: RuntimeError(")
    for path in ("odd/nan", "odd/int_keys", "odd/cyclic", "odd/object", "odd/broken"):
        assert rows[path]["default_is_repr"] is True, path
    assert rows["training/checkpoint_every"]["owner"] == "BaseExperiment"
    assert rows["speedrun/preemption_signals"]["default"] == ["SIGTERM", "SIGUSR1"]
    listed = list(rows.values())
    assert json.loads(json.dumps(listed, allow_nan=False)) == listed
    assert yaml.safe_load(yaml.safe_dump(listed)) == listed
