"""The experiment the W&B tests run in real processes (``python wandb_experiment.py DIR ...``).

Each step logs a scalar, every fourth step an image; ``training/checkpoint_every`` saves, and
prints ``CHECKPOINT <step>`` once the checkpoint is on disk. ``TEST_STEP_DELAY`` (seconds)
slows the steps down so that a test can kill the run between two checkpoints. Under torchrun
(``TEST_DISTRIBUTED=1``) every rank logs; only rank 0 may start W&B.
"""

from __future__ import annotations

import os
import time

import numpy as np

from speedrun import BaseExperiment, get_rank, register_default_dispatch
from speedrun.mixins.wandb import WandBMixin


class Train(WandBMixin, BaseExperiment):
    WANDB_PROJECT = "speedrun-tests"

    def __init__(self) -> None:
        super().__init__()
        self.auto_setup()
        if os.environ.get("TEST_DISTRIBUTED"):
            import torch.distributed

            torch.distributed.init_process_group("gloo")
        self.initialize_wandb()

    @register_default_dispatch
    def train(self) -> None:
        num_steps = self.get("training/num_steps")
        every = self.get("training/checkpoint_every")
        delay = float(os.environ.get("TEST_STEP_DELAY", "0"))
        while self.step < num_steps:
            self.wandb_log_scalar("train/loss", 1.0 / (1 + self.step))
            if self.step % 4 == 0:
                image = np.full((3, 4, 5), self.step / num_steps, dtype=np.float32)
                self.wandb_log_image("train/image", image, caption=f"step {self.step}")
            self.next_step()
            self.checkpoint(force=False)
            if every and self.step % every == 0:
                print(f"CHECKPOINT {self.step} rank {get_rank()}", flush=True)
            time.sleep(delay)
        if os.environ.get("TEST_DISTRIBUTED"):
            import torch.distributed

            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    Train().run()
