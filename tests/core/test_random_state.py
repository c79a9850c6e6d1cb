"""Tests of speedrun.checkpoint._random_state, including the exact-resume contract across processes."""

from __future__ import annotations

import json
import os
import random
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")  # the random state of NumPy and torch is what this file tests
torch = pytest.importorskip("torch")
import speedrun.checkpoint._random_state
from speedrun._errors import CheckpointError
from speedrun.checkpoint._io import load_checkpoint, save_checkpoint
from speedrun.checkpoint._random_state import (
    RANDOM_STATE_FORMAT,
    capture_random_state,
    restore_random_state,
)

_SOURCE_ROOT = str(Path(speedrun.__file__).resolve().parents[1])


def _draws() -> tuple:
    return (
        [random.random() for _ in range(3)],
        np.random.rand(3).tolist(),
        np.random.normal(size=2).tolist(),
        torch.rand(3).tolist(),
        torch.randn(2).tolist(),
    )


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=_SOURCE_ROOT)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def test_capture_then_restore_repeats_every_generator():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    _draws()
    state = capture_random_state()
    assert state["format"] == RANDOM_STATE_FORMAT and {"python", "numpy", "torch"} <= set(state)
    expected = _draws()
    assert capture_random_state()["python"] != state["python"]  # the draws did advance it
    restore_random_state(state)
    assert _draws() == expected


def test_capture_does_not_advance_generators():
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    capture_random_state()
    after_capture = _draws()
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    assert _draws() == after_capture


@pytest.mark.parametrize("serializer", ["torch", "dill", "pickle"])
def test_random_state_survives_a_checkpoint(tmp_path, serializer):
    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    state = capture_random_state()
    expected = _draws()
    path = save_checkpoint(
        tmp_path, 1, {"rng": state}, experiment_class="t.T", serializer=serializer
    )
    restore_random_state(load_checkpoint(path).state["rng"])
    assert _draws() == expected


def test_unused_libraries_are_neither_imported_nor_captured():
    result = _run_python(
        """
        import sys
        from speedrun.checkpoint._random_state import capture_random_state, restore_random_state
        state = capture_random_state()
        restore_random_state(state)
        print(sorted(state), "numpy" in sys.modules, "torch" in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['format', 'python', 'version'] False False"


def test_restore_rejects_what_capture_did_not_make():
    with pytest.raises(CheckpointError, match="capture_random_state.*got list"):
        restore_random_state([1, 2])
    with pytest.raises(CheckpointError, match="got a dict with keys"):
        restore_random_state({"python": random.getstate()})
    with pytest.raises(CheckpointError, match="version 7"):
        restore_random_state({"format": RANDOM_STATE_FORMAT, "version": 7})
    with pytest.raises(CheckpointError, match="'python' entry is malformed"):
        restore_random_state({"format": RANDOM_STATE_FORMAT, "version": 1, "python": (9, 9)})
    with pytest.raises(CheckpointError, match="'torch' entry is malformed"):
        restore_random_state({"format": RANDOM_STATE_FORMAT, "version": 1, "torch": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="'torch_cuda' entry should be a list"):
        restore_random_state({"format": RANDOM_STATE_FORMAT, "version": 1, "torch_cuda": 3})


def test_unknown_entries_and_missing_gpus_warn():
    state = capture_random_state()
    state["jax"] = "future generator"
    with pytest.warns(UserWarning, match="unknown entries.*jax"):
        restore_random_state(state)
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA devices")
    state = capture_random_state()
    state["torch_cuda"] = [torch.zeros(8, dtype=torch.uint8)]
    with pytest.warns(UserWarning, match="1 CUDA generator.*0 CUDA device"):
        restore_random_state(state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_generators_are_captured_once_initialized():  # pragma: no cover - GPU machines
    torch.cuda.init()
    torch.cuda.manual_seed_all(4)
    state = capture_random_state()
    assert len(state["torch_cuda"]) == torch.cuda.device_count()
    expected = torch.rand(4, device="cuda").tolist()
    restore_random_state(state)
    assert torch.rand(4, device="cuda").tolist() == expected


# ---------------------------------------------------------------------------------------------
# The contract: 2N steps in one go == N steps, checkpoint, fresh process, N more steps.

_TRAIN = """
    import json, random, sys
    import numpy as np
    import torch
    from speedrun.checkpoint._io import load_checkpoint, save_checkpoint
    from speedrun.checkpoint._random_state import capture_random_state, restore_random_state

    mode, folder, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    def make():
        model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(),
                                    torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))
        return model, torch.optim.AdamW(model.parameters(), lr=0.05)

    def train(model, optimizer, steps):
        losses = []
        for _ in range(steps):
            x = torch.randn(8, 6)                                   # torch RNG
            x = x + torch.from_numpy(np.random.normal(size=(8, 6))).float() * 0.1   # numpy RNG
            order = list(range(8)); random.shuffle(order)           # python RNG
            x = x[order]
            y = x.sum(dim=1, keepdim=True)
            loss = torch.nn.functional.mse_loss(model(x), y)        # dropout: torch RNG
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            losses.append(loss.item())
        return losses

    def weights(model):
        return [p.detach().flatten().tolist() for p in model.parameters()]

    if mode == "first":
        torch.manual_seed(0); np.random.seed(0); random.seed(0)
        model, optimizer = make()
        losses = train(model, optimizer, n)
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "rng": capture_random_state()}
        save_checkpoint(folder, n, state,
                        experiment_class="contract.Train")
        losses += train(model, optimizer, n)   # the uninterrupted reference run
        result = {"losses": losses, "weights": weights(model)}
    else:
        results = {}
        for restore_rng in (False, True):   # False is the control: resuming without RNG state
            # Loaded per branch: optimizer.load_state_dict adopts (and then updates) its tensors.
            checkpoint = load_checkpoint(folder, n, experiment_class="contract.Train")
            model, optimizer = make()
            model.load_state_dict(checkpoint.state["model"])
            optimizer.load_state_dict(checkpoint.state["optimizer"])
            if restore_rng:
                restore_random_state(checkpoint.state["rng"])
            losses = train(model, optimizer, n)
            results[str(restore_rng)] = {"losses": losses, "weights": weights(model)}
        result = results
    with open(out, "w") as handle:
        json.dump(result, handle)
"""


def test_resume_in_a_fresh_process_is_bit_identical(tmp_path, monkeypatch):
    n = 12
    folder = tmp_path / "Weights"
    script = tmp_path / "contract.py"
    script.write_text(textwrap.dedent(_TRAIN))
    # The uninterrupted run (and the checkpoint at step n) in this process: one torch start-up
    # less; the resume runs in a fresh process.
    monkeypatch.setattr(
        sys, "argv", [str(script), "first", str(folder), str(tmp_path / "first.json"), str(n)]
    )
    runpy.run_path(str(script), run_name="__main__")
    second = _run_python(_TRAIN, "resume", str(folder), str(tmp_path / "resume.json"), str(n))
    assert second.returncode == 0, second.stderr
    reference = json.loads((tmp_path / "first.json").read_text())
    resumed = json.loads((tmp_path / "resume.json").read_text())
    assert len(reference["losses"]) == 2 * n
    # Bit-identical: floats survive JSON exactly (repr round-trips), so == is exact equality.
    assert resumed["True"]["losses"] == reference["losses"][n:]
    assert resumed["True"]["weights"] == reference["weights"]
    # The control shows the test can fail: without the RNG state the continuation differs.
    assert resumed["False"]["losses"] != reference["losses"][n:]
