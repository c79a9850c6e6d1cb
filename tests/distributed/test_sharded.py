"""For real: an FSDP2 model (``fully_shard`` on a CPU mesh, gloo) checkpointed through DCP.

Launches of ``fsdp_experiment.py`` (12 steps, a sharded checkpoint every 4, keep 2):

- REF: two processes, uninterrupted;
- RUN, launch 1 (asynchronous saves): rank 1 is ``kill -9``-ed while it writes its shards of
  step 8: the checkpoint of step 4 stays the latest, step 8 is never committed;
- RUN, launch 2 (asynchronous saves): ``--resume`` from 4; after step 9 rank 1 alone gets
  SIGTERM: both ranks checkpoint at step 10 and exit with status 75;
- RUN is copied twice here; RUN ``--resume`` (two processes), the first copy ``--resume`` in ONE
  plain process with an unsharded model (2 -> 1), the second with four processes (2 -> 4).

The two-process resume must end bit-identical to REF (parameters and every rank's random
stream); the resharded ones equal up to floating-point summation order.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed.run")
pytest.importorskip("torch.distributed.fsdp")

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "fsdp_experiment.py"
CONFIG = """\
training:
  num_steps: 12
  checkpoint_every: 4
  checkpoint_keep: 2
"""
TIMEOUT = 240


def _environment(**extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SLURM_", "SUBMITIT_", "TORCHELASTIC_", "TEST_", "MASTER_"))
        and name
        not in {
            "RANK",
            "WORLD_SIZE",
            "LOCAL_RANK",
            "LOCAL_WORLD_SIZE",
            "SPEEDRUN_LAUNCH_ID",
            "SPEEDRUN_SETUP_TIMEOUT",
        }
    }
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def _launch(
    directory: Path, *flags: str, nproc: int = 2, **env: str
) -> subprocess.CompletedProcess[str]:
    if nproc:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            str(SCRIPT),
            str(directory),
            *flags,
        ]
    else:  # a plain process: no torchrun, no process group, an unsharded model
        command = [sys.executable, str(SCRIPT), str(directory), *flags]
    return subprocess.run(
        command,
        env=_environment(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=directory.parent,
    )


def _weights(folder: Path) -> list[str]:
    return sorted(
        name for name in os.listdir(folder / "Weights") if name != ".speedrun-checkpoints.json"
    )  # the run's checkpoint record


def _final(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "Logs" / "final.pt", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("sharded")
    (root / "config.yml").write_text(CONFIG)
    inherit = ("--inherit", str(root / "config.yml"))
    reference, run = root / "REF", root / "RUN"
    results: dict[str, object] = {"root": root, "reference": reference, "run": run}
    ref = _launch(reference, *inherit)
    assert ref.returncode == 0, ref.stderr[-4000:]

    asynchronous = ("--config.training.checkpoint_async", "True")
    killed = _launch(run, *inherit, *asynchronous, TEST_KILL_RANK="1", TEST_KILL_AT_STEP="8")
    results["killed"], results["after_kill"] = killed, _weights(run)

    preempted = _launch(
        run, "--resume", *asynchronous, TEST_PREEMPT_RANK="1", TEST_PREEMPT_AT_STEP="9"
    )
    results["preempted"], results["after_preemption"] = preempted, _weights(run)
    for copy in ("ONE", "FOUR"):
        shutil.copytree(run, root / copy)

    finished = _launch(run, "--resume")
    assert finished.returncode == 0, finished.stderr[-4000:]
    one = _launch(root / "ONE", "--resume", nproc=0)
    assert one.returncode == 0, one.stderr[-4000:]
    return results


def test_a_rank_killed_while_writing_leaves_the_previous_checkpoint(runs: dict) -> None:
    assert runs["killed"].returncode != 0
    assert "Signal 9 (SIGKILL)" in runs["killed"].stderr, runs["killed"].stderr[-4000:]
    listing = runs["after_kill"]
    assert "checkpoint_iter_4" in listing and "checkpoint_iter_8" not in listing, listing
    assert ".checkpoint_iter_8.saving" in listing  # the uncommitted save, hidden


def test_preemption_agrees_writes_every_shard_and_exits_75(runs: dict) -> None:
    preempted = runs["preempted"]
    assert "exitcode  : 75" in preempted.stderr, preempted.stderr[-4000:]
    # periodic checkpoint at 8, the preemption checkpoint at 10 (keep 2); the leftover of the
    # killed save is gone
    assert runs["after_preemption"] == ["checkpoint_iter_10", "checkpoint_iter_8"]
    checkpoint = runs["run"] / "Weights" / "checkpoint_iter_10"
    names = sorted(os.listdir(checkpoint))
    assert {".metadata", ".speedrun-commit", "speedrun_state.pt", "rank_1_random_state.pkl"} <= set(
        names
    ), names
    assert [name for name in names if name.endswith(".distcp")] == ["__0_0.distcp", "__1_0.distcp"]


def test_same_world_size_resume_is_bit_identical(runs: dict) -> None:
    reference, run = runs["reference"], runs["run"]
    ref, got = _final(reference), _final(run)
    assert ref.keys() == got.keys()
    for name in ref:
        assert torch.equal(ref[name], got[name]), name
    for rank in (0, 1):  # every rank's random stream came back on each resume
        draws = [torch.load(folder / "Logs" / f"draw_rank{rank}.pt") for folder in (reference, run)]
        assert torch.equal(*draws), rank
    assert _weights(run) == ["checkpoint_iter_10", "checkpoint_iter_12"]


def test_one_unsharded_process_resumes_a_two_process_checkpoint(runs: dict) -> None:
    ref, got = _final(runs["reference"]), _final(runs["root"] / "ONE")
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-6)


def test_a_sharded_checkpoint_loads_into_an_unsharded_model_in_this_process(runs: dict) -> None:
    sys.path.insert(0, str(HERE))
    try:
        from fsdp_experiment import FSDPExperiment
    finally:
        sys.path.remove(str(HERE))
    experiment = FSDPExperiment(str(runs["run"]))
    experiment.load_from_checkpoint()
    assert experiment.step == 12 and len(experiment.losses) == 12
    ref = _final(runs["reference"])
    for name, value in experiment.model.state_dict().items():
        assert torch.equal(value, ref[name]), name


def test_four_processes_resume_a_two_process_checkpoint(runs: dict) -> None:
    four = runs["root"] / "FOUR"
    result = _launch(four, "--resume", nproc=4)
    assert result.returncode == 0, result.stderr[-4000:]
    ref, got = _final(runs["reference"]), _final(four)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-6)
    assert "Rank 3 resumes from step 10 without its own random state" in result.stderr
