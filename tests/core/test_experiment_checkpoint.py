"""BaseExperiment's checkpoints: checkpoint(), load_from_checkpoint(), --resume, preemption."""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest
import yaml

from speedrun import (
    PREEMPTION_EXIT_CODE,
    BaseExperiment,
    CheckpointError,
    register_hook,
)


def _visible(folder):
    """The files of a folder but the hidden ones (the run's checkpoint record)."""
    return [name for name in os.listdir(folder) if not name.startswith(".")]


class Counter(BaseExperiment):
    def __init__(self, directory=None):
        super().__init__(directory)
        self.total = 0
        self.loaded_hook_calls = 0
        self.handle = threading.Lock()  # not picklable
        self.register_unpickleable("handle")

    def on_load(self):
        self.loaded_hook_calls += 1

    register_hook(on_load, "post_load")


def test_checkpoint_and_load_restore_state(tmp_path):
    experiment = Counter(tmp_path / "RUN")
    experiment.total = 5
    experiment.write_to_cache("losses", [1.0, 0.5])
    experiment.next_step().next_step().next_epoch().checkpoint()
    assert os.path.isfile(experiment.checkpoint_path)

    fresh = Counter(tmp_path / "RUN")
    handle = fresh.handle
    fresh.set("kept", "live config")
    fresh.load_from_checkpoint()
    assert (fresh.step, fresh.epoch, fresh.total) == (2, 1, 5)
    assert fresh.read_from_cache("losses") == [1.0, 0.5]
    assert fresh.handle is handle  # registered unpickleable: untouched by the load
    assert fresh.get("kept") == "live config"  # the config is not taken from the checkpoint
    assert fresh.loaded_hook_calls == 1


def test_checkpoint_every_and_keep(tmp_path):
    experiment = Counter(tmp_path / "RUN")
    experiment.set("training/checkpoint_every", 2).set("training/checkpoint_keep", 2)
    for _ in range(7):
        experiment.next_step()
        experiment.checkpoint(force=False)
    names = sorted(_visible(experiment.checkpoint_directory))
    assert names == ["checkpoint_iter_4.pt", "checkpoint_iter_6.pt"]


def test_checkpoint_without_every_warns_and_saves_nothing(tmp_path):
    experiment = Counter(tmp_path / "RUN")
    with pytest.warns(UserWarning, match="training/checkpoint_every"):
        experiment.checkpoint(force=False)
    assert _visible(experiment.checkpoint_directory) == []


def test_unpicklable_attribute_is_named_and_previous_checkpoint_survives(tmp_path):
    experiment = Counter(tmp_path / "RUN")
    experiment.checkpoint()
    before = open(experiment.checkpoint_path, "rb").read()
    experiment.log_file = open(os.devnull, "w")
    try:
        with pytest.raises(CheckpointError, match=r"log_file.*register_unpickleable"):
            experiment.checkpoint()
    finally:
        experiment.log_file.close()
    assert open(experiment.checkpoint_path, "rb").read() == before
    assert _visible(experiment.checkpoint_directory) == ["checkpoint_iter_0.pt"]


def test_load_of_missing_step_lists_existing_steps(tmp_path):
    experiment = Counter(tmp_path / "RUN")
    experiment.checkpoint()
    experiment.next_step().next_step().checkpoint()
    with pytest.raises(CheckpointError, match="Steps with checkpoints: 0, 2"):
        experiment.load_from_checkpoint(step=1)
    with pytest.warns(UserWarning, match="later checkpoints"):
        experiment.load_from_checkpoint(step=0)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Counter(tmp_path / "EMPTY").load_from_checkpoint()


def test_load_skips_a_truncated_newest_checkpoint(tmp_path):
    experiment = Counter(tmp_path / "RUN")
    experiment.total = 1
    experiment.next_step().checkpoint()
    experiment.total = 2
    experiment.next_step().checkpoint()
    with open(experiment.checkpoint_path, "r+b") as handle:
        handle.truncate(100)
    fresh = Counter(tmp_path / "RUN")
    with pytest.warns(UserWarning, match="checkpoint_iter_2.pt"):
        fresh.load_from_checkpoint()
    assert (fresh.step, fresh.total) == (1, 1)


# --------------------------------------------------------------------------- whole runs

