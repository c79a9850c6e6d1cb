"""A tiny model sharded with FSDP2 (``fully_shard`` on a CPU mesh, gloo), trained by speedrun.

Run with ``torchrun --nproc_per_node=N fsdp_experiment.py DIR [speedrun flags]``, or as a plain
``python fsdp_experiment.py DIR ...`` (one process, no process group: the model is not sharded,
which is how a sharded checkpoint is loaded for evaluation or resumed on one process).

The global batch of each step is drawn from a generator seeded by the step and split evenly
between the ranks, so training does not depend on the number of processes (up to floating-point
summation order). Every rank also draws one number from its global torch generator per step and
saves its last draw at the end (``Logs/draw_rank<r>.pt``): equal draws after a resume mean that
each rank's random state came back. At the end rank 0 writes the full parameters to
``Logs/final.pt``.

For the tests: ``TEST_KILL_RANK``/``TEST_KILL_AT_STEP`` make that rank ``kill -9`` itself while
DCP writes its shards of that step's checkpoint; ``TEST_PREEMPT_RANK``/``TEST_PREEMPT_AT_STEP``
make it send itself SIGTERM after that step (a preemption only this rank receives).
"""

from __future__ import annotations

import os
import signal
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint import filesystem
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from speedrun import BaseExperiment, get_rank, get_world_size, register_default_dispatch

BATCH = 8


class FSDPExperiment(BaseExperiment):
    def __init__(self, directory: str | None = None) -> None:
        super().__init__(directory)
        if directory is None:
            self.auto_setup()
        if directory is None and get_world_size() > 1:
            dist.init_process_group("gloo")
        torch.manual_seed(0)
        self.teacher = torch.nn.Linear(4, 1)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
        )
        if dist.is_initialized():
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            mesh = init_device_mesh("cpu", (dist.get_world_size(),))
            for layer in self.model:
                if isinstance(layer, torch.nn.Linear):
                    fully_shard(layer, mesh=mesh)
            fully_shard(self.model, mesh=mesh)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.05)
        self.losses: list[float] = []
        torch.manual_seed(100 + get_rank())  # each rank its own random stream
        self.register_unpickleable("teacher")

    def next_step(self) -> BaseExperiment:
        super().next_step()
        rank = os.environ.get("TEST_PREEMPT_RANK")
        if (
            rank is not None
            and int(rank) == get_rank()
            and self.step == int(os.environ["TEST_PREEMPT_AT_STEP"])
        ):
            os.kill(os.getpid(), signal.SIGTERM)
        return self

    @register_default_dispatch
    def train(self) -> None:
        rank, world = get_rank(), get_world_size() if dist.is_initialized() else 1
        while self.step < self.get("training/num_steps"):
            generator = torch.Generator().manual_seed(1000 + self.step)
            x = torch.randn(BATCH, 4, generator=generator)
            with torch.no_grad():
                y = torch.sin(3 * self.teacher(x))
            part = BATCH // world
            x, y = x[rank * part : (rank + 1) * part], y[rank * part : (rank + 1) * part]
            loss = torch.nn.functional.mse_loss(self.model(x), y)  # gradients: mean over ranks
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.losses.append(loss.item())
            self.draw = torch.rand(1)  # advances this rank's generator
            self.next_step()
            self.checkpoint(force=False)
        full = get_model_state_dict(
            self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        logs = self.log_directory
        assert logs is not None
        torch.save(self.draw, os.path.join(logs, f"draw_rank{rank}.pt"))
        if rank == 0:
            torch.save(full, os.path.join(logs, "final.pt"))


def _kill_while_writing() -> None:
    """``TEST_KILL_*``: this rank dies with SIGKILL in the middle of writing its shards."""
    rank, step = os.environ.get("TEST_KILL_RANK"), os.environ.get("TEST_KILL_AT_STEP")
    if rank is None or step is None or int(rank) != get_rank():
        return
    original = filesystem._FileSystemWriter.write_data

    def write_data(self: Any, plan: Any, planner: Any) -> Any:
        if os.path.basename(os.fspath(self.path)) == f".checkpoint_iter_{step}.saving":
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, plan, planner)

    filesystem._FileSystemWriter.write_data = write_data  # type: ignore[method-assign]  # kills the writer mid-save on purpose


if __name__ == "__main__":
    _kill_while_writing()
    try:
        FSDPExperiment().run()
    finally:
        if dist.is_initialized():  # gloo's threads end before the interpreter does
            dist.destroy_process_group()
