"""For real: the example experiment with DistributedDataParallel under ``torchrun``, on CPU (gloo).

Four launches of two processes each (about 10 s apiece on two cores), the three of RUN once with
synchronous and once with asynchronous checkpoint saves:

- REF: 40 steps, uninterrupted;
- RUN, launch 1: rank 1 is ``kill -9``-ed after step 25 (checkpoints at 10 and 20 survive);
- RUN, launch 2: ``--resume`` from 20; after step 32 rank 1 alone gets SIGTERM: the ranks agree
  to preempt at step 33, checkpoint there and exit with status 75;
- RUN, launch 3: ``--resume`` from 33 to 40.

Every rank draws its own batches, so RUN ends exactly like REF only if every rank's random
state came back on each resume. And whatever the launches, the directory holds one config, one
event log (one file per launch, all from rank 0) and one checkpoint series.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch.distributed.run")
pytest.importorskip("speedrun.mixins.io")
pytest.importorskip("speedrun.mixins.mpl")
pytest.importorskip("speedrun.mixins.tensorboard")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
yaml = pytest.importorskip("yaml")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPT = HERE / "ddp_regression.py"
BASE = REPO / "examples" / "regression" / "base_config.yml"
OVERRIDES = [
    "--config.training.num_steps",
    "40",
    "--config.training.checkpoint_every",
    "10",
    "--config.training.log_every",
    "10",
    "--config.data.batch_size",
    "16",
    "--config.model.hidden",
    "[8]",
    "--config.tensorboard.log_scalars_every",
    "10",
]
LAUNCH_TIMEOUT = 300


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


def _torchrun(directory: Path, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(SCRIPT),
        str(directory),
        *flags,
    ]
    return subprocess.run(
        command,
        env=_environment(**env),
        capture_output=True,
        text=True,
        timeout=LAUNCH_TIMEOUT,
        cwd=directory.parent,
    )


def _listing(folder: Path) -> list[str]:
    """The files below ``folder``, but the run's (hidden) checkpoint record."""
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.name != ".speedrun-checkpoints.json"
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reference = tmp_path_factory.mktemp("torchrun") / "REF"
    ref = _torchrun(reference, "--inherit", str(BASE), *OVERRIDES)
    assert ref.returncode == 0, ref.stderr[-4000:]
    return reference


@pytest.fixture(scope="module", params=["sync", "async"])
def launches(
    request: pytest.FixtureRequest, reference: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, object]:
    """The interrupted run, with synchronous saves and with asynchronous ones (rank 0 writes
    the checkpoint, rank 1 its random-state file, both in a background thread); the reference
    always saves synchronously, so the async run must match a sync one bit for bit."""
    run = tmp_path_factory.mktemp(f"torchrun_{request.param}") / "RUN"
    results: dict[str, object] = {"reference": reference, "run": run, "mode": request.param}
    mode = ["--config.training.checkpoint_async", str(request.param == "async")]

    killed = _torchrun(
        run, "--inherit", str(BASE), *OVERRIDES, *mode, TEST_KILL_RANK="1", TEST_KILL_AT_STEP="25"
    )
    results["killed"] = killed
    results["after_kill"] = _listing(run / "Weights")

    preempted = _torchrun(run, "--resume", TEST_PREEMPT_RANK="1", TEST_PREEMPT_AT_STEP="32")
    results["preempted"] = preempted
    results["after_preemption"] = _listing(run / "Weights")
    results["record_after_preemption"] = json.loads(
        (run / "Configurations" / "run.json").read_text()
    )

    finished = _torchrun(run, "--resume")
    assert finished.returncode == 0, finished.stderr[-4000:]
    results["finished"] = finished
    return results


def test_a_killed_rank_leaves_the_last_periodic_checkpoint(launches: dict) -> None:
    killed = launches["killed"]
    assert killed.returncode != 0  # torchrun reports the killed worker
    assert launches["after_kill"] == [
        "checkpoint_iter_10.pt",
        "checkpoint_iter_20.pt",
        "random_states",
        "random_states/rank_1_iter_10.pkl",
        "random_states/rank_1_iter_20.pkl",
    ]


def test_a_signal_on_one_rank_preempts_every_rank_at_the_same_step(launches: dict) -> None:
    preempted = launches["preempted"]
    assert preempted.returncode != 0  # torchrun turns the workers' 75 into its own failure
    assert "exitcode  : 75" in preempted.stderr, preempted.stderr[-4000:]
    listing = launches["after_preemption"]
    # rank 1 got SIGTERM after step 32; both ranks checkpointed at 33 (keep 2: 30 and 33)
    assert "checkpoint_iter_33.pt" in listing and "random_states/rank_1_iter_33.pkl" in listing
    assert [name for name in listing if name.endswith(".pt")] == [
        "checkpoint_iter_30.pt",
        "checkpoint_iter_33.pt",
    ]
    record = launches["record_after_preemption"]
    assert record["status"] == "preempted" and record["final_step"] == 33, record


def test_resumed_run_matches_the_uninterrupted_one_exactly(launches: dict) -> None:
    reference, run = launches["reference"], launches["run"]
    ref_losses = yaml.safe_load((reference / "Logs" / "YAMLDumps" / "losses.yml").read_text())
    run_losses = yaml.safe_load((run / "Logs" / "YAMLDumps" / "losses.yml").read_text())
    assert run_losses["rank"] == 0  # written by the main process only
    assert len(run_losses["losses"]) == 40
    assert run_losses["losses"] == ref_losses["losses"]

    def scalars(folder: Path) -> list[tuple[int, float]]:
        accumulator = event_accumulator.EventAccumulator(str(folder / "Logs"))
        accumulator.Reload()
        return [(event.step, event.value) for event in accumulator.Scalars("train/loss")]

    assert scalars(run) == scalars(reference)
    assert [step for step, _ in scalars(run)] == [0, 10, 20, 30]


def test_one_config_one_event_log_one_checkpoint_series(launches: dict) -> None:
    reference, run = launches["reference"], launches["run"]
    for folder, launch_count in ((reference, 1), (run, 3)):
        configurations = _listing(folder / "Configurations")
        assert [
            name for name in configurations if name.endswith((".yml", ".yaml")) and "/" not in name
        ] == ["train_config.yml"], configurations
        # Earlier versions are kept when a launch's config differs (the code's git revision
        # moved on between launches): at most one per later launch, never one per rank.
        previous = [name for name in configurations if name.startswith("previous/train_config")]
        assert len(previous) <= launch_count - 1, configurations
        events = [name for name in _listing(folder / "Logs") if "tfevents" in name]
        assert len(events) == launch_count, events  # rank 0 only: one file per launch
        weights = _listing(folder / "Weights")
        assert all(name.startswith(("checkpoint_iter_", "random_states")) for name in weights), (
            weights
        )
        assert not [name for name in weights if "rank_0" in name]  # rank 0's is in the checkpoint
        assert _listing(folder / "Plots") == ["curves", "curves/loss_step_40.png"]
        assert _listing(folder / "Logs" / "YAMLDumps") == ["losses.yml"]
    config = yaml.safe_load((run / "Configurations" / "train_config.yml").read_text())
    assert config["training"]["num_steps"] == 40 and config["model"]["hidden"] == [8]
    assert config["training"]["checkpoint_async"] is (launches["mode"] == "async")
    assert [n for n in _listing(run / "Weights") if n.endswith(".pt")] == [
        "checkpoint_iter_33.pt",
        "checkpoint_iter_40.pt",
    ]
