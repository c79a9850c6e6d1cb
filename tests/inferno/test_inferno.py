"""InfernoMixin: a real inferno Trainer, built from the configuration, training on CPU."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("inferno", reason="pip install --no-deps inferno-pytorch==0.1.7")
torch = pytest.importorskip("torch")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, Dataset, TensorDataset

from speedrun import BaseExperiment, ConfigError, ExperimentDirectoryError
from speedrun.mixins.inferno import InfernoMixin

WEIGHTS = [[1.0], [2.0], [-1.0], [0.5]]


class Regression(Dataset):
    """Noise-free linear regression, located by name from the configuration."""

    def __init__(self, size=64, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.inputs = torch.randn(size, 4, generator=generator)
        self.targets = self.inputs @ torch.tensor(WEIGHTS)

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, index):
        return self.inputs[index], self.targets[index]


class Blobs(Dataset):
    """Two well separated classes of 1x6x6 images (for metrics and image logging)."""

    def __init__(self, size=32, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(size) % 2
        noise = 0.1 * torch.randn(size, 1, 6, 6, generator=generator)
        self.images = noise + self.labels.float().view(-1, 1, 1, 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


class TinyNet(torch.nn.Module):
    def __init__(self, classes=2):
        super().__init__()
        self.linear = torch.nn.Linear(36, classes)

    def forward(self, images):
        return self.linear(images.flatten(1))


class Experiment(InfernoMixin, BaseExperiment):
    DATASET_LOCATIONS = [sys.modules[__name__]]
    MODEL_LOCATIONS = [sys.modules[__name__]]


def regression_config(**trainer):
    return {
        "device": "cpu",
        "model": {"torch.nn.Linear": {"in_features": 4, "out_features": 1}},
        "criterion": {"MSELoss": {}},
        "loader": {
            "dataset": {"Regression": {"size": 64, "seed": 1}},
            "batch_size": 16,
            "shuffle": True,
        },
        "val_loader": {"dataset": {"Regression": {"size": 32, "seed": 2}}, "batch_size": 32},
        "trainer": {
            "optimizer": {"Adam": {"lr": 0.05}},
            "max_iterations": 12,
            "intervals": {"validate_every": "4 iterations", "save_every": "4 iterations"},
            "tensorboard": {"log_scalars_every": "1 iterations", "log_images_every": "never"},
            **trainer,
        },
    }


def make(tmp_path, config, cls=Experiment):
    torch.manual_seed(0)
    experiment = cls(str(tmp_path / "experiment"))
    for key, value in config.items():
        experiment.set(key, value)
    experiment.dump_configuration()
    return experiment


def events(experiment):
    accumulator = EventAccumulator(experiment.log_directory, size_guidance={"scalars": 0})
    accumulator.Reload()
    return accumulator


def test_training_with_validation_lowers_the_loss_and_writes_weights_and_events(tmp_path):
    experiment = make(tmp_path, regression_config())
    trainer = experiment.train()
    experiment.execute_hooks("clean_up")

    assert trainer.iteration_count == 12
    assert experiment.step == 12
    assert experiment.epoch == trainer.epoch_count == 2
    assert sorted(
        name for name in os.listdir(experiment.checkpoint_directory) if not name.startswith(".")
    ) == ["best_checkpoint.pytorch", "checkpoint.pytorch"]

    accumulator = events(experiment)
    training = [event.value for event in accumulator.Scalars("training_loss")]
    validation = accumulator.Scalars("validation_loss_averaged")
    assert len(training) == 12
    assert [event.step for event in validation] == [4, 8, 12]
    assert validation[-1].value < validation[0].value
    assert sum(training[-3:]) / 3 < sum(training[:3]) / 3
    assert [event.value for event in accumulator.Scalars("learning_rate")] == pytest.approx(
        [0.05] * 12
    )
    text_tags = accumulator.Tags()["tensors"]
    assert "trainer/train_config.yml/text_summary" in text_tags

    # The checkpoint is inferno's: a fresh trainer loads it and continues from iteration 12.
    from speedrun.mixins.inferno._trainer import SpeedrunTrainer

    restored = SpeedrunTrainer(torch.nn.Linear(4, 1)).load(
        from_directory=experiment.checkpoint_directory
    )
    assert restored.iteration_count == 12
    assert isinstance(restored.optimizer, torch.optim.Adam)
    assert torch.equal(restored.model.weight, experiment.model.weight)


def test_metric_callbacks_and_classification_from_config(tmp_path):
    config = {
        "model": {"TinyNet": {}},
        "criterion": {"CrossEntropyLoss": {}},
        "metric": {"CategoricalError": {}},
        "loader": {"dataset": {"Blobs": {"size": 32}}, "batch_size": 8},
        "val_loader": {"dataset": {"Blobs": {"size": 16, "seed": 3}}, "batch_size": 16},
        "trainer": {
            "optimizer": {"SGD": {"lr": 0.5}},
            "intervals": {"validate_every": [1, "epochs"]},
            "max_epochs": 3,
            "callbacks": {
                "essentials": {"NaNDetector": {"noargs": True}},
                "scheduling": {"AutoLRDecay": {"factor": 0.5, "patience": "100 iterations"}},
            },
            "tensorboard": {
                "log_scalars_every": "1 iterations",
                "log_images_every": "never",
                "log_config": False,
            },
        },
    }
    experiment = make(tmp_path, config)
    trainer = experiment.train()
    experiment.execute_hooks("clean_up")
    names = {
        type(callback).__name__
        for callbacks in trainer.callbacks._callback_registry.values()
        for callback in callbacks
    }
    assert {"NaNDetector", "AutoLRDecay", "ExperimentStepCallback", "TensorboardXLogger"} <= names
    assert trainer.epoch_count == 3
    accumulator = events(experiment)
    errors = [event.value for event in accumulator.Scalars("validation_error_averaged")]
    assert errors and errors[-1] == 0.0
    assert accumulator.Scalars("training_error")
    assert not any(tag.endswith("text_summary") for tag in accumulator.Tags()["tensors"])


def test_user_build_steps_run_after_the_builtin_ones_in_a_defined_order(tmp_path):
    calls = []

    class Ordered(Experiment):
        def inferno_build_zeta(self):
            calls.append(("zeta", self.trainer.optimizer_is_defined))

        def inferno_build_alpha(self):
            calls.append(("alpha", "train" in self.trainer._loaders))

        def inferno_build_optimizer(self):
            calls.append(("optimizer", None))
            super().inferno_build_optimizer()

    experiment = make(tmp_path, regression_config(), Ordered)
    assert experiment.get_inferno_build_steps() == [
        "criterion",
        "metric",
        "optimizer",
        "intervals",
        "limits",
        "loaders",
        "tensorboard",
        "callbacks",
        "alpha",
        "zeta",
    ]
    assert experiment.trainer is experiment.trainer
    assert calls == [("optimizer", None), ("alpha", True), ("zeta", True)]
    experiment.execute_hooks("clean_up")

    class Reordered(Ordered):
        INFERNO_BUILD_ORDER = ("zeta",) + InfernoMixin.INFERNO_BUILD_ORDER

    assert Reordered.get_inferno_build_steps(Reordered.__new__(Reordered))[:2] == [
        "zeta",
        "criterion",
    ]


def test_code_defined_model_and_loaders_and_optimizer_kwargs(tmp_path):
    class Coded(Experiment):
        def build_model(self):
            return torch.nn.Sequential(torch.nn.Linear(4, 1))

        def build_train_loader(self):
            data = Regression(32)
            return DataLoader(TensorDataset(data.inputs, data.targets), batch_size=8)

        def build_val_loader(self):
            return None

    config = regression_config(
        intervals=None,
        optimizer={"torch.optim.SGD": {"lr": 0.01, "momentum": 0.9, "nesterov": True}},
    )
    del config["loader"], config["val_loader"], config["model"]
    experiment = make(tmp_path, config, Coded)
    trainer = experiment.train()
    experiment.execute_hooks("clean_up")
    group = trainer.optimizer.param_groups[0]
    assert (type(trainer.optimizer), group["momentum"], group["nesterov"]) == (
        torch.optim.SGD,
        0.9,
        True,
    )
    assert "validate" not in trainer._loaders
    assert experiment.val_loader is None
    assert isinstance(experiment.model, torch.nn.Sequential)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"trainer/optimizer": None}, "trainer/optimizer"),
        ({"trainer/optimizer": {"Adamm": {"lr": 1}}}, "Adamm"),
        ({"trainer/optimizer": {"Adam": {"learning_rate": 1}}}, "learning_rate"),
        ({"trainer/intervals": {"validate_evry": 2}}, "validate_evry"),
        ({"trainer/intervals": {"save_every": "often"}}, "trainer/intervals/save_every"),
        ({"criterion": {"NoSuchLoss": {}}}, "NoSuchLoss"),
        ({"criterion": {"MSELoss": {}, "L1Loss": {}}}, "exactly one entry"),
        ({"val_loader": None}, "validate_every is set, but there is no validation data"),
        ({"device": "gpu:0"}, "device"),
        ({"loader": {"batch_size": 4}}, "dataset"),
        ({"trainer/max_iterations": 2.5}, "max_iterations"),
        ({"trainer/tensorboard": {"log_scalar_every": 1}}, "log_scalars_every"),
    ],
)
def test_bad_configuration_is_refused_with_the_key_and_the_fix(tmp_path, change, message):
    experiment = make(tmp_path, regression_config())
    for key, value in change.items():
        experiment.set(key, value)
    with pytest.raises(ConfigError, match=message):
        experiment.train()
    assert getattr(experiment, "_trainer", None) is None  # no half-built trainer is kept
    experiment.execute_hooks("clean_up")


def test_validate_every_never_needs_no_validation_data(tmp_path):
    config = regression_config(max_iterations=2, intervals={"validate_every": "never"})
    del config["val_loader"]
    experiment = make(tmp_path, config)
    assert experiment.train().iteration_count == 2
    experiment.execute_hooks("clean_up")


def test_training_without_an_end_is_refused(tmp_path):
    config = regression_config()
    del config["trainer"]["max_iterations"]
    experiment = make(tmp_path, config)
    with pytest.raises(ConfigError, match="max_epochs"):
        experiment.train()
    experiment.execute_hooks("clean_up")


def test_without_an_experiment_directory_the_trainer_says_so():
    experiment = Experiment()
    for key, value in regression_config().items():
        experiment.set(key, value)
    with pytest.raises(ExperimentDirectoryError, match="Weights"):
        experiment.trainer


def test_speedrun_checkpoint_skips_the_trainer_and_a_load_rebuilds_it(tmp_path):
    experiment = make(tmp_path, regression_config(max_iterations=4))
    experiment.train()
    experiment.checkpoint()
    weight = experiment.model.weight.detach().clone()
    old_trainer = experiment.trainer
    with torch.no_grad():
        experiment.model.weight.zero_()
    experiment.load_from_checkpoint()
    assert torch.equal(experiment.model.weight, weight)
    assert experiment.step == 4
    new_trainer = experiment.trainer
    assert new_trainer is not old_trainer and new_trainer.model is experiment.model
    experiment.execute_hooks("clean_up")


def test_resume_continues_the_trainer_from_its_checkpoint(tmp_path):
    first = make(tmp_path, regression_config(max_iterations=4))
    first.train()
    first.checkpoint()
    first.execute_hooks("clean_up")
    saved_weight = first.model.weight.detach().clone()

    second = make(tmp_path, regression_config(max_iterations=8))
    second.load_from_checkpoint()
    trainer = second.trainer
    assert trainer.iteration_count == 4
    assert torch.equal(second.model.weight, saved_weight)
    adam_state = next(iter(trainer.optimizer.state.values()))
    assert int(adam_state["step"]) == 4
    trainer = second.train()
    second.execute_hooks("clean_up")
    assert trainer.iteration_count == 8 and second.step == 8
    assert int(next(iter(trainer.optimizer.state.values()))["step"]) == 8
    steps = [event.step for event in events(second).Scalars("training_loss")]
    assert steps == list(range(8))


def test_load_trainer_checkpoint_without_one_says_what_writes_it(tmp_path):
    from speedrun import CheckpointError

    experiment = make(tmp_path, regression_config())
    with pytest.raises(CheckpointError, match="save_every"):
        experiment.load_trainer_checkpoint(best=True)
    experiment.execute_hooks("clean_up")


def test_importing_the_mixin_does_not_import_torch():
    script = (
        "import sys; import speedrun.mixins.inferno as m; "
        "print(sorted(k for k in ('torch', 'inferno', 'numpy', 'tensorboardX') "
        "if k in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_legacy_import_resolves_the_mixin():
    import speedrun

    assert speedrun.InfernoMixin is InfernoMixin


def test_create_transform_builds_an_inferno_compose(tmp_path):
    experiment = make(tmp_path, regression_config())
    transform = experiment.create_transform([{"Normalize": {}}, {"Cast": {"args": ["float"]}}])
    import numpy as np

    result = transform(np.array([[1.0, 3.0], [5.0, 7.0]], dtype=np.float64))
    assert result.dtype == np.float32
    assert abs(float(result.mean())) < 1e-6


def test_tensorboard_mixin_shares_its_writer(tmp_path):
    tensorboard = pytest.importorskip("speedrun.mixins.tensorboard")

    class Both(InfernoMixin, tensorboard.TensorboardMixin, BaseExperiment):
        DATASET_LOCATIONS = [sys.modules[__name__]]

    experiment = make(tmp_path, regression_config(max_iterations=4), Both)
    experiment.train()
    experiment.log_scalar("custom", 1.5)
    experiment.execute_hooks("clean_up")
    files = os.listdir(experiment.log_directory)
    assert len(files) == 1, files  # one writer, one events file
    accumulator = events(experiment)
    assert len(accumulator.Scalars("training_loss")) == 4
    assert [event.value for event in accumulator.Scalars("custom")] == [1.5]


def test_firelight_visualizations_are_logged_as_images(tmp_path):
    pytest.importorskip("firelight")
    config = {
        "model": {"TinyNet": {}},
        "criterion": {"CrossEntropyLoss": {}},
        "loader": {"dataset": {"Blobs": {"size": 8}}, "batch_size": 4},
        "trainer": {
            "optimizer": {"SGD": {"lr": 0.1}},
            "max_iterations": 2,
            "tensorboard": {
                "log_scalars_every": "1 iterations",
                "log_images_every": "1 iterations",
                "log_config": False,
            },
        },
        "firelight": {
            "inputs_grid": {
                "ImageGridVisualizer": {
                    "visualizers": [
                        {"IdentityVisualizer": {"input": ["inputs", {"index": 0}], "cmap": "gray"}}
                    ]
                }
            }
        },
    }
    experiment = make(tmp_path, config)
    experiment.train()
    experiment.execute_hooks("clean_up")
    images = events(experiment).Tags()["images"]
    assert "training_inputs_grid" in images
    assert any(tag.startswith("training_inputs_0/") for tag in images), images


def test_one_tag_scope_for_inferno_and_tensorboard_whatever_the_order(tmp_path):
    # issue 15: each mixin had its own scope state, so leaving the scope did not reach the
    # other one and both values went to train/loss.
    from speedrun.mixins.tensorboard import TensorboardMixin

    class InfernoFirst(InfernoMixin, TensorboardMixin, BaseExperiment):
        pass

    class TensorboardFirst(TensorboardMixin, InfernoMixin, BaseExperiment):
        pass

    for cls in (InfernoFirst, TensorboardFirst):
        e = cls(str(tmp_path / cls.__name__))
        with e.set_tagscope("train"):
            e.log_scalar("loss", 1.0)
            assert e.get_full_tag("config") == "train/config" and e.tagscope == "train"
        e.log_scalar("loss", 2.0)
        e.execute_hooks("clean_up")
        accumulator = EventAccumulator(e.log_directory)
        accumulator.Reload()
        assert sorted(accumulator.Tags()["scalars"]) == ["loss", "train/loss"]
        assert [event.value for event in accumulator.Scalars("train/loss")] == [1.0]
        assert [event.value for event in accumulator.Scalars("loss")] == [2.0]
