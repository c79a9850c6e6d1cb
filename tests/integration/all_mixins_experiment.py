"""One experiment class built from every speedrun mixin, run from the command line.

``python all_mixins_experiment.py DIR [speedrun flags]`` runs the experiment twice, with the
same command line on ``DIR/mixins-first`` (the recommended ``class E(Mixins...,
BaseExperiment)``) and on ``DIR/base-first`` (``class E(BaseExperiment, Mixins...)``): one
process for both keeps the test fast (torch, inferno, firelight and matplotlib load once).
Each run trains with Inferno (TensorBoard through the shared writer), then,
inside one tag scope, logs a scalar, prints an image, saves a figure and a Firelight grid,
prints a line to ``Logs/stdout``, and checkpoints. ``Logs/report.json`` says what it saw.
"""

from __future__ import annotations

import json
import os

import torch
from torch.utils.data import DataLoader, TensorDataset

from speedrun import BaseExperiment, register_default_dispatch
from speedrun.ext import atomic_write_text
from speedrun.mixins.firelight import FirelightMixin
from speedrun.mixins.inferno import InfernoMixin
from speedrun.mixins.io import IOMixin
from speedrun.mixins.mpl import MatplotlibMixin
from speedrun.mixins.submitit import SubmititMixin
from speedrun.mixins.tensorboard import TensorboardMixin
from speedrun.mixins.waiter import WaiterMixin

MIXINS = (
    TensorboardMixin,
    IOMixin,
    MatplotlibMixin,
    InfernoMixin,
    FirelightMixin,
    WaiterMixin,
    SubmititMixin,
)


def _data(size: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(size) % 2
    images = 0.2 * torch.rand(size, 1, 6, 6, generator=generator) + labels.float().view(-1, 1, 1, 1)
    return TensorDataset(images.clamp(0, 1), labels)


class Body:
    """The experiment's own code, the same in both base orders."""

    def __init__(self) -> None:
        super().__init__()
        self.auto_setup()
        self.print_to_file(True)  # IOMixin: Logs/stdout
        self.wait()  # WaiterMixin prints through IOMixin
        self.sessions: list[int] = []  # checkpointed: one entry per process

    def build_model(self) -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2))

    def build_train_loader(self) -> DataLoader:
        return DataLoader(_data(32, 1), batch_size=8, shuffle=False)

    def build_val_loader(self) -> DataLoader:
        return DataLoader(_data(16, 2), batch_size=8)

    @register_default_dispatch
    def fit(self) -> None:
        start = self.step
        self.sessions.append(start)
        trainer = self.train()  # InfernoMixin: trainer.fit()
        images = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(self.step))
        figure = self.new_figure(figsize=(1, 1), dpi=20)
        figure.subplots().plot([0, 1], [1, 0])
        with self.set_tagscope("val"):  # one scope for every mixin
            self.log_scalar("accuracy", 0.5 + self.step / 100)
            self.print_image("input", images[0])  # (1, 6, 6): CHW grayscale
            figure_files = self.save_figure("curve", figure)
            grid_files = self.save_image_grid({"inputs": [images]}, "grid")
            self.log_image_grid({"inputs": [images]}, "grid")
        self.print(f"session from {start} to {self.step}")
        self.checkpoint(force=True)
        report = {
            "step": self.step,
            "start": start,
            "sessions": self.sessions,
            "iterations": trainer.iteration_count,
            "figure_files": figure_files,
            "grid_files": grid_files,
            "sweep_point": self.sweep_point,
            "job_attempt": self.job_attempt,
            "tagscope_after": self.tagscope,
            "instance_attributes": sorted(vars(self)),
        }
        atomic_write_text(
            os.path.join(self.log_directory, f"report_{self.step}.json"), json.dumps(report)
        )


class MixinsFirst(Body, *MIXINS, BaseExperiment):  # type: ignore[misc]  # the mixin list is unpacked at runtime
    pass


class BaseFirst(Body, BaseExperiment, *MIXINS):  # type: ignore[misc]  # the mixin list is unpacked at runtime
    pass


ORDERS = {"mixins-first": MixinsFirst, "base-first": BaseFirst}

if __name__ == "__main__":
    import sys

    program, directory, *flags = sys.argv
    for order, cls in ORDERS.items():
        sys.argv = [program, os.path.join(directory, order), *flags]
        cls().run()
