"""Fit ``y = 3 x - 1`` by gradient descent in plain Python, logging the loss to TensorBoard.

``speedrun-downstream DIR [--resume] [--config.training.num_steps N]``: a first run inherits
``config.yml`` (beside this file) unless ``--inherit`` says otherwise, and writes its
configuration, TensorBoard events under ``DIR/Logs`` and checkpoints under ``DIR/Weights``;
``--resume`` continues from the latest checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import sys
from importlib.metadata import distributions

import numpy  # speedrun-tensorboard depends on it

from speedrun import BaseExperiment, register_default_dispatch
from speedrun.mixins.tensorboard import TensorboardMixin

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.yml")


def points(step: int) -> list[tuple[float, float]]:
    """The batch of one step: eight points on the line, the same for every run."""
    generator = random.Random(step)
    return [(x, 3.0 * x - 1.0) for x in (generator.uniform(-1, 1) for _ in range(8))]


class FitLine(TensorboardMixin, BaseExperiment):
    def __init__(self) -> None:
        super().__init__()
        self.auto_setup()
        self.weight, self.bias = 0.0, 0.0  # plain attributes: checkpointed and restored

    @register_default_dispatch
    def train(self) -> None:
        lr = self.get("training/lr")
        while self.step < self.get("training/num_steps"):
            batch = points(self.step)
            errors = [(self.weight * x + self.bias - y, x) for x, y in batch]
            loss = sum(e * e for e, _ in errors) / len(errors)
            self.weight -= lr * 2 * sum(e * x for e, x in errors) / len(errors)
            self.bias -= lr * 2 * sum(e for e, _ in errors) / len(errors)
            if self.log_scalars_now:
                with self.set_tagscope("train"):
                    self.log_scalars({"loss": loss, "weight": self.weight})
            self.next_step()
            self.checkpoint(force=False)
        self.log_hparams({"final/loss": loss})
        try:
            self.log_image("sample", numpy.eye(4))
        except ImportError as error:  # pillow is optional (speedrun-tensorboard[images])
            print("IMAGE:", error)
        installed = sorted(
            d.metadata["Name"]
            for d in distributions()
            if d.metadata["Name"].lower().startswith("speedrun-")
        )
        print(
            json.dumps(
                {
                    "step": self.step,
                    "weight": round(self.weight, 4),
                    "bias": round(self.bias, 4),
                    "installed": installed,
                }
            )
        )


def main() -> None:
    if "--resume" not in sys.argv and "--inherit" not in sys.argv:
        sys.argv[2:2] = ["--inherit", DEFAULT_CONFIG]
    FitLine().run()


if __name__ == "__main__":
    sys.exit(main())
