"""WandBMixin and WandBSweepMixin in this process: names, config, images, ids, sweeps offline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("wandb")

import speedrun
from speedrun import BaseExperiment, ConfigError
from speedrun.ext import ImageError
from speedrun.mixins.wandb import (
    SweepRunner,
    WandBInitError,
    WandBMixin,
    WandBSweepMixin,
)
from speedrun.mixins.wandb._images import image_array


class Experiment(WandBMixin, BaseExperiment):
    WANDB_PROJECT = "speedrun-tests"


class SweepExperiment(WandBSweepMixin, BaseExperiment):
    WANDB_PROJECT = "speedrun-tests"


def test_sweep_mixin_must_come_before_base_experiment() -> None:
    with pytest.raises(TypeError, match=r"Fix: class Wrong\(WandBSweepMixin, BaseExperiment\)"):

        class Wrong(BaseExperiment, WandBSweepMixin):
            pass


def _set_up(cls: type, monkeypatch: pytest.MonkeyPatch, *argv: str) -> BaseExperiment:
    monkeypatch.setattr(sys, "argv", ["train.py", *argv])
    experiment = cls()
    experiment.auto_setup(update_git_revision=False)
    return experiment


def test_legacy_names() -> None:
    from speedrun import SweepRunner as LegacyRunner
    from speedrun import WandBMixin as LegacyMixin
    from speedrun import WandBSweepMixin as LegacySweep

    assert (LegacyMixin, LegacySweep, LegacyRunner) == (WandBMixin, WandBSweepMixin, SweepRunner)
    assert not hasattr(speedrun, "SweepRunnerX")


def test_wandb_config_is_flattened_with_double_underscores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = _set_up(
        Experiment,
        monkeypatch,
        str(tmp_path / "RUN"),
        "--config.training.lr",
        "0.01",
        "--config.model.hidden",
        "[8, 8]",
        "--config.seed",
        "3",
    )
    assert experiment.wandb_config == {"training__lr": 0.01, "model__hidden": [8, 8], "seed": 3}
    assert experiment.wandb_directory == str(tmp_path / "RUN" / "WandB")
    assert (tmp_path / "RUN" / "WandB").is_dir()


def test_missing_wandb_names_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    experiment = _set_up(Experiment, monkeypatch, str(tmp_path / "RUN"))
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` fails as if missing
    with pytest.raises(ImportError) as caught:
        experiment.initialize_wandb()
    assert str(caught.value) == (
        "speedrun's WandBMixin needs wandb, which is not installed. "
        "Fix: pip install speedrun-wandb (or pip install wandb)"
    )


def test_log_wandb_now_follows_log_every(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    experiment = _set_up(
        Experiment, monkeypatch, str(tmp_path / "RUN"), "--config.wandb.log_every", "3"
    )
    now = []
    for _ in range(7):
        now.append(experiment.log_wandb_now)
        experiment.next_step()
    assert now == [True, False, False, True, False, False, True]
    experiment.set("wandb/log_every", 0)
    assert not experiment.log_wandb_now
    experiment.set("wandb/log_every", "often")
    with pytest.raises(ConfigError, match="wandb/log_every"):
        _ = experiment.log_wandb_now


def test_run_id_comes_from_environment_then_info_then_inherit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "PARENT"
    (parent / "Logs").mkdir(parents=True)
    (parent / "Configurations").mkdir()
    (parent / "Configurations" / "train_config.yml").write_text("seed: 1\n")
    (parent / "Logs" / "wandb_info.yml").write_text("wandb_run_id: parent01\n")
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    child = _set_up(Experiment, monkeypatch, str(tmp_path / "CHILD"), "--inherit", str(parent))
    assert child.find_existing_wandb_run_id() == "parent01"
    (tmp_path / "CHILD" / "Logs" / "wandb_info.yml").write_text("wandb_run_id: child001\n")
    assert child.find_existing_wandb_run_id() == "child001"
    monkeypatch.setenv("WANDB_RUN_ID", "fromenv1")
    assert child.find_existing_wandb_run_id() == "fromenv1"


def test_images_from_tensors_and_arrays() -> None:
    torch = pytest.importorskip("torch")
    chw = torch.linspace(0, 1, 3 * 4 * 5).reshape(3, 4, 5)
    hwc = chw.permute(1, 2, 0).numpy()
    from_tensor, from_array = image_array(chw, "chw"), image_array(hwc, "hwc")
    assert from_tensor.shape == (4, 5, 3) and from_tensor.dtype == np.uint8
    assert np.array_equal(from_tensor, from_array)
    assert from_tensor[0, 0, 0] == 0 and from_tensor[-1, -1, -1] == 255
    assert image_array(torch.ones(1, 4, 5, dtype=torch.float16)).shape == (4, 5)  # grayscale
    assert image_array(np.array([[-1.0, 2.0], [np.nan, 0.5]]), "hwc").tolist() == [
        [0, 255],
        [0, 128],
    ]
    # the rules and errors of every speedrun mixin (speedrun.ext.to_image_array)
    with pytest.raises(ImageError, match=r"shape \(5, 6, 3\) read as CHW, which has 5 channels"):
        image_array(np.zeros((5, 6, 3)), "chw")
    with pytest.raises(ImageError, match="needs a 3-D image"):
        image_array(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="'chw'"):
        image_array(np.zeros((4, 5)), "whc")
    with pytest.raises(TypeError, match="torch tensor or NumPy array"):
        image_array([[0, 1]])  # ImageError is a TypeError too


def test_as_wandb_image_builds_a_wandb_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wandb = pytest.importorskip("wandb")
    experiment = _set_up(Experiment, monkeypatch, str(tmp_path / "RUN"))
    image = experiment.as_wandb_image(
        np.zeros((4, 5, 3), dtype=np.uint8), image_format="hwc", caption="zeros"
    )
    assert isinstance(image, wandb.Image)
    assert image._caption == "zeros" and (image._width, image._height) == (5, 4)


def test_creating_a_sweep_offline_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = tmp_path / "sweep.yml"
    sweep.write_text("method: grid\nparameters:\n  training__lr: {values: [0.1, 0.01]}\n")
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(
        WandBInitError, match="Creating a W&B sweep needs a W&B server, but W&B runs offline here"
    ):
        _set_up(
            SweepExperiment,
            monkeypatch,
            str(tmp_path / "SWEEP"),
            "--wandb.sweep",
            "--wandb.sweep_config",
            str(sweep),
        )
    with pytest.raises(WandBInitError, match="Running a W&B sweep agent needs a W&B server"):
        SweepRunner(SweepExperiment, sweep_id="abc").run()
    with pytest.raises(ConfigError, match="SweepRunner needs a sweep"):
        SweepRunner(SweepExperiment)


def test_sweep_files_are_inherited_and_run_numbers_claimed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "SWEEP"
    (parent / "Configurations").mkdir(parents=True)
    (parent / "Configurations" / "train_config.yml").write_text("seed: 1\n")
    (parent / "Configurations" / "wandb_sweep.yml").write_text(
        "sweep_id: sw123\nproject: speedrun-tests\nentity: null\n"
    )
    template = str(tmp_path / "runs" / "run-{WANDB_RUN_NUM}")
    first = _set_up(SweepExperiment, monkeypatch, template, "--inherit", str(parent))
    second = _set_up(SweepExperiment, monkeypatch, template, "--inherit", str(parent))
    assert (first.experiment_directory, second.experiment_directory) == (
        str(tmp_path / "runs" / "run-0"),
        str(tmp_path / "runs" / "run-1"),
    )
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["run-0", "run-1"]
    assert second.wandb_sweep_info["sweep_id"] == "sw123"
    runner = SweepRunner(SweepExperiment, sweep_directory=second.experiment_directory)
    assert (runner.sweep_id, runner.project) == ("sw123", "speedrun-tests")


def test_bad_mode_names_the_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="'wandb/mode'.*online, offline, disabled"):
        _set_up(Experiment, monkeypatch, str(tmp_path / "RUN"), "--config.wandb.mode", "offlne")


class Holding(Experiment):
    """Logs through every entry point, holding one W&B step across three experiment steps."""

    @speedrun.register_default_dispatch
    def train(self) -> None:
        self.wandb_log({"a": 1.0}, b=2.0)  # step 0: a dict and keywords
        self.next_step()
        with self.wandb_hold_step():  # steps 1-3 go to W&B step 1
            for value in (10.0, 11.0, 12.0):
                self.wandb_log_scalar("held", value)
                self.wandb_log(extra=value)
                self.next_step()
        self.wandb_pause_step_counter()  # the counter API, nested
        self.wandb_pause_step_counter()
        self.next_step()
        self.wandb_log_scalar("paused", 1.0)  # step 4 is held: W&B step 4
        self.wandb_resume_step_counter()
        self.wandb_resume_step_counter()
        self.wandb_log_scalar("after", np.float32(3.0))  # step 5
        self.checkpoint()  # commits W&B step 5


def _history(experiment: BaseExperiment) -> list[dict]:
    import json
    import subprocess

    (run,) = (Path(experiment.wandb_directory) / "wandb").glob("offline-run-*")
    result = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return [record["history"]["item"] for record in records if record["type"] == "history"]


def test_held_steps_keywords_and_scalars_in_one_offline_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    experiment = _set_up(Holding, monkeypatch, str(tmp_path / "RUN"))
    experiment.run()
    rows = {row["_step"]: row for row in _history(experiment)}
    assert sorted(rows) == [0, 1, 4, 5]
    assert (rows[0]["a"], rows[0]["b"], rows[0]["step"], rows[0]["epoch"]) == (1, 2, 0, 0)
    assert (rows[1]["held"], rows[1]["extra"]) == (12, 12)  # the last value of the held row
    assert rows[4]["paused"] == 1 and rows[5]["after"] == 3


def test_disabled_mode_logs_nothing_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")  # the config wins over the environment
    experiment = _set_up(
        Holding, monkeypatch, str(tmp_path / "RUN"), "--config.wandb.mode", "disabled"
    )
    experiment.run()
    assert not (tmp_path / "RUN" / "Logs" / "wandb_info.yml").exists()
    assert not list((tmp_path / "RUN" / "WandB").rglob("*.wandb"))


def test_speedrun_mixins_lists_the_wandb_names_as_installed() -> None:
    import json
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "speedrun", "mixins", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    (wandb,) = [mixin for mixin in listing["mixins"] if mixin["name"] == "wandb"]
    assert (wandb["entry_point"], wandb["distribution"]) == (
        "speedrun.mixins.wandb:WandBMixin",
        "speedrun-wandb",
    )
    missing = {item["class"] for item in listing["not_installed"]}
    assert not missing & {"WandBMixin", "WandBSweepMixin", "SweepRunner"}
