"""FirelightMixin's declared contract: ``firelight`` is checked at set-up (with the same
declaration InfernoMixin makes), visualizers stay out of checkpoints."""

from __future__ import annotations

import sys

import pytest

from speedrun import BaseExperiment, ConfigError
from speedrun.mixins.firelight import FirelightMixin


class Experiment(FirelightMixin, BaseExperiment):
    pass


def test_a_wrong_typed_key_fails_at_set_up(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(
        sys, "argv", ["train.py", str(tmp_path / "RUN-0"), "--config.firelight", "[1, 2]"]
    )
    with pytest.raises(
        ConfigError,
        match=r"config 'firelight' \(read by FirelightMixin\) "
        r"expects a value of type dict or str or null, got list \[1, 2\]",
    ):
        Experiment().auto_setup(update_git_revision=False)


def test_visualizers_are_not_checkpointed(tmp_path) -> None:
    experiment = Experiment(str(tmp_path / "RUN-0"))
    experiment.visualizer = object()  # visualizers hold functions: they cannot be pickled
    experiment._firelight_grid = (experiment.visualizer, object())
    assert not FirelightMixin.NOT_CHECKPOINTED & set(experiment._checkpoint_state())
    experiment.checkpoint()
    visualizer = experiment.visualizer
    experiment.load_from_checkpoint()
    assert experiment.visualizer is visualizer


def test_the_firelight_key_is_declared_alike_with_inferno() -> None:
    pytest.importorskip("speedrun.mixins.inferno")
    from speedrun.mixins.inferno import InfernoMixin

    class Both(InfernoMixin, FirelightMixin, BaseExperiment):
        pass

    assert Both().config_value("firelight") is None  # one default: the MRO is accepted
