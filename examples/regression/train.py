"""A small, real speedrun experiment: an MLP regressing a fixed random function.

Data is synthetic (drawn from torch's RNG every step), so it runs anywhere in seconds::

    python examples/regression/train.py experiments/RUN-0 --inherit examples/regression/base_config.yml
    python examples/regression/train.py experiments/RUN-1 --inherit experiments/RUN-0 --config.training.lr 0.01
    python examples/regression/train.py experiments/RUN-1 --resume          # continue after a kill
    python examples/regression/train.py experiments/RUN-1 --resume --dispatch evaluate
"""

from __future__ import annotations

import torch

from speedrun import BaseExperiment, register_default_dispatch, register_hook
from speedrun.ext import POST_LOAD
from speedrun.mixins.io import IOMixin
from speedrun.mixins.mpl import MatplotlibMixin
from speedrun.mixins.tensorboard import TensorboardMixin


class RegressionExperiment(TensorboardMixin, IOMixin, MatplotlibMixin, BaseExperiment):
    def __init__(self) -> None:
        super().__init__()
        self.auto_setup()
        torch.manual_seed(self.get("seed", 0))
        features = self.get("data/num_features", ensure_exists=True)
        # The function to learn is fixed by the seed: a random two-layer network.
        self.teacher = torch.nn.Sequential(
            torch.nn.Linear(features, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
        )
        layers: list[torch.nn.Module] = []
        width = features
        for hidden in self.get("model/hidden", [32]):
            layers += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
            width = hidden
        self.model = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.get("training/lr", ensure_exists=True)
        )
        self.losses: list[float] = []  # checkpointed with the rest, so the curve survives --resume

    def apply_config(self) -> None:
        """After a checkpoint is loaded: the config's learning rate wins over the restored
        optimizer's, so ``--resume --config.training.lr 0.001`` really lowers it."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.get("training/lr")

    register_hook(apply_config, POST_LOAD)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(self.get("data/batch_size", 64), self.get("data/num_features"))
        with torch.no_grad():
            y = self.teacher(x) + self.get("data/noise", 0.0) * torch.randn(x.shape[0], 1)
        return x, y

    @register_default_dispatch
    def train(self) -> float:
        num_steps = self.get("training/num_steps", ensure_exists=True)
        log_every = self.get("training/log_every", 50)
        for _ in self.progress(
            range(self.step, num_steps), tag="train", initial=self.step, total=num_steps
        ):
            x, y = self.batch()
            loss = torch.nn.functional.mse_loss(self.model(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.losses.append(loss.item())
            if self.log_scalars_now:  # tensorboard/log_scalars_every
                self.log_scalar("train/loss", self.losses[-1])
            self.log_progress("train", loss=self.losses[-1])
            self.next_step()
            self.checkpoint(force=False)  # training/checkpoint_every; the last step is
            # saved when train() returns (training/checkpoint_at_end, default true)
            if self.step % log_every == 0:
                recent = self.losses[-log_every:]
                self.print(f"step {self.step:5d}  loss {sum(recent) / len(recent):.4f}")
        figure = self.new_figure(figsize=(5, 3), layout="constrained")
        axes = figure.subplots()
        axes.plot(self.losses)
        axes.set(xlabel="step", ylabel="training loss", yscale="log")
        self.save_figure("curves/loss", figure)  # Plots/curves/loss_step_<step>.png
        self.print(
            f"done: {self.step} steps, final loss {self.losses[-1]:.4f}; "
            f"checkpoints in {self.checkpoint_directory}, "
            f"TensorBoard logs in {self.log_directory}, plots in {self.plot_directory}"
        )
        return self.losses[-1]

    def evaluate(self) -> float:
        """Evaluate the latest checkpoint (start with ``--resume --dispatch evaluate``)."""
        generator = torch.Generator().manual_seed(1234)
        x = torch.randn(1024, self.get("data/num_features"), generator=generator)
        with torch.no_grad():
            loss = torch.nn.functional.mse_loss(self.model(x), self.teacher(x)).item()
        self.print(f"evaluation at step {self.step}: mse {loss:.4f}")
        return loss


if __name__ == "__main__":
    RegressionExperiment().run()
