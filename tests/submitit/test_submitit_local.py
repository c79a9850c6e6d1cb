"""End to end: a 4-point sweep through submitit's local executor, one job killed and requeued.

``speedrun-sweep sweep.yml --wait`` runs in the background. Once point 0 saved its step-10
checkpoint, the test sends its job process USR2 (what SLURM sends before a time limit, through
``#SBATCH --signal``): the run checkpoints at its next step, submitit requeues the job, and the
new attempt continues from that checkpoint with ``--resume``. Every point must finish with its
own configuration and exactly the total an uninterrupted run computes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("submitit")
yaml = pytest.importorskip("yaml")

from speedrun.ext import read_lock_holder

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "sweep_experiment.py"
NUM_STEPS, SLEEP = 60, 0.05
SWEEP = f"""\
name: lr-seed
script: {SCRIPT}
base: base.yml
grid:
  training.lr: [0.5, 2.0]
  seed: [1, 2]
executor:
  cluster: local
  timeout_min: 10
"""


def _expected_total(lr: float, seed: int, steps: int = NUM_STEPS) -> float:
    generator, total = random.Random(seed), 0.0
    for _ in range(steps):
        total += lr * generator.random()
    return total


def _speedrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "speedrun", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _sweep_command(*args: str) -> list[str]:
    code = "import sys; from speedrun.mixins.submitit._cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, *args]


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("sweep")
    (root / "base.yml").write_text(
        f"seed: 0\ntraining:\n  lr: 1.0\n  num_steps: {NUM_STEPS}\n  checkpoint_every: 10\n"
        f"  sleep: {SLEEP}\n"
    )
    (root / "sweep.yml").write_text(SWEEP)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SLURM_", "SUBMITIT_"))
        and name not in {"RANK", "WORLD_SIZE", "LOCAL_RANK", "SPEEDRUN_LAUNCH_ID"}
    }
    process = subprocess.Popen(
        _sweep_command("sweep.yml", "--wait"),
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    victim = root / "experiments" / "lr-seed" / "000-lr=0.5_seed=1"
    killed_pid = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            holder = read_lock_holder(victim) if victim.is_dir() else None
            if holder and (victim / "Weights" / "checkpoint_iter_10.pt").exists():
                killed_pid = holder["pid"]
                os.kill(killed_pid, signal.SIGUSR2)
                break
            time.sleep(0.01)
        stdout, stderr = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    return {
        "root": root,
        "sweep": root / "experiments" / "lr-seed",
        "returncode": process.returncode,
        "stdout": stdout,
        "stderr": stderr,
        "killed_pid": killed_pid,
    }


def test_every_point_finished_with_its_config_and_exact_result(sweep_run: dict) -> None:
    assert sweep_run["returncode"] == 0, sweep_run["stdout"] + sweep_run["stderr"]
    assert sweep_run["killed_pid"] is not None, "the point finished before it could be killed"
    sweep = sweep_run["sweep"]
    names = sorted(path.name for path in sweep.iterdir() if (path / ".speedrun").exists())
    assert names == [
        "000-lr=0.5_seed=1",
        "001-lr=0.5_seed=2",
        "002-lr=2.0_seed=1",
        "003-lr=2.0_seed=2",
    ]
    for name in names:
        assert f"{name}  finished  step {NUM_STEPS}" in sweep_run["stdout"], sweep_run["stdout"]
        config = yaml.safe_load((sweep / name / "Configurations" / "train_config.yml").read_text())
        lr, seed = config["training"]["lr"], config["seed"]
        assert f"{name[4:]}" == f"lr={lr}_seed={seed}"
        assert config["training"]["num_steps"] == NUM_STEPS  # inherited from the base
        assert config["speedrun"]["sweep"]["overrides"] == {"training.lr": lr, "seed": seed}
        result = json.loads((sweep / name / "Logs" / "result.json").read_text())
        assert result["step"] == NUM_STEPS and result["point"] == name
        assert result["overrides"] == {"training.lr": lr, "seed": seed}
        assert result["total"] == _expected_total(lr, seed)  # random state survived requeues
        assert not (sweep / name / "Configurations" / "previous").exists()


def test_the_killed_job_was_requeued_and_resumed(sweep_run: dict) -> None:
    point = sweep_run["sweep"] / "000-lr=0.5_seed=1"
    result = json.loads((point / "Logs" / "result.json").read_text())
    (first_step, first_attempt), (resumed_step, resumed_attempt) = result["starts"]
    assert (first_step, first_attempt, resumed_attempt) == (0, 0, 1)
    assert 10 < resumed_step < NUM_STEPS  # checkpointed at the step after the signal
    assert f"checkpoint_iter_{resumed_step}.pt" in os.listdir(point / "Weights")
    record = json.loads((point / "Configurations" / "run.json").read_text())
    assert record["status"] == "finished"
    assert [attempt["status"] for attempt in record["history"]] == ["preempted"], record
    logs = "".join(path.read_text() for path in (sweep_run["sweep"] / "jobs").glob("*_log.*"))
    assert "Requeued job" in logs
    others = [
        json.loads((p / "Logs" / "result.json").read_text())["starts"]
        for p in sorted(sweep_run["sweep"].glob("00[123]-*"))
    ]
    assert others == [[[0, 0]]] * 3  # the others ran once


def test_manifest_ls_diff_and_resubmission(sweep_run: dict) -> None:
    root, sweep = sweep_run["root"], sweep_run["sweep"]
    manifest = yaml.safe_load((sweep / "sweep.yml").read_text())
    assert len(manifest["submissions"]) == 1
    assert sorted(manifest["submissions"][0]["jobs"]) == sorted(
        point["name"] for point in manifest["points"]
    )
    listing = _speedrun("ls", "--json", str(sweep), cwd=root)
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert len(rows) == 4 and {row["status"] for row in rows} == {"finished"}, rows
    diff = _speedrun(
        "diff", str(sweep / "000-lr=0.5_seed=1"), str(sweep / "003-lr=2.0_seed=2"), cwd=root
    )
    assert diff.returncode == 1 and "training/lr: 0.5 -> 2.0" in diff.stdout, diff.stdout
    again = subprocess.run(
        _sweep_command("sweep.yml"), cwd=root, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 2 and "already holds 4 point(s)" in again.stderr
    resumed = subprocess.run(
        _sweep_command("sweep.yml", "--resume"),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0 and "nothing to submit" in resumed.stdout


def test_a_point_with_two_tasks_runs_as_two_ranks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from speedrun.mixins.submitit import load_sweep, submit_sweep, wait_for_jobs

    for name in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "SPEEDRUN_LAUNCH_ID",
        "MASTER_ADDR",
        "MASTER_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "base.yml").write_text(
        "seed: 3\ntraining:\n  lr: 1.0\n  num_steps: 12\n  checkpoint_every: 4\n"
    )
    (tmp_path / "two.yml").write_text(
        f"script: {SCRIPT}\nbase: base.yml\npoints: [{{training.lr: 0.25}}]\n"
        "executor: {cluster: local, timeout_min: 5, tasks_per_node: 2}\n"
    )
    submitted = submit_sweep(load_sweep(tmp_path / "two.yml"))
    outcomes = wait_for_jobs(submitted, poll=0.2)
    point = submitted[0][0]
    assert outcomes[point.name]["status"] == "finished", outcomes
    assert outcomes[point.name]["final_step"] == 12
    weights = sorted(os.listdir(Path(point.directory, "Weights", "random_states")))
    assert weights == [f"rank_1_iter_{step}.pkl" for step in (12, 4, 8)]  # rank 1 ran too
    assert [p for p in os.listdir(Path(point.directory, "Weights")) if p.endswith(".pt")]
    result = json.loads(Path(point.directory, "Logs", "result.json").read_text())
    assert result["total"] == _expected_total(0.25, 3, steps=12)
