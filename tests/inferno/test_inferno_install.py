"""A fresh virtual environment gets speedrun-inferno the documented way, keeps its pip, and
trains.

The documented install is ``pip install speedrun-inferno`` then
``pip install --no-deps inferno-pytorch==0.1.7`` (inferno-pytorch 0.1.7 pins pip==8.1.2). Here
speedrun-core and speedrun-inferno come from wheels built from this checkout with
``hatch build -t wheel``; everything else comes from the package index. This test installs
torch into the new environment and so takes a few minutes.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ROOT / "packages"

TRAIN_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import speedrun
    assert "torch" not in sys.modules, "import speedrun pulled in torch"
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from speedrun import BaseExperiment
    from speedrun.mixins.inferno import InfernoMixin, applied_fixes
    from tensorboardX.event_file_writer import EventFileWriter  # noqa: F401 - only checks that it is installed


    def data(seed, size):
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(size, 3, generator=generator)
        return TensorDataset(inputs, inputs @ torch.tensor([[1.0], [-2.0], [0.5]]))


    class Train(InfernoMixin, BaseExperiment):
        def build_model(self):
            torch.manual_seed(0)
            return torch.nn.Linear(3, 1)

        def build_train_loader(self):
            return DataLoader(data(1, 32), batch_size=8, shuffle=True)

        def build_val_loader(self):
            return DataLoader(data(2, 16), batch_size=16)


    experiment = Train(sys.argv[1])
    experiment.set("criterion", {"MSELoss": {}})
    experiment.set("trainer", {
        "optimizer": {"Adam": {"lr": 0.05}}, "max_iterations": 8,
        "intervals": {"validate_every": "4 iterations", "save_every": "4 iterations"},
        "tensorboard": {"log_scalars_every": "1 iterations", "log_images_every": "never"}})
    trainer = experiment.train()
    experiment.execute_hooks("clean_up")
    print(json.dumps({
        "iterations": trainer.iteration_count,
        "validation": [float(trainer.get_state("validation_loss_averaged"))],
        "best": float(trainer._best_validation_score),
        "weights": sorted(name for name in os.listdir(experiment.checkpoint_directory)
                          if not name.startswith(".")),  # less the run's checkpoint record
        "logs": sorted(os.listdir(experiment.log_directory)),
        "fixes": sorted(applied_fixes()),
    }))
""")


def _run(command, **kwargs):
    # A nested hatch must not think it runs inside `hatch test`'s environment.
    env = {key: value for key, value in os.environ.items() if key != "HATCH_ENV_ACTIVE"}
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=1500,
        env=env,
        **kwargs,
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def _build_wheel(package: Path, out: Path) -> None:
    hatch = shutil.which("hatch") or str(Path(sys.executable).with_name("hatch"))
    if os.path.exists(hatch):
        _run([hatch, "build", "-t", "wheel", out], cwd=package)
    else:  # pragma: no cover - environments without hatch
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", out, package])


def test_fresh_install_keeps_pip_and_trains(tmp_path):
    wheels = tmp_path / "wheels"
    for name in ("speedrun-core", "speedrun-inferno"):
        _build_wheel(PACKAGES / name, wheels)
    built = sorted(wheels.glob("*.whl"))
    assert [wheel.name.split("-")[0] for wheel in built] == ["speedrun_core", "speedrun_inferno"]

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    pip_before = _run([python, "-m", "pip", "--version"]).split()[1]

    # The same torch as this environment (a bare "torch" could pull a multi-GB CUDA build).
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"
    _run([python, "-m", "pip", "install", torch_pin, *built])
    _run([python, "-m", "pip", "install", "--no-deps", "inferno-pytorch==0.1.7"])

    assert _run([python, "-m", "pip", "--version"]).split()[1] == pip_before
    versions = _run(
        [
            python,
            "-c",
            "import importlib.metadata as m; print(m.version('inferno-pytorch'), m.version('pip'))",
        ]
    ).split()
    assert versions == ["0.1.7", pip_before]

    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    output = _run([python, script, tmp_path / "experiment"], cwd=tmp_path)
    report = json.loads(output.strip().splitlines()[-1])
    assert report["iterations"] == 8
    assert report["weights"] == ["best_checkpoint.pytorch", "checkpoint.pytorch"]
    assert len(report["logs"]) == 1 and report["logs"][0].startswith("events.out.tfevents")
    assert "validation-0dim-loss" in report["fixes"]
    # Two validations (iterations 4 and 8): the last one being the best means the loss fell.
    assert report["validation"][0] == pytest.approx(report["best"])
