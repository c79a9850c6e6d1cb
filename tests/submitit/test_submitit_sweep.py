"""Sweep files, point directories and the in-process job runner of speedrun-submitit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("submitit")

import yaml

from speedrun import ConfigError, ExperimentDirectoryError, Preempted
from speedrun.mixins.submitit import (
    SubmititMixin,
    expand_points,
    load_sweep,
    make_executor,
    point_status,
    prepare_sweep,
    run_point,
)
from speedrun.mixins.submitit._cli import main as sweep_main

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "sweep_experiment.py"
BASE = "seed: 0\ntraining:\n  lr: 1.0\n  num_steps: 6\n  checkpoint_every: 2\n"


def write_sweep(tmp_path: Path, body: str, name: str = "sweep.yml") -> Path:
    (tmp_path / "base.yml").write_text(BASE)
    path = tmp_path / name
    path.write_text(f"script: {SCRIPT}\nbase: base.yml\n{body}")
    return path


# ------------------------------------------------------------------------------------------------
# points


def test_grid_is_every_combination_in_order() -> None:
    points = expand_points({"training.lr": [0.1, 0.2], "model/hidden": [[8], [16, 16]]})
    assert points == [
        {"training/lr": 0.1, "model/hidden": [8]},
        {"training/lr": 0.1, "model/hidden": [16, 16]},
        {"training/lr": 0.2, "model/hidden": [8]},
        {"training/lr": 0.2, "model/hidden": [16, 16]},
    ]


def test_points_alone_and_combined_with_the_grid() -> None:
    assert expand_points(None, [{"seed": 1}, "--config.seed 2 --config.training.lr=0.5"]) == [
        {"seed": 1},
        {"seed": 2, "training/lr": 0.5},
    ]
    assert expand_points({"training.lr": [1, 2]}, [{"seed": 1}, {"seed": 2}]) == [
        {"training/lr": 1, "seed": 1},
        {"training/lr": 2, "seed": 1},
        {"training/lr": 1, "seed": 2},
        {"training/lr": 2, "seed": 2},
    ]
    assert expand_points() == [{}]  # the base alone


@pytest.mark.parametrize(
    "grid, points, message",
    [
        ({"training.lr": 0.1}, None, r"grid/training.lr: expected a non-empty list.*\[0.1\]"),
        ({"training.lr": []}, None, "non-empty list"),
        ([1, 2], None, "grid: expected a mapping"),
        (None, [], "points: expected a non-empty list"),
        (None, [{"seed": 1}, {"seed": 1}], "points 0 and 1 have the same overrides"),
        ({"seed": [1]}, [{"seed": 2}], r"points\[0\]: sets seed, which the grid also sets"),
        (None, ["--purge"], r"points\[0\]: expected only --config.a.b VALUE overrides"),
        (None, [3], r"points\[0\]: expected a mapping .* got int 3"),
        (None, [{"a..b": 1}], "empty part between separators"),
    ],
)
def test_bad_grids_and_points(grid: object, points: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        expand_points(grid, points, source="sweep.yml")


# ------------------------------------------------------------------------------------------------
# sweep files


def test_load_sweep_resolves_paths_against_the_file(tmp_path: Path) -> None:
    path = write_sweep(
        tmp_path, "grid:\n  training.lr: [0.5, 2.0]\n  seed: [1]\nargs: [--dispatch, train]\n"
    )
    sweep = load_sweep(path)
    assert sweep.name == "sweep" and sweep.script == str(SCRIPT)
    assert sweep.base == str(tmp_path / "base.yml")
    assert sweep.directory == str(tmp_path / "experiments" / "sweep")
    assert [point.name for point in sweep.points] == ["000-lr=0.5_seed=1", "001-lr=2.0_seed=1"]
    assert sweep.points[1].directory == str(
        tmp_path / "experiments" / "sweep" / "001-lr=2.0_seed=1"
    )
    assert sweep.args == ["--dispatch", "train"]


def test_base_may_be_an_experiment_directory(tmp_path: Path) -> None:
    run = tmp_path / "RUN-0" / "Configurations"
    run.mkdir(parents=True)
    (run / "train_config.yml").write_text(BASE)
    path = tmp_path / "s.yml"
    path.write_text(f"script: {SCRIPT}\nbase: RUN-0\npoints: [{{seed: 3}}]\n")
    assert load_sweep(path).base == str(run / "train_config.yml")


@pytest.mark.parametrize(
    "body, message",
    [
        ("grdi: {}\n", r"grdi: unknown key"),
        ("args: [--resume]\n", r"args: --resume cannot be given here"),
        ("args: [--config.seed, '1']\n", r"args: --config.seed cannot be given here"),
        ("name: 'a b'\n", r"name: expected a folder-friendly name"),
        ("strict: maybe\n", r"strict: expected true or false"),
        ("executor: [slurm]\n", r"executor: expected a mapping"),
    ],
)
def test_bad_sweep_files(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path, body))


def test_missing_script_and_base(tmp_path: Path) -> None:
    path = tmp_path / "s.yml"
    path.write_text("base: nowhere.yml\n")
    with pytest.raises(ConfigError, match="script: missing"):
        load_sweep(path)
    path.write_text(f"script: {SCRIPT}\nbase: nowhere.yml\n")
    with pytest.raises(ConfigError, match=r"base: no such file .*nowhere.yml"):
        load_sweep(path)
    with pytest.raises(ConfigError, match="no sweep file at"):
        load_sweep(tmp_path / "absent.yml")


# ------------------------------------------------------------------------------------------------
# point directories


def test_prepare_writes_one_experiment_directory_per_point(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = load_sweep(write_sweep(tmp_path, "grid:\n  training.lr: [0.5, 2]\n  extra: [1]\n"))
    todo = prepare_sweep(sweep)
    assert [point.name for point in todo] == ["000-lr=0.5_extra=1", "001-lr=2_extra=1"]
    config_file = Path(todo[1].directory, "Configurations", "train_config.yml")
    config = yaml.safe_load(config_file.read_text())
    assert config["training"] == {"lr": 2, "num_steps": 6, "checkpoint_every": 2}
    assert config["seed"] == 0 and config["extra"] == 1
    assert config["speedrun"]["sweep"] == {
        "name": "sweep",
        "index": 1,
        "point": "001-lr=2_extra=1",
        "overrides": {"training.lr": 2, "extra": 1},
        "base": str(tmp_path / "base.yml"),
        "sweep_file": str(tmp_path / "sweep.yml"),
    }
    assert "git_rev" in config and "git_dirty" in config
    assert (Path(todo[0].directory) / ".speedrun").is_file()  # a normal experiment directory
    assert [point_status(point) for point in todo] == ["new", "new"]
    manifest = yaml.safe_load(Path(sweep.manifest_path).read_text())
    assert [point["name"] for point in manifest["points"]] == [p.name for p in todo]
    err = capsys.readouterr().err
    assert "lr: type changes from float (1.0) to int (2) (001-lr=2_extra=1)" not in err  # int ok
    assert "extra: new key (not in the base config), set to 1 (2 points)" in err


def test_strict_sweep_refuses_mismatching_overrides_and_writes_nothing(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, "strict: true\npoints: [{training.lrr: 0.1}]\n"))
    with pytest.raises(ConfigError, match=r"(?s)strict: point 000-lrr=0.1 .*training/lrr: new key"):
        prepare_sweep(sweep)
    assert not os.path.exists(sweep.directory)


def test_existing_points_need_resume_or_purge(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, "points: [{seed: 1}, {seed: 2}]\n")
    sweep = load_sweep(path)
    prepare_sweep(sweep)
    with pytest.raises(ExperimentDirectoryError, match=r"already holds 2 point\(s\).*--resume"):
        prepare_sweep(sweep)
    assert [p.name for p in prepare_sweep(sweep, resume=True)] == ["000-seed=1", "001-seed=2"]
    marker = Path(sweep.points[0].directory, "Logs", "mine.txt")
    marker.write_text("old run")
    assert [p.name for p in prepare_sweep(sweep, purge=True)] == ["000-seed=1", "001-seed=2"]
    assert not marker.exists()
    path.write_text(path.read_text().replace("seed: 2", "seed: 5"))  # the sweep changed
    with pytest.raises(ConfigError, match="its points differ from those submitted"):
        prepare_sweep(load_sweep(path), resume=True)


def test_a_sweep_directory_must_not_be_an_experiment(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, "directory: RUN\npoints: [{seed: 1}]\n")
    (tmp_path / "RUN").mkdir()
    (tmp_path / "RUN" / ".speedrun").write_text('{"marker_version": 1}')
    with pytest.raises(ExperimentDirectoryError, match="is itself an experiment directory"):
        prepare_sweep(load_sweep(path))


def test_executor_settings_are_checked(tmp_path: Path) -> None:
    sweep = load_sweep(write_sweep(tmp_path, "executor: {cluster: local, slurm_partitoin: gpu}\n"))
    with pytest.raises(ConfigError, match=r"executor: submitit refused.*partitoin"):
        make_executor(sweep)
    sweep.executor = {"cluster": "kubernetes"}
    with pytest.raises(ConfigError, match="executor/cluster: expected one of slurm, local, debug"):
        make_executor(sweep)
    sweep.executor = {"cluster": "local", "timeout_min": 3, "local_max_num_timeout": 1}
    executor = make_executor(sweep)
    assert executor.cluster == "local" and executor.parameters["timeout_min"] == 3


def test_missing_submitit_names_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = load_sweep(write_sweep(tmp_path, "executor: {cluster: local}\n"))
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` fails as if missing
    with pytest.raises(ImportError) as caught:
        make_executor(sweep)
    assert str(caught.value) == (
        "Submitting a sweep needs submitit, which is not installed. "
        "Fix: pip install speedrun-submitit (or pip install submitit)"
    )


# ------------------------------------------------------------------------------------------------
# the job runner, in this process


@pytest.fixture
def job_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("SPEEDRUN_LAUNCH_ID", "SPEEDRUN_SWEEP_ATTEMPT", "SUBMITIT_EXECUTOR"):
        # setenv first records the variable's absence, so what run_point sets is undone too
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def _one_point(tmp_path: Path, body: str) -> str:
    sweep = load_sweep(write_sweep(tmp_path, body))
    return prepare_sweep(sweep)[0].directory


def test_run_point_runs_the_script_then_resumes(
    job_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = _one_point(tmp_path, "points: [{training.preempt_at: 3}]\n")
    argv, path = list(sys.argv), list(sys.path)
    with pytest.raises(Preempted, match="was preempted and saved a checkpoint"):
        run_point(str(SCRIPT), directory, [])
    assert sys.argv == argv and sys.path == path
    assert sorted(
        name for name in os.listdir(Path(directory, "Weights")) if not name.startswith(".")
    ) == [
        "checkpoint_iter_2.pt",
        "checkpoint_iter_3.pt",
    ]
    outcome = run_point(str(SCRIPT), directory, [], attempt=1)  # resumes by itself
    assert outcome == {
        "directory": directory,
        "status": "finished",
        "final_step": 6,
        "attempt": 1,
        "resumed": True,
    }
    result = yaml.safe_load(Path(directory, "Logs", "result.json").read_text())
    assert result["starts"] == [[0, 0], [3, 1]]
    assert os.environ["SPEEDRUN_SWEEP_ATTEMPT"] == "1"


def test_run_point_reports_a_failing_script(job_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    directory = _one_point(tmp_path, "points: [{training.fail_at: 2}]\n")
    with pytest.raises(
        RuntimeError,
        match=r"failed in sweep_experiment.py: ValueError: failing "
        r"at step 2",
    ) as caught:
        run_point(str(SCRIPT), directory, [])
    assert isinstance(caught.value.__cause__, ValueError)
    assert point_status(load_sweep(tmp_path / "sweep.yml").points[0]) == "crashed"


# ------------------------------------------------------------------------------------------------
# the command line


def test_dry_run_lists_points_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = write_sweep(tmp_path, "grid: {training.lr: [0.5, 2]}\n")
    assert sweep_main([str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "sweep: 2 point(s)" in out and "000-lr=0.5" in out and "training.lr=2" in out
    assert not (tmp_path / "experiments").exists()


def test_cli_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_sweep(tmp_path, "grid: {training.lr: 0.5}\n")
    assert sweep_main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("speedrun-sweep: error: ") and "grid/training.lr" in err


def test_submitit_mixin_outside_and_inside_a_sweep(job_env: pytest.MonkeyPatch) -> None:
    from speedrun import BaseExperiment

    class Experiment(BaseExperiment, SubmititMixin):
        pass

    experiment = Experiment()
    assert (
        experiment.sweep_point,
        experiment.sweep_overrides,
        experiment.job_attempt,
        experiment.job_environment,
        experiment.job_id,
    ) == (None, {}, 0, None, None)
    experiment.set("speedrun/sweep", {"point": "001-lr=2", "overrides": {"training.lr": 2}})
    job_env.setenv("SPEEDRUN_SWEEP_ATTEMPT", "2")
    assert experiment.sweep_overrides == {"training.lr": 2} and experiment.job_attempt == 2
