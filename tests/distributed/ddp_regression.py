"""The example experiment (examples/regression/train.py) trained with DistributedDataParallel.

Run with ``torchrun --nproc_per_node=2 ddp_regression.py DIR [speedrun flags]`` (gloo, CPU).
Every rank draws its own batches (seeded by rank), so the model after step 20 depends on every
rank's random state: a resume that did not restore each rank's generators diverges from an
uninterrupted run. For the tests, ``TEST_KILL_RANK``/``TEST_KILL_AT_STEP`` make that rank
``kill -9`` itself after that step, and ``TEST_PREEMPT_RANK``/``TEST_PREEMPT_AT_STEP`` make it
send itself SIGTERM (a preemption request that only this rank receives).
"""

from __future__ import annotations

import os
import signal
import sys

import torch
import torch.distributed as dist

sys.path.insert(
    0,
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "regression"),
)

from train import RegressionExperiment

from speedrun import BaseExperiment, get_rank, register_default_dispatch


class DDPRegressionExperiment(RegressionExperiment):
    def __init__(self) -> None:
        super().__init__()  # auto_setup(), then the same teacher and model on every rank
        dist.init_process_group("gloo")
        self.model = torch.nn.parallel.DistributedDataParallel(self.model)
        torch.manual_seed(1000 * (1 + get_rank()) + self.get("seed", 0))  # each rank its data

    def next_step(self) -> BaseExperiment:
        super().next_step()
        for action, signum in (("KILL", signal.SIGKILL), ("PREEMPT", signal.SIGTERM)):
            rank = os.environ.get(f"TEST_{action}_RANK")
            if (
                rank is not None
                and int(rank) == get_rank()
                and self.step == int(os.environ[f"TEST_{action}_AT_STEP"])
            ):
                os.kill(os.getpid(), signum)
        return self

    @register_default_dispatch  # an override without the mark is not the default any more
    def train(self) -> float:
        loss = super().train()
        self.dump_yaml("losses", {"losses": self.losses, "rank": get_rank()})  # rank 0 only
        return loss


if __name__ == "__main__":
    DDPRegressionExperiment().run()
