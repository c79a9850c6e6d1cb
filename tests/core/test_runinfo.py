"""The run record (Configurations/run.json) written by real runs of a small experiment."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import speedrun
from speedrun import PREEMPTION_EXIT_CODE, BaseExperiment, ExperimentDirectoryError
from speedrun.checkpoint._io import save_checkpoint
from speedrun.directory._lock import WriterLock
from speedrun.experiment._runinfo import (
    PATCH_NAME,
    latest_valid_checkpoint,
    read_run_record,
    resolve_status,
)

TRAIN = textwrap.dedent("""\
    import sys, time
    sys.modules["torch"] = None  # checkpoints with dill/pickle: each run starts in a blink
    from speedrun import BaseExperiment, register_default_dispatch

    class Train(BaseExperiment):
        def __init__(self):
            super().__init__()
            self.auto_setup()
            self.total = 0

        @register_default_dispatch
        def train(self):
            while self.step < self.get("steps", 3):
                self.total += self.step
                self.next_step()
                self.checkpoint(force=False)
            mode = self.get("mode", "finish")
            if mode == "crash":
                raise ValueError("the loss is nan\\nat step 3")
            if mode == "hang":  # keep stepping (preemption is checked in next_step)
                print("ready", flush=True)
                while True:
                    time.sleep(0.02)
                    self.next_step()
                    self.checkpoint(force=False)

    if __name__ == "__main__":
        experiment = Train()
        if experiment.get("use_run", True):
            experiment.run()
        else:
            experiment.train()
    """)

BASE = textwrap.dedent("""\
    steps: 3
    mode: finish
    use_run: true
    training: {checkpoint_every: 1}
    model: {widths: [8, 8], activation: relu}
    """)


def _env():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS")
    }
    return env


@pytest.fixture
def project(tmp_path):
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "base.yml").write_text(BASE)
    return tmp_path


def run(folder, *args, check=True):
    result = subprocess.run(
        [sys.executable, "train.py", *map(str, args)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stderr}")
    return result


def start(folder, *args):
    process = subprocess.Popen(
        [sys.executable, "train.py", *map(str, args)],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert process.stdout.readline().strip() == "ready", process.stderr.read()
    return process


def record_of(folder, name):
    return read_run_record(folder / name)


def test_finished_run_records_its_provenance(project):
    (project / "fast.yml").write_text("steps: 2\n")
    run(
        project,
        "RUN-0",
        "--inherit",
        "base.yml",
        "--macro",
        "fast.yml",
        "--config.model.activation",
        "gelu",
    )
    record = record_of(project, "RUN-0")
    assert record["status"] == "finished" and record["exit_code"] == 0
    assert record["exception"] is None and record["final_step"] == 2
    assert record["command"]["argv"] == [
        "train.py",
        "RUN-0",
        "--inherit",
        "base.yml",
        "--macro",
        "fast.yml",
        "--config.model.activation",
        "gelu",
    ]
    assert record["command"]["cwd"] == str(project)
    assert record["command"]["executable"] == sys.executable
    assert record["inherit"] == {
        "argument": "base.yml",
        "path": str(project / "base.yml"),
        "config_file": str(project / "base.yml"),
        "kind": "file",
    }
    assert record["macros"] == [str(project / "fast.yml")]
    assert record["experiment_class"] == "__main__.Train"
    assert record["python"].startswith("{}.{}.".format(*sys.version_info[:2]))
    assert record["speedrun"]["speedrun-core"] == speedrun.__version__
    assert record["host"] == os.uname().nodename and record["pid"] > 0
    assert record["git"] == {"revision": None, "branch": None, "dirty": None, "patch": None}
    assert record["started_at"] <= record["ended_at"]
    assert record["attempt"] == 1 and record["history"] == []
    assert resolve_status(project / "RUN-0", record) == "finished"
    assert sorted(os.listdir(project / "RUN-0" / "Configurations")) == [
        "run.json",
        "train_config.yml",
    ]


def test_crash_records_the_exception_type(project):
    result = run(project, "RUN-0", "--inherit", "base.yml", "--config.mode", "crash", check=False)
    assert result.returncode == 1 and "ValueError" in result.stderr
    record = record_of(project, "RUN-0")
    assert (record["status"], record["exception"]) == ("crashed", "ValueError")
    assert record["message"] == "the loss is nan" and record["final_step"] == 3


def test_end_is_written_at_exit_when_run_is_not_used(project):
    run(project, "RUN-0", "--inherit", "base.yml", "--config.use_run", "False")
    assert record_of(project, "RUN-0")["status"] == "finished"
    run(
        project,
        "RUN-1",
        "--inherit",
        "base.yml",
        "--config.use_run",
        "False",
        "--config.mode",
        "crash",
        check=False,
    )
    record = record_of(project, "RUN-1")
    assert (record["status"], record["exception"]) == ("crashed", "ValueError")


def test_preempted_run(project):
    process = start(project, "RUN-0", "--inherit", "base.yml", "--config.mode", "hang")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == PREEMPTION_EXIT_CODE
    process.stdout.close()
    process.stderr.close()
    record = record_of(project, "RUN-0")
    assert (record["status"], record["exit_code"]) == ("preempted", PREEMPTION_EXIT_CODE)
    assert "SIGTERM" in record["message"]
    assert latest_valid_checkpoint(project / "RUN-0")[0] == record["final_step"]


def test_sigkill_shows_as_killed_and_a_resume_keeps_the_history(project):
    process = start(
        project,
        "RUN-0",
        "--inherit",
        "base.yml",
        "--config.mode",
        "hang",
        "--config.training.checkpoint_every",
        5,
        "--config.training.checkpoint_keep",
        2,
    )
    deadline = time.monotonic() + 60
    while (latest_valid_checkpoint(project / "RUN-0") or (0,))[0] < 5:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    process.kill()
    process.wait(timeout=60)
    process.stdout.close()
    process.stderr.close()
    record = record_of(project, "RUN-0")
    assert record["status"] == "running"  # as the dead process left it
    assert resolve_status(project / "RUN-0", record) == "killed"
    with (
        pytest.warns(RuntimeWarning, match="Took over the writer lock"),
        WriterLock(project / "RUN-0"),
    ):  # a live holder: running after all
        assert resolve_status(project / "RUN-0", record) == "running"

    run(project, "RUN-0", "--resume", "--config.mode", "finish")
    record = record_of(project, "RUN-0")
    assert (record["status"], record["attempt"], record["resumed"]) == ("finished", 2, True)
    assert record["final_step"] == latest_valid_checkpoint(project / "RUN-0")[0] >= 5
    (earlier,) = record["history"]
    assert earlier["status"] == "killed" and earlier["attempt"] == 1
    assert earlier["last_activity_at"] >= earlier["started_at"]
    assert "--config.mode" in earlier["command"]["argv"]
    # The parent is the one the configuration came from, though --resume takes no --inherit.
    assert record["inherit"]["path"] == str(project / "base.yml")


def git(folder, *args):
    return subprocess.run(
        ["git", *args], cwd=folder, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_git_revision_and_uncommitted_changes_as_a_patch(project):
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "train.py", "base.yml")
    git(project, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "one")
    head = git(project, "rev-parse", "HEAD")
    run(project, "RUN-0", "--inherit", "base.yml")
    assert record_of(project, "RUN-0")["git"] == {
        "revision": head,
        "branch": "main",
        "dirty": False,
        "patch": None,
    }

    (project / "train.py").write_text(TRAIN.replace("self.total = 0", "self.total = 100"))
    run(project, "RUN-1", "--inherit", "base.yml")
    record = record_of(project, "RUN-1")
    assert record["git"] == {"revision": head, "branch": "main", "dirty": True, "patch": PATCH_NAME}
    patch = project / "RUN-1" / "Configurations" / PATCH_NAME
    assert "+        self.total = 100" in patch.read_text()
    git(project, "apply", "--reverse", "--check", str(patch))  # it is exactly the change

    # A later clean attempt: its patch is gone, the earlier one kept under previous/.
    git(project, "checkout", "-q", "--", "train.py")
    run(project, "RUN-1", "--resume")
    record = record_of(project, "RUN-1")
    assert record["git"]["dirty"] is False and record["git"]["patch"] is None
    assert not patch.exists()
    kept = record["history"][0]["git"]["patch"]
    assert kept.startswith("previous/git_diff.")
    assert "self.total = 100" in (project / "RUN-1" / "Configurations" / kept).read_text()


def test_only_the_main_process_writes(tmp_path, monkeypatch, argv):
    argv(tmp_path / "RUN")
    experiment = BaseExperiment(tmp_path / "RUN").record_args()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert experiment._start_run_record() is None
    assert not (tmp_path / "RUN" / "Configurations" / "run.json").exists()
    monkeypatch.setenv("RANK", "0")
    record = experiment._start_run_record()
    assert record is not None and read_run_record(tmp_path / "RUN")["status"] == "running"
    record.finish("finished", 0)
    assert read_run_record(tmp_path / "RUN")["status"] == "finished"


def test_at_exit_leaves_a_later_attempts_record_alone(tmp_path, argv):
    argv(tmp_path / "RUN")
    first = BaseExperiment(tmp_path / "RUN").record_args()._start_run_record()
    second = BaseExperiment(tmp_path / "RUN").record_args()._start_run_record()
    first._at_exit()  # what atexit would do for the first, superseded record
    record = read_run_record(tmp_path / "RUN")
    assert record["status"] == "running" and record["attempt"] == 2
    second._at_exit()
    assert read_run_record(tmp_path / "RUN")["status"] == "finished"


def test_broken_records_are_refused_with_a_clear_error(tmp_path):
    folder = tmp_path / "RUN" / "Configurations"
    folder.mkdir(parents=True)
    assert read_run_record(tmp_path / "RUN") is None
    (folder / "run.json").write_text("{broken")
    with pytest.raises(ExperimentDirectoryError, match=r"run.json is not valid JSON"):
        read_run_record(tmp_path / "RUN")
    (folder / "run.json").write_text('{"status": "finished"}')
    with pytest.raises(ExperimentDirectoryError, match=r"not a speedrun run record"):
        read_run_record(tmp_path / "RUN")


def test_status_without_a_record(tmp_path):
    (tmp_path / "RUN").mkdir()
    assert resolve_status(tmp_path / "RUN", None) == "unknown"
    with WriterLock(tmp_path / "RUN"):
        assert resolve_status(tmp_path / "RUN", None) == "running"


@pytest.mark.parametrize("serializer", ["pickle", "dill", "torch"])
def test_latest_valid_checkpoint_skips_truncated_files_without_loading(tmp_path, serializer):
    pytest.importorskip(serializer)
    weights = tmp_path / "RUN" / "Weights"
    for step in (1, 2):
        save_checkpoint(
            weights,
            step,
            {"values": list(range(5000))},
            experiment_class="x.Y",
            serializer=serializer,
        )
    assert latest_valid_checkpoint(tmp_path / "RUN") == (2, str(weights / "checkpoint_iter_2.pt"))
    newest = weights / "checkpoint_iter_2.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) - 30])
    assert latest_valid_checkpoint(tmp_path / "RUN")[0] == 1
    (weights / "checkpoint_iter_3.pt").write_bytes(b"")
    (weights / "checkpoint_iter_4.pt").write_bytes(b"not a checkpoint at all")
    assert latest_valid_checkpoint(tmp_path / "RUN")[0] == 1
    assert latest_valid_checkpoint(tmp_path / "missing") is None


def test_record_file_is_plain_json(project):
    run(project, "RUN-0", "--inherit", "base.yml")
    text = (project / "RUN-0" / "Configurations" / "run.json").read_text()
    assert json.loads(text)["format"] == "speedrun-run-record"


def test_an_unreadable_record_is_kept_aside_not_overwritten(tmp_path, argv):
    argv(tmp_path / "RUN")
    experiment = BaseExperiment(tmp_path / "RUN").record_args()
    (tmp_path / "RUN" / "Configurations" / "run.json").write_text("{damaged")
    experiment._start_run_record().finish("finished", 0)
    assert read_run_record(tmp_path / "RUN")["attempt"] == 1
    (kept,) = os.listdir(tmp_path / "RUN" / "Configurations" / "previous")
    assert kept.startswith("run.") and kept.endswith(".json")
    assert (tmp_path / "RUN" / "Configurations" / "previous" / kept).read_text() == "{damaged"
