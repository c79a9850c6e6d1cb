"""speedrun.distributed._ranks: ranks, main-process-only writes, the set-up barrier and per-rank state.

The multi-process tests start real processes with the variables torchrun sets (RANK,
WORLD_SIZE, LOCAL_RANK) running a plain-Python experiment (no torch needed).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

import speedrun
from speedrun._errors import ExperimentDirectoryError, SpeedrunError
from speedrun.directory._lock import WriterLock
from speedrun.distributed import _launch
from speedrun.distributed import _ranks as _distributed

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "rank_experiment.py"
LAUNCH_VARIABLES = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_WORLD_SIZE",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_STEP_NUM_TASKS",
    "SLURM_LOCALID",
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
    "SLURM_RESTART_COUNT",
    "SLURM_STEP_NUM_NODES",
    "SLURM_JOB_NUM_NODES",
    "SLURM_NNODES",
    "SUBMITIT_LOCAL_GLOBALID",
    "SUBMITIT_LOCAL_NTASKS",
    "SUBMITIT_LOCAL_LOCALID",
    "SUBMITIT_LOCAL_JOB_ID",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SPEEDRUN_LAUNCH_ID",
    "SPEEDRUN_SETUP_TIMEOUT",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# ------------------------------------------------------------------------------------------------
# ranks from the environment


def test_single_process_is_the_main_process(clean_env: pytest.MonkeyPatch) -> None:
    assert (speedrun.get_rank(), speedrun.get_world_size(), speedrun.get_local_rank()) == (0, 1, 0)
    assert speedrun.is_main_process()


def test_torchrun_variables(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RANK", "3")
    clean_env.setenv("WORLD_SIZE", "4")
    clean_env.setenv("LOCAL_RANK", "1")
    assert (speedrun.get_rank(), speedrun.get_world_size(), speedrun.get_local_rank()) == (3, 4, 1)
    assert not speedrun.is_main_process()


def test_slurm_tasks_and_torchrun_inside_slurm(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SLURM_PROCID", "2")
    clean_env.setenv("SLURM_NTASKS", "8")
    clean_env.setenv("SLURM_STEP_NUM_TASKS", "4")
    clean_env.setenv("SLURM_LOCALID", "2")
    assert (speedrun.get_rank(), speedrun.get_world_size(), speedrun.get_local_rank()) == (2, 4, 2)
    clean_env.setenv("RANK", "0")  # torchrun started inside a SLURM task: RANK counts
    clean_env.setenv("WORLD_SIZE", "2")
    assert speedrun.is_main_process() and speedrun.get_world_size() == 2


def test_submitit_local_variables(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SUBMITIT_LOCAL_GLOBALID", "1")
    clean_env.setenv("SUBMITIT_LOCAL_NTASKS", "2")
    assert (speedrun.get_rank(), speedrun.get_world_size()) == (1, 2)


def test_malformed_rank_is_a_clear_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RANK", "zero")
    with pytest.raises(SpeedrunError, match=r"RANK .*non-negative integer.*'zero'"):
        speedrun.get_rank()


def test_main_process_only(clean_env: pytest.MonkeyPatch) -> None:
    calls = []

    @speedrun.main_process_only
    def save(value: int) -> int:
        """Docstring kept."""
        calls.append(value)
        return value * 2

    assert save(1) == 2
    clean_env.setenv("RANK", "1")
    assert save(2) is None
    assert calls == [1] and save.__doc__ == "Docstring kept." and save.__name__ == "save"


def test_import_speedrun_never_imports_torch() -> None:
    code = (
        "import sys, speedrun; speedrun.is_main_process(); speedrun.get_world_size(); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "RANK": "1", "WORLD_SIZE": "2"},
        check=True,
    )
    assert result.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------------
# launch id


def test_launch_id_from_launchers(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TORCHELASTIC_RUN_ID", "abc")
    clean_env.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    clean_env.setenv("LOCAL_WORLD_SIZE", "2")
    clean_env.setenv("WORLD_SIZE", "2")
    first = _launch.launch_id()
    assert "TORCHELASTIC_RUN_ID=abc" in first and f"launcher_pid={os.getppid()}" in first
    clean_env.setenv("TORCHELASTIC_RESTART_COUNT", "1")  # torchrun restarted the workers
    assert _launch.launch_id() != first
    clean_env.setenv("WORLD_SIZE", "4")  # two nodes: the parent differs between them
    assert "launcher_pid" not in _launch.launch_id()
    clean_env.setenv("SPEEDRUN_LAUNCH_ID", "mine")
    assert _launch.launch_id() == "SPEEDRUN_LAUNCH_ID=mine"


def test_launch_id_of_a_requeued_slurm_job_differs(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SLURM_JOB_ID", "77")
    clean_env.setenv("SLURM_STEP_ID", "0")
    clean_env.setenv("SLURM_JOB_NUM_NODES", "2")
    first = _launch.launch_id()
    clean_env.setenv("SLURM_RESTART_COUNT", "1")
    assert _launch.launch_id() != first and "launcher_pid" not in first


# ------------------------------------------------------------------------------------------------
# the set-up barrier, in one process


def _announce(directory: Path, launch: str, written: float) -> None:
    (directory / _launch.LAUNCH_FILE_NAME).write_text(
        json.dumps(
            {
                "format": "speedrun-launch",
                "launch": launch,
                "written": written,
                "checkpoints": [5],
                "config_dumped": True,
            }
        )
    )


def test_wait_returns_this_launchs_announcement(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("SPEEDRUN_LAUNCH_ID", "now")
    _announce(tmp_path, "SPEEDRUN_LAUNCH_ID=now", time.time())
    assert _launch.wait_for_main_setup(str(tmp_path), timeout=5)["checkpoints"] == [5]


@pytest.mark.parametrize(
    "launch, age",
    [("SPEEDRUN_LAUNCH_ID=before", 0.0), ("SPEEDRUN_LAUNCH_ID=now", 3600.0)],
    ids=["other-launch", "same-id-but-stale"],
)
def test_wait_ignores_an_earlier_launchs_announcement(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, launch: str, age: float
) -> None:
    clean_env.setenv("SPEEDRUN_LAUNCH_ID", "now")
    _announce(tmp_path, launch, time.time() - age)
    with pytest.raises(
        ExperimentDirectoryError, match=r"waited 0 s for the main process.*SPEEDRUN_LAUNCH_ID"
    ):
        _launch.wait_for_main_setup(str(tmp_path), timeout=0.3)


def test_wait_stops_when_the_main_process_lets_go_without_announcing(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lock = WriterLock(tmp_path).acquire()  # "rank 0" holds the directory ...
    threading.Timer(0.5, lock.release).start()  # ... and fails half a second later
    started = time.monotonic()
    with pytest.raises(ExperimentDirectoryError, match="released the directory without finishing"):
        _launch.wait_for_main_setup(str(tmp_path), timeout=60)
    assert time.monotonic() - started < 10


def test_bad_setup_timeout(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("SPEEDRUN_SETUP_TIMEOUT", "soon")
    with pytest.raises(SpeedrunError, match="SPEEDRUN_SETUP_TIMEOUT.*positive number"):
        _launch.wait_for_main_setup(str(tmp_path))


# ------------------------------------------------------------------------------------------------
# per-rank random state files


def test_rank_random_state_round_trip_and_retention(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from speedrun.checkpoint._random_state import (
        capture_random_state,
        restore_random_state,
    )

    clean_env.setenv("RANK", "1")
    random.seed(11)
    for step in (10, 20, 30, 40):
        state = capture_random_state()
        expected = random.random() if step == 30 else None
        _distributed.save_rank_random_state(str(tmp_path), step, state, keep=2)
        if step == 30:
            saved_30, value_after_30 = state, expected
    names = sorted(os.listdir(tmp_path / _distributed.RANDOM_STATE_FOLDER))
    assert names == ["rank_1_iter_20.pkl", "rank_1_iter_30.pkl", "rank_1_iter_40.pkl"]
    loaded = _distributed.load_rank_random_state(str(tmp_path), 30)
    assert loaded is not None and loaded["python"] == saved_30["python"]
    restore_random_state(loaded)
    assert random.random() == value_after_30


def test_missing_or_corrupt_rank_state_warns(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("RANK", "2")
    with pytest.warns(UserWarning, match=r"Rank 2 resumes from step 7 without its own random"):
        assert _distributed.load_rank_random_state(str(tmp_path), 7) is None
    path = Path(_distributed.rank_state_path(str(tmp_path), 8))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x80\x04truncated")
    with pytest.warns(UserWarning, match="cannot be read"):
        assert _distributed.load_rank_random_state(str(tmp_path), 8) is None


def test_preemption_agreement_without_a_process_group_is_local() -> None:
    assert _distributed.preemption_agreed(True) is True
    assert _distributed.preemption_agreed(False) is False
    _distributed.wait_after_preemption_checkpoint(None)  # nothing to meet: returns at once


# ------------------------------------------------------------------------------------------------
# several real processes


def _start_ranks(
    tmp_path: Path, directory: Path, *flags: str, launch: str, world: int = 2, **extra: str
) -> tuple[list[subprocess.CompletedProcess[str]], list[dict]]:
    out = tmp_path / f"out-{launch}"
    out.mkdir(exist_ok=True)
    base = {name: value for name, value in os.environ.items() if name not in LAUNCH_VARIABLES}
    processes = []
    for rank in range(world):
        env = {
            **base,
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "SPEEDRUN_LAUNCH_ID": launch,
            "SPEEDRUN_SETUP_TIMEOUT": "60",
            "TEST_OUT": str(out),
            **extra,
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, str(SCRIPT), str(directory), *flags],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    finished = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        completed = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        completed.pid = process.pid  # type: ignore[attr-defined]  # keeps the pid next to the output
        finished.append(completed)
    results = [json.loads(path.read_text()) for path in sorted(out.glob("rank*.json"))]
    return finished, results


def _draws(rank: int, count: int) -> list[float]:
    generator = random.Random(rank)
    return [generator.random() for _ in range(count)]


@pytest.fixture
def base_config(tmp_path: Path) -> Path:
    path = tmp_path / "base.yml"
    path.write_text("training:\n  lr: 0.1\n  num_steps: 10\n  checkpoint_every: 5\n")
    return path


def test_every_rank_resolves_the_config_only_rank_0_writes(
    tmp_path: Path, base_config: Path
) -> None:
    directory = tmp_path / "RUN"
    processes, results = _start_ranks(
        tmp_path,
        directory,
        "--inherit",
        str(base_config),
        "--config.training.lr",
        "0.5",
        launch="one",
    )
    assert [p.returncode for p in processes] == [0, 0], [p.stderr for p in processes]
    assert len(results) == 2
    assert results[0]["config"] == results[1]["config"]
    assert results[1]["config"]["training"]["lr"] == 0.5
    assert results[0]["draws"] == _draws(0, 10) and results[1]["draws"] == _draws(1, 10)
    configurations = sorted(os.listdir(directory / "Configurations"))
    assert "previous" not in configurations and "train_config.yml" in configurations
    weights = sorted(
        str(p.relative_to(directory / "Weights"))
        for p in (directory / "Weights").rglob("*")
        if p.name != ".speedrun-checkpoints.json"
    )  # the run's checkpoint record
    assert weights == [
        "checkpoint_iter_10.pt",
        "checkpoint_iter_5.pt",
        "random_states",
        "random_states/rank_1_iter_10.pkl",
        "random_states/rank_1_iter_5.pkl",
    ]
    record = json.loads((directory / "Configurations" / "run.json").read_text())
    assert record["pid"] == processes[0].pid  # the run record is rank 0's


def test_resume_restores_each_ranks_random_state(tmp_path: Path, base_config: Path) -> None:
    directory = tmp_path / "RUN"
    crashed, _ = _start_ranks(
        tmp_path, directory, "--inherit", str(base_config), launch="first", TEST_CRASH_AT="7"
    )
    assert [p.returncode for p in crashed] == [1, 1]
    assert "crash requested at step 7" in crashed[1].stderr
    # Rank 1 loads late: rank 0 has resumed from 5 and saved step 10 by then. Rank 1 must
    # still resume from 5, the checkpoint rank 0 resumed from.
    processes, results = _start_ranks(
        tmp_path, directory, "--resume", launch="second", TEST_FOLLOWER_DELAY="1.5"
    )
    assert [p.returncode for p in processes] == [0, 0], [p.stderr for p in processes]
    for rank, result in enumerate(results):
        assert result["first_step"] == 5 and result["step"] == 10
        assert result["draws"] == _draws(rank, 10)[5:]  # exactly where the rank left off
        assert result["rank_at_save"] == 0  # attributes come from the one checkpoint


def test_purge_of_an_old_directory_never_fools_the_other_ranks(
    tmp_path: Path, base_config: Path
) -> None:
    directory = tmp_path / "RUN"
    processes, _ = _start_ranks(tmp_path, directory, "--inherit", str(base_config), launch="old")
    assert [p.returncode for p in processes] == [0, 0]
    # The next launch purges the directory; rank 0 starts late, so rank 1 finds the old
    # directory, its old config and the old launch's announcement first.
    processes, results = _start_ranks(
        tmp_path,
        directory,
        "--purge",
        "--inherit",
        str(base_config),
        "--config.training.lr",
        "0.7",
        launch="new",
        TEST_MAIN_DELAY="1.5",
    )
    assert [p.returncode for p in processes] == [0, 0], [p.stderr for p in processes]
    assert [result["config"]["training"]["lr"] for result in results] == [0.7, 0.7]


def test_a_failing_main_process_stops_the_others_at_once(tmp_path: Path, base_config: Path) -> None:
    directory = tmp_path / "RUN"
    _start_ranks(tmp_path, directory, "--inherit", str(base_config), launch="first")
    started = time.monotonic()
    # Checkpoints exist and neither --resume nor --purge: rank 0 refuses after taking the lock.
    processes, _ = _start_ranks(
        tmp_path, directory, "--inherit", str(base_config), launch="second", TEST_MAIN_DELAY="0.5"
    )
    assert [p.returncode for p in processes] == [1, 1]
    assert "already has checkpoints" in processes[0].stderr
    # rank 1 names rank 0's error (announced at exit; or it saw the lock come and go)
    assert "Rank 1 waited for the main process (rank 0)" in processes[1].stderr
    assert (
        "already has checkpoints" in processes[1].stderr
        or "released the directory without finishing" in processes[1].stderr
    )
    assert time.monotonic() - started < 40  # not the 60 s set-up timeout


def test_a_rank_without_its_main_process_times_out_clearly(
    tmp_path: Path, base_config: Path
) -> None:
    env = {name: value for name, value in os.environ.items() if name not in LAUNCH_VARIABLES}
    env.update(RANK="1", WORLD_SIZE="2", SPEEDRUN_SETUP_TIMEOUT="1", TEST_OUT=str(tmp_path))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "RUN"), "--inherit", str(base_config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Rank 1 waited 1 s for the main process (rank 0)" in result.stderr
    assert "SPEEDRUN_LAUNCH_ID" in result.stderr
    assert not (tmp_path / "RUN").exists()  # a rank other than 0 creates nothing


def test_follower_in_process_writes_nothing(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``experiment_directory``, ``dump_configuration`` and ``checkpoint`` on rank 1."""
    from speedrun import BaseExperiment

    clean_env.setenv("RANK", "1")
    clean_env.setenv("WORLD_SIZE", "2")
    experiment = BaseExperiment(tmp_path / "RUN")
    assert not (tmp_path / "RUN").exists()
    (tmp_path / "RUN" / "Weights").mkdir(parents=True)
    experiment.set("training/checkpoint_keep", 1)
    experiment.dump_configuration()
    experiment.next_step().checkpoint()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(
            str(p.relative_to(tmp_path / "RUN")) for p in (tmp_path / "RUN").rglob("*")
        ) == ["Weights", "Weights/random_states", "Weights/random_states/rank_1_iter_1.pkl"]
