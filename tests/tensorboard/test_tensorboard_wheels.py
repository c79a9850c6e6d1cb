"""The promise: ``pip install speedrun-core speedrun-tensorboard`` alone is enough.

Builds both wheels with hatch, installs only them (and their PyPI dependencies) into a fresh
venv, runs an experiment there and reads its events back with TensorBoard's reader.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [ROOT / "packages" / "speedrun-core", ROOT / "packages" / "speedrun-tensorboard"]

SCRIPT = textwrap.dedent("""
    import sys
    from importlib.metadata import distributions

    import speedrun
    from speedrun import BaseExperiment
    from speedrun.mixins.tensorboard import TensorboardMixin

    names = sorted(d.metadata["Name"] for d in distributions()
                   if d.metadata["Name"].lower().startswith("speedrun"))
    assert names == ["speedrun-core", "speedrun-tensorboard"], names
    assert speedrun.TensorboardMixin is TensorboardMixin  # the legacy import


    class Train(TensorboardMixin, BaseExperiment):
        DEFAULT_DISPATCH = "train"

        def train(self):
            self.set("tensorboard/log_scalars_every", 2)
            while self.step < 10:
                if self.log_scalars_now:
                    with self.set_tagscope("train"):
                        self.log_scalars({"loss": 1.0 / (self.step + 1), "step": self.step})
                self.next_step()
            self.log_hparams({"final/loss": 0.1})
            try:
                self.log_image("sample", __import__("numpy").zeros((4, 4)))
            except ImportError as error:  # pillow is optional and not installed here
                print("IMAGE:", error)


    Train(sys.argv[1]).run()
""")


def _installer(venv_python: Path) -> list[str]:
    uv = shutil.which("uv")
    if uv:
        return [uv, "pip", "install", "--python", str(venv_python), "--quiet"]
    return [str(venv_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]


def test_the_two_wheels_alone_work_in_a_fresh_venv(tmp_path):
    hatch = shutil.which("hatch") or os.path.join(os.path.dirname(sys.executable), "hatch")
    if not os.path.exists(hatch):
        pytest.skip("hatch is needed to build the wheels (pip install hatch)")
    wheels = tmp_path / "wheels"
    # A nested hatch must not think it runs inside `hatch test`'s environment.
    hatch_env = {k: v for k, v in os.environ.items() if k != "HATCH_ENV_ACTIVE"}
    for package in PACKAGES:
        subprocess.run([hatch, "build", "-t", "wheel", str(wheels)], cwd=package, check=True,
                       capture_output=True, env=hatch_env)
    built = sorted(wheels.glob("*.whl"))
    assert [w.name.split("-")[0] for w in built] == ["speedrun_core", "speedrun_tensorboard"]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*_installer(python), *map(str, built)], check=True)

    (tmp_path / "train.py").write_text(SCRIPT)
    run = subprocess.run([str(python), str(tmp_path / "train.py"), str(tmp_path / "RUN-0")],
                         cwd=tmp_path, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert run.returncode == 0, run.stderr
    assert "IMAGE: log_image needs pillow, which is not installed: pip install pillow" in run.stdout

    accumulator = EventAccumulator(str(tmp_path / "RUN-0" / "Logs"), size_guidance={"scalars": 0})
    accumulator.Reload()
    loss = [(event.step, round(event.value, 6)) for event in accumulator.Scalars("train/loss")]
    assert loss == [(s, round(1.0 / (s + 1), 6)) for s in range(0, 10, 2)]
    assert [event.value for event in accumulator.Scalars("train/step")] == [0, 2, 4, 6, 8]
    assert [(e.step, round(e.value, 6)) for e in accumulator.Scalars("final/loss")] == [(10, 0.1)]
    assert "_hparams_/session_start_info" in accumulator.PluginTagToContent("hparams")
