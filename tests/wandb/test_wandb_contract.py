"""WandBMixin's declared contract: its config keys are checked at set-up, the per-process W&B
state stays out of checkpoints and is not overwritten by a load."""

from __future__ import annotations

import sys

import pytest

from speedrun import BaseExperiment, ConfigError
from speedrun.mixins.wandb import WandBMixin, WandBSweepMixin


class Experiment(WandBMixin, BaseExperiment):
    pass


def test_a_wrong_typed_key_fails_at_set_up(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(
        sys, "argv", ["train.py", str(tmp_path / "RUN-0"), "--config.wandb.init_timeout", "soon"]
    )
    with pytest.raises(
        ConfigError,
        match=r"config 'wandb/init_timeout' \(read by WandBMixin\) "
        r"expects a value of type int or float, got str 'soon'.*"
        r"--config\.wandb\.init_timeout VALUE \(default: 30\.0\)",
    ):
        Experiment().auto_setup(update_git_revision=False)


def test_a_bad_choice_names_the_choices(tmp_path) -> None:
    experiment = Experiment(str(tmp_path / "RUN-0"))
    experiment.set("wandb/resume_steps", "forget")
    with pytest.raises(ConfigError, match="'wandb/resume_steps'.*expects one of keep, rewind"):
        experiment.config_value("wandb/resume_steps")


def test_the_wandb_state_is_not_checkpointed(tmp_path) -> None:
    experiment = Experiment(str(tmp_path / "RUN-0"))
    state = experiment._wandb
    state.last_step = 41
    assert "_wandb_state" in vars(experiment)
    assert "_wandb_state" not in experiment._checkpoint_state()
    experiment.checkpoint()
    state.last_step = 99
    experiment.load_from_checkpoint()
    assert experiment._wandb is state and state.last_step == 99


def test_the_sweep_mixin_reads_the_same_keys() -> None:
    class Sweep(WandBSweepMixin, BaseExperiment):
        pass

    assert Sweep().config_value("wandb/init_timeout") == 30.0
    assert "_wandb_state" in Sweep.NOT_CHECKPOINTED
