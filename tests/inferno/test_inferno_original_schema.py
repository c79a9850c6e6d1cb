"""InfernoMixin reads the original speedrun's config schema, written exactly as configs in the
wild have it: ``trainer/criterion: Name``, ``optimizer: Adam`` + ``optimizer_kwargs``, ..."""

import os
import warnings

import pytest

pytest.importorskip("inferno", reason="pip install --no-deps inferno-pytorch==0.1.7")
torch = pytest.importorskip("torch")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from speedrun import BaseExperiment, ConfigError
from speedrun.mixins.inferno import InfernoMixin

# Verbatim from issue 15 (the firelight key is optional and left out).
ORIGINAL_CONFIG = """\
device: cpu
trainer:
  criterion: CrossEntropyLoss            # a name from torch.nn / inferno
  metric: CategoricalError               # optional
  optimizer: Adam
  optimizer_kwargs: {lr: 0.01}
  max_iterations: 60                     # or max_epochs
  intervals:
    validate_every: {frequency: '20 iterations', for_num_iterations: 2}
    save_every: '20 iterations'
  tensorboard: {log_scalars_every: '1 iteration', log_images_every: 'never'}
  callbacks: {essentials: {NaNDetector: {noargs: true}}}
"""


def _blobs(size, seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(size) % 2
    inputs = 0.3 * torch.randn(size, 8, generator=generator) + labels.float().view(-1, 1)
    return TensorDataset(inputs, labels)


class Original(InfernoMixin, BaseExperiment):
    """The original's way: model and loaders from code, everything else from the config."""

    def __init__(self, directory):
        super().__init__(directory)
        self.val_loader_builds = 0

    def build_model(self):
        return torch.nn.Linear(8, 2)

    def build_train_loader(self):
        return DataLoader(_blobs(64, 1), batch_size=8, shuffle=True)

    def build_val_loader(self):
        self.val_loader_builds += 1
        return DataLoader(_blobs(32, 2), batch_size=8)


def _experiment(tmp_path, text=ORIGINAL_CONFIG):
    experiment = Original(str(tmp_path / "experiment"))
    path = os.path.join(experiment.configuration_directory, "train_config.yml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    experiment.read_config_file()
    return experiment


def test_the_original_schema_trains_validates_saves_and_logs(tmp_path):
    torch.manual_seed(0)
    experiment = _experiment(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # one schema given: nothing to warn about
        trainer = experiment.train()
    experiment.execute_hooks("clean_up")

    assert trainer.iteration_count == 60 and experiment.step == 60
    assert isinstance(trainer.criterion, torch.nn.CrossEntropyLoss)
    assert type(trainer.metric).__name__ == "CategoricalError"
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    assert trainer.optimizer.param_groups[0]["lr"] == 0.01
    assert experiment.val_loader_builds == 1
    assert sorted(
        name for name in os.listdir(experiment.checkpoint_directory) if not name.startswith(".")
    ) == [
        "best_checkpoint.pytorch",
        "checkpoint.pytorch",
    ]
    assert any(
        type(callback).__name__ == "NaNDetector"
        for callback in trainer.callbacks._callback_registry["end_of_training_iteration"]
    )

    accumulator = EventAccumulator(experiment.log_directory, size_guidance={"scalars": 0})
    accumulator.Reload()
    assert len(accumulator.Scalars("training_loss")) == 60  # log_scalars_every: '1 iteration'
    validation = accumulator.Scalars("validation_loss_averaged")
    assert [event.step for event in validation] == [20, 40, 60]
    errors = [event.value for event in accumulator.Scalars("validation_error_averaged")]
    assert len(errors) == 3 and errors[-1] <= 0.1  # the blobs are easy to tell apart
    assert accumulator.Tags()["images"] == []  # log_images_every: 'never'


def test_when_both_forms_are_given_todays_wins_with_a_warning(tmp_path):
    experiment = _experiment(
        tmp_path, ORIGINAL_CONFIG.replace("  optimizer: Adam\n", "  optimizer: {SGD: {lr: 0.5}}\n")
    )
    experiment.set("criterion", {"MSELoss": {}})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        criterion, optimizer = experiment.criterion, experiment.trainer.optimizer
    assert isinstance(criterion, torch.nn.MSELoss)
    messages = " | ".join(str(item.message) for item in record)
    assert "'criterion' is used, 'trainer/criterion'" in messages
    assert "trainer/optimizer_kwargs is ignored" in messages
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["lr"] == 0.5


def test_kwargs_without_a_name_are_refused(tmp_path):
    experiment = _experiment(
        tmp_path,
        ORIGINAL_CONFIG.replace(
            "  criterion: CrossEntropyLoss            # a name from torch.nn / inferno\n",
            "  criterion_kwargs: {reduction: sum}\n",
        ),
    )
    with pytest.raises(ConfigError, match="trainer/criterion_kwargs is set but trainer/criterion"):
        experiment.criterion
