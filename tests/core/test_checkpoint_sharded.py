"""Sharded checkpoint directories in one process (``training/checkpoint_sharded: true``, DCP
without a process group): discovery, retention, commit, loads, async saves, ls/show.

The multi-process behaviour (FSDP2 shards, kills, preemption, resharding) is tested under
torchrun in tests/distributed/test_sharded.py.
"""

from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed.checkpoint")

from speedrun import BaseExperiment, CheckpointError
from speedrun.checkpoint import _sharded
from speedrun.checkpoint._files import find_checkpoint, list_checkpoints
from speedrun.checkpoint._io import load_latest_valid
from speedrun.cli._main import main
from speedrun.experiment._runinfo import latest_valid_checkpoint
from speedrun.experiment._sharding import wait


def _listing(folder: object) -> list[str]:
    """The Weights/ folder's entries, less the run's checkpoint record."""
    return sorted(name for name in os.listdir(folder) if name != ".speedrun-checkpoints.json")


class Model(BaseExperiment):
    def __init__(self, directory, **config):
        super().__init__(directory)
        self.set("training/checkpoint_sharded", True)
        for key, value in config.items():
            self.set(f"training/{key}", value)
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.1)
        self.notes: list[int] = []

    def train_step(self):
        loss = self.model(torch.randn(5, 3)).pow(2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.notes.append(self.step)
        return self.next_step()


def _parameters(experiment):
    return {name: value.detach().clone() for name, value in experiment.model.state_dict().items()}


def test_a_sharded_save_is_a_committed_directory_that_loads(tmp_path):
    experiment = Model(tmp_path / "RUN")
    experiment.train_step().train_step().checkpoint()
    weights = tmp_path / "RUN" / "Weights"
    folder = weights / "checkpoint_iter_2"
    assert _listing(weights) == ["checkpoint_iter_2"]
    assert {".metadata", ".speedrun-commit", "speedrun_state.pt"} <= set(os.listdir(folder))
    assert list_checkpoints(weights) == [(2, folder)] and find_checkpoint(weights, 2) == folder
    expected, moments = _parameters(experiment), experiment.optimizer.state_dict()["state"]

    fresh = Model(tmp_path / "RUN")
    fresh.load_from_checkpoint()
    assert (fresh.step, fresh.notes) == (2, [0, 1])
    assert all(torch.equal(value, expected[name]) for name, value in _parameters(fresh).items())
    loaded = fresh.optimizer.state_dict()["state"]
    assert all(torch.equal(loaded[i]["exp_avg_sq"], moments[i]["exp_avg_sq"]) for i in moments)
    # training goes on exactly as in the original process
    torch.manual_seed(7)
    experiment.train_step()
    torch.manual_seed(7)
    fresh.train_step()
    assert all(
        torch.equal(value, _parameters(experiment)[name])
        for name, value in _parameters(fresh).items()
    )


def test_retention_deletes_old_directories_and_files_alike(tmp_path):
    experiment = Model(tmp_path / "RUN", checkpoint_keep=2)
    experiment.set("training/checkpoint_sharded", False)
    experiment.train_step().checkpoint()  # a single-file checkpoint: no DTensor here
    experiment.set("training/checkpoint_sharded", True)
    for _ in range(3):
        experiment.train_step().checkpoint()
    assert _listing(tmp_path / "RUN" / "Weights") == ["checkpoint_iter_3", "checkpoint_iter_4"]


def test_an_uncommitted_directory_is_skipped_and_never_deleted(tmp_path):
    experiment = Model(tmp_path / "RUN", checkpoint_keep=2)
    experiment.train_step().checkpoint()
    experiment.train_step().checkpoint()
    weights = tmp_path / "RUN" / "Weights"
    (weights / "checkpoint_iter_2" / ".speedrun-commit").unlink()  # as if copied half-way
    foreign = weights / "checkpoint_iter_0"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not speedrun's")
    with pytest.warns(UserWarning, match="checkpoint_iter_2.*commit marker"):
        loaded = load_latest_valid(weights, experiment_class=None)
    assert loaded is not None and loaded.step == 1
    assert latest_valid_checkpoint(tmp_path / "RUN") == (1, str(weights / "checkpoint_iter_1"))
    experiment.train_step().checkpoint()  # keep=2: deletes only committed directories
    assert _listing(weights) == ["checkpoint_iter_0", "checkpoint_iter_2", "checkpoint_iter_3"]
    assert (foreign / "notes.txt").read_text() == "not speedrun's"


def test_a_save_interrupted_before_the_rename_leaves_the_previous_one(tmp_path, monkeypatch):
    experiment = Model(tmp_path / "RUN")
    experiment.train_step().checkpoint()
    saved = _parameters(experiment)
    real_rename = os.rename

    def crash(source, target):
        if str(source).endswith(".saving"):
            raise OSError(5, "Input/output error (simulated crash before the commit)")
        return real_rename(source, target)

    monkeypatch.setattr(_sharded.os, "rename", crash)
    with pytest.raises(CheckpointError, match="could not commit.*simulated crash"):
        experiment.train_step().checkpoint()
    weights = tmp_path / "RUN" / "Weights"
    assert _listing(weights) == [".checkpoint_iter_2.saving", "checkpoint_iter_1"]
    fresh = Model(tmp_path / "RUN")
    fresh.load_from_checkpoint()
    assert fresh.step == 1
    assert all(torch.equal(value, saved[name]) for name, value in _parameters(fresh).items())
    monkeypatch.setattr(_sharded.os, "rename", real_rename)
    fresh.train_step().checkpoint()  # the next save cleans the leftover up
    assert _listing(weights) == ["checkpoint_iter_1", "checkpoint_iter_2"]


def test_an_unpicklable_attribute_is_named_and_nothing_is_committed(tmp_path):
    import threading

    experiment = Model(tmp_path / "RUN")
    experiment.train_step().checkpoint()
    experiment.lock = threading.Lock()
    with pytest.raises(CheckpointError, match=r"'lock' cannot be pickled.*register_unpickleable"):
        experiment.train_step().checkpoint()
    assert [step for step, _ in list_checkpoints(tmp_path / "RUN" / "Weights")] == [1]
    experiment.register_unpickleable("lock")
    experiment.checkpoint()
    assert _listing(tmp_path / "RUN" / "Weights") == ["checkpoint_iter_1", "checkpoint_iter_2"]


def test_asynchronous_saves_commit_in_the_background(tmp_path):
    experiment = Model(tmp_path / "RUN", checkpoint_async=True, checkpoint_keep=2)
    experiment.train_step().checkpoint()
    snapshot = _parameters(experiment)
    experiment.train_step()  # the parameters change while the save may still be writing
    experiment.checkpoint()  # waits for the first one before starting
    wait(experiment)
    weights = tmp_path / "RUN" / "Weights"
    assert _listing(weights) == ["checkpoint_iter_1", "checkpoint_iter_2"]
    fresh = Model(tmp_path / "RUN")
    fresh.load_from_checkpoint(1)
    assert all(torch.equal(value, snapshot[name]) for name, value in _parameters(fresh).items())


def test_a_missing_module_is_named_on_load(tmp_path):
    Model(tmp_path / "RUN").train_step().checkpoint()
    fresh = Model(tmp_path / "RUN")
    del fresh.optimizer
    with pytest.raises(CheckpointError, match="sharded optimizer 'optimizer'.*NoneType"):
        fresh.load_from_checkpoint()


def test_ls_and_show_report_sharded_checkpoints(tmp_path, monkeypatch, capsys):
    experiment = Model(tmp_path / "RUN")
    experiment.dump_configuration()
    experiment.train_step().train_step().train_step().checkpoint()
    assert latest_valid_checkpoint(tmp_path / "RUN") == (
        3,
        str(tmp_path / "RUN" / "Weights" / "checkpoint_iter_3"),
    )
    monkeypatch.chdir(tmp_path)
    assert main(["show", "--json", "RUN"]) == 0
    assert json.loads(capsys.readouterr().out)["latest_checkpoint_step"] == 3
    assert main(["ls", "--json", "."]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["step"] for row in rows] == [3]
