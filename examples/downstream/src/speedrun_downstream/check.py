"""Read a run's TensorBoard events back with TensorBoard's own reader and check them.

``python -m speedrun_downstream.check DIR`` (needs ``pip install speedrun-downstream[check]``).
"""

from __future__ import annotations

import json
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from speedrun.ext import LOGS


def main(run: str) -> dict[str, object]:
    accumulator = EventAccumulator(os.path.join(run, LOGS), size_guidance={"scalars": 0})
    accumulator.Reload()
    loss = [(event.step, event.value) for event in accumulator.Scalars("train/loss")]
    steps = [step for step, _ in loss]
    if steps != sorted(set(steps)) or steps[0] != 0:
        raise SystemExit(
            f"expected one train/loss event per logged step from 0 on, got steps {steps}"
        )
    if not loss[-1][1] < loss[0][1] / 10:
        raise SystemExit(f"the loss did not fall: {loss}")
    if "_hparams_/session_start_info" not in accumulator.PluginTagToContent("hparams"):
        raise SystemExit("no HParams session was logged")
    return {"steps": steps, "first_loss": round(loss[0][1], 4), "last_loss": round(loss[-1][1], 6)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
