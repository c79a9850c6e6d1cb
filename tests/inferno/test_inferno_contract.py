"""InfernoMixin's declared contract: its config keys are checked at set-up, the trainer and
the loaders stay out of checkpoints and are not overwritten by a load."""

from __future__ import annotations

import sys

import pytest

from speedrun import BaseExperiment, ConfigError
from speedrun.mixins.inferno import InfernoMixin


class Experiment(InfernoMixin, BaseExperiment):
    pass


def test_a_wrong_typed_key_fails_at_set_up(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(
        sys, "argv", ["train.py", str(tmp_path / "RUN-0"), "--config.trainer.num_targets", "two"]
    )
    with pytest.raises(
        ConfigError,
        match=r"config 'trainer/num_targets' \(read by "
        r"InfernoMixin\) expects a value of type int, got str 'two'",
    ):
        Experiment().auto_setup(update_git_revision=False)


def test_a_bad_limit_names_what_is_expected(tmp_path) -> None:
    experiment = Experiment(str(tmp_path / "RUN-0"))
    experiment.set("trainer/max_epochs", "ten")
    with pytest.raises(
        ConfigError,
        match=r"'trainer/max_epochs'.*expects a whole number or "
        r"'inf', got str 'ten'",
    ):
        experiment.config_value("trainer/max_epochs")


def test_trainer_and_loaders_are_not_checkpointed(tmp_path) -> None:
    experiment = Experiment(str(tmp_path / "RUN-0"))
    for name in InfernoMixin.NOT_CHECKPOINTED:
        setattr(experiment, name, object())  # what cannot be pickled, or is this run's
    experiment.kept = 1
    state = experiment._checkpoint_state()
    assert not InfernoMixin.NOT_CHECKPOINTED & set(state)
    experiment.checkpoint()
    loader = experiment._train_loader
    experiment.load_from_checkpoint()
    assert experiment._train_loader is loader  # a load keeps this run's loader
    assert experiment._trainer is None  # ... and the post_load hook drops the trainer
