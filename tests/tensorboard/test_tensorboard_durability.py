"""``kill -9`` after a checkpoint, then ``--resume``: every point up to the checkpoint step is
in the event files exactly once, bit-exact, read back with TensorBoard's EventAccumulator."""

from __future__ import annotations

import math
import os
import select
import signal
import struct
import subprocess
import sys
import textwrap
import time

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

SCRIPT = textwrap.dedent("""
    import math
    import sys
    import time

    import numpy as np

    from speedrun import BaseExperiment
    from speedrun.mixins.tensorboard import TensorboardMixin


    def value(step, attempt):
        return math.pi * step / 7.0 + (1000.0 if attempt == 2 else 0.0)


    class Train(TensorboardMixin, BaseExperiment):
        DEFAULT_DISPATCH = "train"

        def __init__(self):
            super().__init__()
            self.auto_setup()

        def train(self):
            attempt = self.get("attempt")
            while self.step < 40:
                self.log_scalar("loss", value(self.step, attempt))
                if self.step % 10 == 5:  # tensorboardX's own method, into the same file
                    self.logger.add_histogram("weights", np.arange(3.0) + self.step, self.step)
                self.next_step()
                self.checkpoint(force=False)          # training/checkpoint_every: 10
                if attempt == 1 and self.step == 25:  # 5 steps after the step-20 checkpoint
                    print("READY", flush=True)
                    time.sleep(120)                   # killed here with SIGKILL


    Train().run()
""")
KILL_AFTER = 20  # the last checkpoint before the kill
STEPS = 40


def _value(step: int, attempt: int) -> float:
    exact = math.pi * step / 7.0 + (1000.0 if attempt == 2 else 0.0)
    return struct.unpack("<f", struct.pack("<f", exact))[0]  # what a float32 event holds


def _command(tmp_path, *args):
    return [sys.executable, str(tmp_path / "train.py"), "RUN-0", *args]


def _environment(tmp_path):
    return {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)}


def _wait_for_line(process: subprocess.Popen, line: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
        if not ready:
            break
        received = process.stdout.readline()
        if not received:  # exited
            break
        if received.strip() == line:
            return
    process.kill()
    _, stderr = process.communicate()
    pytest.fail(f"the training process never printed {line!r}:\n{stderr}")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and select on pipes are POSIX")
def test_kill_9_after_a_checkpoint_then_resume_keeps_every_point_exactly_once(tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT)
    first = subprocess.Popen(
        _command(tmp_path, "--config.attempt", "1", "--config.training.checkpoint_every", "10"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(tmp_path),
    )
    try:
        _wait_for_line(first, "READY", timeout=120)
        os.kill(first.pid, signal.SIGKILL)  # no clean-up, no atexit, no flush
    finally:
        first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL

    second = subprocess.run(
        _command(tmp_path, "--resume", "--config.attempt", "2"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env=_environment(tmp_path),
        timeout=300,
    )
    assert second.returncode == 0, second.stderr

    logs = tmp_path / "RUN-0" / "Logs"
    files = sorted(name for name in os.listdir(logs) if "tfevents" in name)
    assert len(files) == 2, files  # one event file per process
    accumulator = EventAccumulator(str(logs), size_guidance={"scalars": 0, "histograms": 0})
    accumulator.Reload()
    points = [(event.step, event.value) for event in accumulator.Scalars("loss")]
    # Steps 0-19 from the killed run (flushed and fsynced by the step-20 checkpoint), its steps
    # 20-24 purged by the resume, then 20-39 from the resumed run: each step once, bit-exact.
    expected = [(step, _value(step, 1)) for step in range(KILL_AFTER)] + [
        (step, _value(step, 2)) for step in range(KILL_AFTER, STEPS)
    ]
    assert points == expected
    histograms = [
        (event.step, event.histogram_value.max) for event in accumulator.Histograms("weights")
    ]
    assert histograms == [(step, step + 2.0) for step in (5, 15, 25, 35)]
