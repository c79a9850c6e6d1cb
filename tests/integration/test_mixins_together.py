"""Every mixin in one experiment class, in both base orders, run and resumed from the command
line: each mixin's output is right, and no mixin shadows another's attributes (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("inferno", reason="pip install --no-deps inferno-pytorch==0.1.7")
pytest.importorskip("firelight")
pytest.importorskip("torch")

from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from speedrun import BaseExperiment
from speedrun.ext import TagScopeMixin

SCRIPT = Path(__file__).with_name("all_mixins_experiment.py")
CONFIG = """\
device: cpu
firelight:
  ImageGridVisualizer:
    visualizers:
      - IdentityVisualizer: {input: [inputs, {index: 0}, {B: ':2'}], cmap: gray, value_range: [0, 1]}
trainer:
  criterion: CrossEntropyLoss
  optimizer: Adam
  optimizer_kwargs: {lr: 0.01}
  max_iterations: 4
  intervals:
    validate_every: {frequency: '4 iterations', for_num_iterations: 1}
    save_every: '4 iterations'
  tensorboard: {log_scalars_every: '1 iteration', log_images_every: 'never'}
"""
ORDERS = ("mixins-first", "base-first")


def _mixins() -> tuple[type, ...]:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import all_mixins_experiment
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return all_mixins_experiment.MIXINS


#: The mixin contract's declarations: each class lists its own, collected over the MRO.
CONTRACT = {"CONFIG_KEYS", "NOT_CHECKPOINTED", "COMMAND_LINE_FLAGS"}  # collected over the MRO


def _own_names(cls: type) -> set[str]:
    """Attributes a mixin defines itself (not BaseExperiment's, not the shared tag scope)."""
    shared = set(BaseExperiment.__mro__) | set(TagScopeMixin.__mro__)
    return {
        name
        for klass in cls.__mro__
        if klass not in shared
        for name in vars(klass)
        if not (name.startswith("__") and name.endswith("__")) and name not in CONTRACT
    }


def test_no_mixin_shadows_another_or_the_base_class() -> None:
    mixins = _mixins()
    base = {
        name
        for klass in BaseExperiment.__mro__
        for name in vars(klass)
        if not (name.startswith("__") and name.endswith("__")) and name not in CONTRACT
    }
    collisions = []
    for index, first in enumerate(mixins):
        names = _own_names(first)
        collisions += [f"{first.__name__} and BaseExperiment: {name}" for name in names & base]
        for second in mixins[index + 1 :]:
            collisions += [
                f"{first.__name__} and {second.__name__}: {name}"
                for name in sorted(names & _own_names(second))
            ]
    assert collisions == []
    # The tag scope is defined once, so every mixin reads the same state in any order.
    for mixin in mixins:
        if issubclass(mixin, TagScopeMixin):
            assert "tagscope" not in _own_names(mixin) and "set_tagscope" not in _own_names(mixin)


def _events(directory: Path) -> dict[str, list[tuple[int, float | None]]]:
    """Scalars and images by tag, as TensorBoard's own reader sees ``Logs/``."""
    accumulator = EventAccumulator(
        str(directory / "Logs"), size_guidance={"scalars": 0, "images": 0}
    )
    accumulator.Reload()
    found: dict[str, list[tuple[int, float | None]]] = {}
    for tag in accumulator.Tags()["scalars"]:
        found[tag] = [(event.step, round(event.value, 6)) for event in accumulator.Scalars(tag)]
    for tag in accumulator.Tags()["images"]:
        found[tag] = [(event.step, None) for event in accumulator.Images(tag)]
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    root = tmp_path_factory.mktemp("together")
    (root / "config.yml").write_text(CONFIG, encoding="utf-8")
    env = {
        name: value
        for name, value in os.environ.items()  # no job or sweep around us
        if not name.startswith(("SPEEDRUN_", "SUBMITIT_", "SLURM_"))
    }
    env["PYTHONWARNINGS"] = "ignore"

    def run(*flags: str, **extra_env: str) -> None:
        result = subprocess.run(
            [sys.executable, str(SCRIPT), str(root / "runs"), *flags],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**env, **extra_env},
        )
        assert result.returncode == 0, result.stderr[-3000:]

    run("--inherit", str(root / "config.yml"), "--wait.memory", "1MB")
    before_resume = {order: _events(root / "runs" / order) for order in ORDERS}
    run("--resume", "--config.trainer.max_iterations", "8", SPEEDRUN_SWEEP_ATTEMPT="1")
    return root / "runs", before_resume


def _report(directory: Path, step: int) -> dict:
    return json.loads((directory / "Logs" / f"report_{step}.json").read_text())


