"""``--resume`` across processes: the curves continue without duplicate or out-of-order steps."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

SCRIPT = textwrap.dedent("""
    import numpy as np

    from speedrun import BaseExperiment
    from speedrun.mixins.tensorboard import TensorboardMixin


    class Train(TensorboardMixin, BaseExperiment):
        DEFAULT_DISPATCH = "train"

        def __init__(self):
            super().__init__()
            self.auto_setup()

        def train(self):
            while self.step < 20:
                offset = 1000.0 if self.get("attempt") == 2 else 0.0
                with self.set_tagscope("train"):
                    self.log_scalar("loss", offset + self.step)
                if self.log_images_now:
                    self.log_image("sample", np.zeros((4, 4)))
                if self.step % 5 == 0:
                    self.checkpoint()
                if self.step == self.get("crash_at"):
                    raise RuntimeError("simulated crash")
                self.next_step()


    Train().run()
""")


def _run(tmp_path, *args):
    return subprocess.run(
        [sys.executable, str(tmp_path / "train.py"), "RUN-0", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)},
    )


def test_resume_continues_the_same_curves(tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    first = _run(
        tmp_path,
        "--config.crash_at",
        "12",
        "--config.attempt",
        "1",
        "--config.tensorboard.log_images_every",
        "4",
    )
    assert first.returncode != 0 and "simulated crash" in first.stderr
    second = _run(tmp_path, "--resume", "--config.crash_at", "None", "--config.attempt", "2")
    assert second.returncode == 0, second.stderr

    accumulator = EventAccumulator(
        str(tmp_path / "RUN-0" / "Logs"), size_guidance={"scalars": 0, "images": 0}
    )
    accumulator.Reload()
    points = [(event.step, event.value) for event in accumulator.Scalars("train/loss")]
    # Steps 0-9 from the first attempt, then (checkpoint at 10) 10-19 from the resumed one;
    # the first attempt's steps 10-12 are purged.
    assert points == [(s, float(s)) for s in range(10)] + [(s, 1000.0 + s) for s in range(10, 20)]
    assert [event.step for event in accumulator.Images("sample")] == [0, 4, 8, 12, 16]
