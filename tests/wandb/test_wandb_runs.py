"""For real: experiments logging to W&B in subprocesses (offline, no network), read back with
W&B's own reader of its run files (``wandb leet inspect --json``, which runs wandb-core).

- a run logs scalars and images, is ``kill -9``-ed after a checkpoint, resumed with
  ``--resume``: one W&B run id across both attempts' files, the config, and every step once
  the attempts are put together (each file's steps increasing, as W&B requires);
- ``torchrun --nproc_per_node=2``: one W&B run, started by rank 0 only;
- ``wandb/mode: online`` with no server: offline with a warning (default), or a clear error
  (``wandb/on_init_failure: error``), within ``wandb/init_timeout``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("wandb")
yaml = pytest.importorskip("yaml")

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "wandb_experiment.py"
TIMEOUT = 120


def _environment(**extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("WANDB_", "SLURM_", "TORCHELASTIC_", "TEST_", "MASTER_"))
        and name
        not in {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "SPEEDRUN_LAUNCH_ID"}
    }
    # Not WANDB_SILENT: it would hide W&B's "Steps must be monotonically increasing" warning.
    env.update(WANDB_MODE="offline", WANDB_DISABLE_GIT="true", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def _run(
    directory: Path, *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(directory), *flags],
        env=env or _environment(),
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
        cwd=directory.parent,
    )


def _read_run_file(run_directory: Path) -> list[dict[str, Any]]:
    """The records of an offline run folder's ``.wandb`` file, through W&B's own reader."""
    result = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_directory)],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _summary(run_directory: Path) -> dict[str, Any]:
    records = _read_run_file(run_directory)
    runs = [record["run"] for record in records if record["type"] == "run"]
    history = [record["history"]["item"] for record in records if record["type"] == "history"]
    return {
        "run_ids": {run["run_id"] for run in runs},
        "config": runs[0]["config"]["update"] if runs else {},
        "resume": [run.get("resume", False) for run in runs],
        "steps": [item["_step"] for item in history],
        "history": history,
    }


def _offline_runs(experiment: Path) -> list[Path]:
    return sorted((experiment / "WandB" / "wandb").glob("offline-run-*"))


OVERRIDES = [
    "--config.training.num_steps",
    "40",
    "--config.training.checkpoint_every",
    "10",
    "--config.wandb.flush_secs",
    "0.2",
]


def test_killed_and_resumed_run_continues_one_wandb_run(tmp_path: Path) -> None:
    experiment = tmp_path / "RUN"
    log = (tmp_path / "killed.stderr").open("w")  # a file: a full pipe would block the run
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(experiment), *OVERRIDES],
        env=_environment(TEST_STEP_DELAY="0.1"),
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        assert process.stdout is not None
        for line in process.stdout:  # wait until checkpoint 20 is on disk
            if line.startswith("CHECKPOINT 20") or time.monotonic() > deadline:
                break
        time.sleep(0.6)  # a few more steps (logged after the checkpoint), flushed to the file
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    assert process.returncode == -signal.SIGKILL
    info = yaml.safe_load((experiment / "Logs" / "wandb_info.yml").read_text())
    run_id = info["wandb_run_id"]
    checkpoint = max(
        int(path.stem.rpartition("_")[2])
        for path in (experiment / "Weights").glob("checkpoint_iter_*.pt")
    )
    assert checkpoint >= 20

    resumed = _run(experiment, "--resume", *OVERRIDES[4:])
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"wandb sync --id {run_id}" in resumed.stderr  # offline: how to upload it
    assert "monotonically increasing" not in resumed.stderr + resumed.stdout

    first, second = _offline_runs(experiment)
    assert first.name.endswith(run_id) and second.name.endswith(run_id)
    killed, continued = _summary(first), _summary(second)
    assert killed["run_ids"] == continued["run_ids"] == {run_id}
    assert continued["resume"] == [True]
    for attempt in (killed, continued):
        assert attempt["config"]["training__num_steps"] == 40
        assert attempt["config"]["training__checkpoint_every"] == 10
        assert attempt["steps"] == sorted(set(attempt["steps"])), "W&B steps must increase"
    # The killed attempt got at least to the checkpoint (its last row committed before the
    # save), the resumed one continues exactly at the checkpoint's step.
    assert killed["steps"][:checkpoint] == list(range(checkpoint))
    assert continued["steps"] == list(range(checkpoint, 40))
    assert sorted(set(killed["steps"]) | set(continued["steps"])) == list(range(40))
    images = [
        item
        for attempt in (killed, continued)
        for item in attempt["history"]
        if item.get("train/image._type") == "image-file"
    ]
    assert {item["_step"] for item in images} == set(range(0, 40, 4))
    assert images[0]["train/image.height"] == 4 and images[0]["train/image.width"] == 5
    assert all(item["step"] == item["_step"] for item in continued["history"])

    info = yaml.safe_load((experiment / "Logs" / "wandb_info.yml").read_text())
    assert info["wandb_run_id"] == run_id
    assert [attempt["step"] for attempt in info["attempts"]] == [0, checkpoint]
    assert info["last_step"] == 39


def test_torchrun_starts_one_wandb_run(tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed.run")
    experiment = tmp_path / "DDP"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(SCRIPT),
        str(experiment),
        "--config.training.num_steps",
        "6",
        "--config.training.checkpoint_every",
        "3",
    ]
    result = subprocess.run(
        command,
        env=_environment(TEST_DISTRIBUTED="1"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "CHECKPOINT 6 rank 1" in result.stdout  # both ranks ran to the end
    (run,) = _offline_runs(experiment)
    summary = _summary(run)
    info = yaml.safe_load((experiment / "Logs" / "wandb_info.yml").read_text())
    assert summary["run_ids"] == {info["wandb_run_id"]}
    assert summary["steps"] == list(range(6))
    assert result.stderr.count("is logged offline in") == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("on_failure", ["offline", "error"])
def test_online_without_server_is_bounded(tmp_path: Path, on_failure: str) -> None:
    experiment = tmp_path / "ONLINE"
    env = _environment(
        WANDB_MODE="online",
        WANDB_BASE_URL=f"http://127.0.0.1:{_closed_port()}",
        WANDB_API_KEY="x" * 40,
    )
    started = time.monotonic()
    result = _run(
        experiment,
        "--config.training.num_steps",
        "3",
        "--config.wandb.init_timeout",
        "3",
        "--config.wandb.on_init_failure",
        on_failure,
        env=env,
    )
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"took {elapsed:.0f} s"  # a bound for a stuck test, not a benchmark
    assert "unusable within wandb/init_timeout=3 s" in result.stderr
    if on_failure == "error":
        assert result.returncode != 0
        assert "WandBInitError" in result.stderr and "--config.wandb.mode offline" in result.stderr
        assert not _offline_runs(experiment)
    else:
        assert result.returncode == 0, result.stderr[-4000:]
        assert "logging offline instead" in result.stderr
        (run,) = _offline_runs(experiment)
        assert _summary(run)["steps"] == [0, 1, 2]
        info = yaml.safe_load((experiment / "Logs" / "wandb_info.yml").read_text())
        assert info["mode"] == "offline"


def test_online_with_a_silent_server_falls_back_within_init_timeout(tmp_path: Path) -> None:
    """The server accepts connections but never answers: wandb.init's own timeout applies."""
    experiment = tmp_path / "SILENT"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)  # the kernel completes the handshakes; nobody ever answers
        env = _environment(
            WANDB_MODE="online",
            WANDB_API_KEY="x" * 40,
            WANDB_BASE_URL=f"http://127.0.0.1:{server.getsockname()[1]}",
        )
        started = time.monotonic()
        result = _run(
            experiment,
            "--config.training.num_steps",
            "2",
            "--config.wandb.init_timeout",
            "3",
            env=env,
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-4000:]
    assert elapsed < 60, f"took {elapsed:.0f} s"  # a bound for a stuck test, not a benchmark
    assert "unusable within wandb/init_timeout=3 s" in result.stderr
    assert "logging offline instead" in result.stderr
    (run,) = _offline_runs(experiment)
    assert _summary(run)["steps"] == [0, 1]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run that ended at step 12 (steps 0-11 logged); its last checkpoint is step 10."""
    directory = tmp_path_factory.mktemp("clean") / "RUN"
    first = _run(
        directory,
        "--config.training.num_steps",
        "12",
        "--config.training.checkpoint_every",
        "5",
        # no final checkpoint at step 12: the resume must start before steps W&B already has
        "--config.training.checkpoint_at_end",
        "False",
    )
    assert first.returncode == 0, first.stderr[-4000:]
    return directory


def _resume_copy(
    clean_run: Path, directory: Path, *resume_flags: str
) -> tuple[dict[str, Any], ...]:
    shutil.copytree(clean_run, directory)
    second = _run(directory, "--resume", "--config.training.num_steps", "15", *resume_flags)
    assert second.returncode == 0, second.stderr[-4000:]
    return (*(_summary(run) for run in _offline_runs(directory)), {"stderr": second.stderr})


def test_resume_keeps_the_steps_the_run_already_has(clean_run: Path, tmp_path: Path) -> None:
    before, after, output = _resume_copy(clean_run, tmp_path / "KEEP")
    assert before["steps"] == list(range(12))
    # Steps 10 and 11 are recomputed from checkpoint 10; the W&B run has them already, so they
    # are not sent again (no "step must increase" warning), and the run goes on at 12.
    assert after["steps"] == [12, 13, 14]
    assert "already holds steps up to 11" in output["stderr"]
    assert "monotonically increasing" not in output["stderr"]


def test_resume_steps_rewind_replaces_the_steps_after_the_checkpoint(
    clean_run: Path, tmp_path: Path
) -> None:
    before, after, output = _resume_copy(
        clean_run, tmp_path / "REWIND", "--config.wandb.resume_steps", "rewind"
    )
    assert before["steps"] == list(range(12))
    # The resumed file starts with W&B's branch point (rewind to step 9, as recorded in the
    # run record that `wandb sync` uploads) and logs from the checkpoint's step on.
    records = _read_run_file(_offline_runs(tmp_path / "REWIND")[1])
    (run,) = [record["run"] for record in records if record["type"] == "run"]
    assert run["branch_point"] == {"metric": "_step", "run": run["run_id"], "value": 9}
    assert after["steps"] == [10, 11, 12, 13, 14]
    assert "already holds" not in output["stderr"]


def test_preempted_run_finishes_its_wandb_run_with_status_75(tmp_path: Path) -> None:
    experiment = tmp_path / "PREEMPTED"
    log = (tmp_path / "preempted.stderr").open("w")
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(experiment), *OVERRIDES],
        env=_environment(TEST_STEP_DELAY="0.1"),
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("CHECKPOINT 10"):
                break
        process.send_signal(signal.SIGTERM)  # speedrun checkpoints at the next step, exits 75
        process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    assert process.returncode == 75, (tmp_path / "preempted.stderr").read_text()[-4000:]
    (run,) = _offline_runs(experiment)
    records = _read_run_file(run)
    assert [record["exit"]["exit_code"] for record in records if record["type"] == "exit"] == [75]
    steps = [
        record["history"]["item"]["_step"] for record in records if record["type"] == "history"
    ]
    checkpoint = max(
        int(path.stem.rpartition("_")[2])
        for path in (experiment / "Weights").glob("checkpoint_iter_*.pt")
    )
    assert steps == list(range(checkpoint))  # everything up to the preemption checkpoint
    info = yaml.safe_load((experiment / "Logs" / "wandb_info.yml").read_text())
    assert info["last_step"] == checkpoint - 1