@pytest.mark.parametrize("order", ORDERS)
def test_every_mixin_does_its_part_and_resume_continues(
    runs: tuple[Path, dict[str, dict]], order: str
) -> None:
    directory = runs[0] / order
    first, second = _report(directory, 4), _report(directory, 8)
    # core: checkpointed attributes come back with --resume
    assert (first["sessions"], second["sessions"]) == ([0], [0, 4])
    assert second["start"] == 4 and second["step"] == 8
    # Inferno: the trainer continued from its own checkpoint in Weights/
    assert (first["iterations"], second["iterations"]) == (4, 8)
    weights = sorted(os.listdir(directory / "Weights"))
    assert {"checkpoint.pytorch", "checkpoint_iter_4.pt", "checkpoint_iter_8.pt"} <= set(weights)
    # TensorBoard, shared by Inferno, Firelight and mpl: one writer, one tag scope
    before, after = runs[1][order], _events(directory)
    assert [step for step, _ in before["training_loss"]] == [0, 1, 2, 3]
    assert before["validation_loss_averaged"][0][0] == 4
    assert before["val/accuracy"] == [(4, 0.54)]
    assert before["val/grid"] == before["val/curve"] == [(4, None)]  # log_image_grid, log_figure
    assert "accuracy" not in before and "grid" not in before  # the scope reached every mixin
    # The resumed writer purges from the loaded step (4) on: each step appears once.
    assert [step for step, _ in after["training_loss"]] == list(range(8))
    assert [step for step, _ in after["validation_loss_averaged"]] == [8]
    assert after["val/accuracy"] == [(8, 0.58)]
    assert after["val/grid"] == after["val/curve"] == [(8, None)]
    # IO, mpl and Firelight files: one Plots/ rule, inside the same tag scope
    for step in (4, 8):
        with Image.open(directory / "Plots" / "val" / f"input_step_{step}.png") as image:
            assert (image.mode, image.size) == ("L", (6, 6))
        assert second["figure_files"] == [str(directory / "Plots" / "val" / "curve_step_8.png")]
        assert second["grid_files"] == [str(directory / "Plots" / "val" / "grid_step_8.png")]
        assert (directory / "Plots" / "val" / f"curve_step_{step}.png").is_file()
        assert (directory / "Plots" / "val" / f"grid_step_{step}.png").is_file()
    assert second["tagscope_after"] == ""
    # IO's printed log, with the waiter's line printed through IOMixin.print
    lines = (directory / "Logs" / "stdout").read_text().splitlines()
    assert lines[0].startswith("[waiter] Nothing to wait for")
    assert [line for line in lines if line.startswith("session")] == [
        "session from 0 to 4",
        "session from 4 to 8",
    ]
    # Submitit: outside a sweep, no point; the attempt comes from the job's environment
    assert (first["sweep_point"], first["job_attempt"]) == (None, 0)
    assert second["job_attempt"] == 1
    # No attribute the experiment holds hides a method or property of any mixin (class-level
    # defaults such as TensorboardMixin._tensorboard_writer = None are meant to be replaced).
    behaviour = {
        name
        for mixin in _mixins()
        for klass in mixin.__mro__
        for name, value in vars(klass).items()
        if name in _own_names(mixin) and (callable(value) or hasattr(value, "__get__"))
    }
    assert set(second["instance_attributes"]) & behaviour == set()


def test_one_array_is_one_picture_in_tensorboard_and_in_plots(tmp_path: Path) -> None:
    # issue 15: a (3, 8, 4) array was an 8x4 RGB image in TensorBoard and a 3x8 RGBA PNG.
    import io

    import numpy as np

    from speedrun.mixins.io import IOMixin
    from speedrun.mixins.tensorboard import TensorboardMixin

    class Both(TensorboardMixin, IOMixin, BaseExperiment):
        pass

    experiment = Both(str(tmp_path / "exp"))
    value = np.random.default_rng(0).random((3, 8, 4))
    experiment.log_image("x", value).print_image("x", value)
    experiment.execute_hooks("clean_up")
    accumulator = EventAccumulator(experiment.log_directory)
    accumulator.Reload()
    (event,) = accumulator.Images("x")
    with Image.open(io.BytesIO(event.encoded_image_string)) as logged:
        logged_pixels = np.asarray(logged.convert("RGB"))
    with Image.open(Path(experiment.plot_directory) / "x_step_0.png") as printed:
        assert printed.mode == "RGB"
        printed_pixels = np.asarray(printed)
    assert logged_pixels.shape == printed_pixels.shape == (8, 4, 3)
    assert np.array_equal(logged_pixels, printed_pixels)