TRAIN = textwrap.dedent("""\
    import os, signal, sys
    import torch
    from speedrun import BaseExperiment, register_default_dispatch

    class Train(BaseExperiment):
        def __init__(self):
            super().__init__()
            self.auto_setup()
            torch.manual_seed(0)
            self.model = torch.nn.Linear(4, 1)
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)

        @register_default_dispatch
        def train(self):
            while self.step < self.get("steps"):
                x = torch.randn(8, 4)
                loss = ((self.model(x) - x.sum(1, keepdim=True)) ** 2).mean()
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                print(f"{self.step} {loss.item()!r}", flush=True)
                self.next_step()
                self.checkpoint(force=False)
                if self.step == self.get("kill_at", -1):
                    os.kill(os.getpid(), signal.SIGKILL)
                if self.step == self.get("signal_at", -1):
                    os.kill(os.getpid(), signal.SIGTERM)  # handled at the next step boundary
            torch.save(self.model.state_dict(), os.path.join(self.experiment_directory, "final.pt"))

    Train().run()
    """)


def run_train(tmp_path, *args):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def losses(output):
    return dict(line.split() for line in output.splitlines())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_resume_after_kill_is_bit_identical(tmp_path, mode):
    """2N steps straight == N steps, kill -9, --resume, the rest (async: the run killed while
    the write of step N may still be in flight resumes from the newest committed step)."""
    torch = pytest.importorskip("torch")
    n = 6
    common = [
        "--config.steps",
        2 * n,
        "--config.training.checkpoint_every",
        1,
        "--config.training.checkpoint_async",
        str(mode == "async").lower(),
    ]
    straight = run_train(tmp_path, "A", *common)
    assert straight.returncode == 0, straight.stderr
    killed = run_train(tmp_path, "B", *common, "--config.kill_at", n)
    assert killed.returncode == -signal.SIGKILL
    resumed = run_train(tmp_path, "B", "--resume", "--config.kill_at", -1)
    assert resumed.returncode == 0, resumed.stderr
    expected = losses(straight.stdout)
    got = {**losses(killed.stdout), **losses(resumed.stdout)}
    assert got == expected and len(got) == 2 * n
    first = min(map(int, losses(resumed.stdout)))
    if mode == "sync":
        assert first == n  # continued, not restarted
    else:  # the save of step n may have been cut short by the kill: then n - 1 (never less)
        assert n - 1 <= first <= n
    a = torch.load(tmp_path / "A" / "final.pt")
    b = torch.load(tmp_path / "B" / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    config = yaml.safe_load((tmp_path / "B/Configurations/train_config.yml").read_text())
    assert config["kill_at"] == -1  # overrides given with --resume are applied and recorded


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_preemption_checkpoints_and_exits_75_then_resumes(tmp_path, mode):
    pytest.importorskip("torch")
    extra = []
    if mode == "async":  # a background save of step 3 is pending when the signal is handled
        extra = [
            "--config.training.checkpoint_async",
            "true",
            "--config.training.checkpoint_every",
            1,
            "--config.training.checkpoint_keep",
            1,
        ]
    first = run_train(tmp_path, "P", "--config.steps", 10, "--config.signal_at", 3, *extra)
    assert first.returncode == PREEMPTION_EXIT_CODE, first.stderr
    assert sorted(_visible(tmp_path / "P" / "Weights")) == ["checkpoint_iter_4.pt"]
    again = run_train(tmp_path, "P", "--resume", "--config.signal_at", -1)
    assert again.returncode == 0, again.stderr
    assert sorted(map(int, losses(again.stdout))) == list(range(4, 10))


def test_resume_without_checkpoint_starts_at_zero(tmp_path):
    pytest.importorskip("torch")
    result = run_train(tmp_path, "R", "--resume", "--config.steps", 2)
    assert result.returncode != 0  # no such run: --resume needs an existing one
    assert "nothing to resume at R" in result.stderr
    assert not (tmp_path / "R").exists()  # the failed set-up left nothing behind
    (tmp_path / "R" / "Configurations").mkdir(parents=True)
    (tmp_path / "R" / "Configurations" / "train_config.yml").write_text("steps: 2\n")
    result = run_train(tmp_path, "R", "--resume")
    assert result.returncode == 0, result.stderr
    assert "no checkpoint" in result.stderr
    assert sorted(map(int, losses(result.stdout))) == [0, 1]
