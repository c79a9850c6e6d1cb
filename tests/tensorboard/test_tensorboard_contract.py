"""TensorboardMixin's declared contract: its config keys are checked at set-up, its writer
state stays out of checkpoints."""

from __future__ import annotations

import sys

import pytest

from speedrun import BaseExperiment, ConfigError
from speedrun.mixins.tensorboard import TensorboardMixin


class Experiment(TensorboardMixin, BaseExperiment):
    pass


def test_a_wrong_typed_key_fails_at_set_up(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(
        sys,
        "argv",
        ["train.py", str(tmp_path / "RUN-0"), "--config.tensorboard.flush_secs", "soon"],
    )
    with pytest.raises(
        ConfigError,
        match=r"config 'tensorboard/flush_secs' \(read by "
        r"TensorboardMixin\) expects a value of type int or float, got str 'soon'",
    ):
        Experiment().auto_setup(update_git_revision=False)


def test_writer_state_is_not_checkpointed(tmp_path) -> None:
    experiment = Experiment(str(tmp_path / "RUN-0"))
    experiment.log_scalar("loss", 1.0)
    experiment._tensorboard_hparams_logged = True
    assert TensorboardMixin.NOT_CHECKPOINTED <= set(vars(experiment))
    assert not TensorboardMixin.NOT_CHECKPOINTED & set(experiment._checkpoint_state())
    experiment.execute_hooks("clean_up")
