"""WaiterMixin.wait() on a real BaseExperiment: the --wait.* command line, output, exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from speedrun import (
    PREEMPTION_EXIT_CODE,
    ArgumentError,
    BaseExperiment,
    ExperimentDirectoryError,
    SpeedrunError,
)
from speedrun.ext import ensure_experiment_directory, is_locked
from speedrun.mixins.waiter import WAIT_TIMEOUT_EXIT_CODE, WaiterMixin, WaitTimeout


class Experiment(WaiterMixin, BaseExperiment):
    pass


def _printing_experiment() -> type:
    """An experiment with IOMixin whose ``print`` records the messages."""
    io = pytest.importorskip("speedrun.mixins.io")

    class PrintingExperiment(WaiterMixin, io.IOMixin, BaseExperiment):
        def __init__(self, experiment_directory: object = None) -> None:
            self.printed: list[str] = []
            super().__init__(experiment_directory)

        def print(self, message: str, printer: object = None) -> PrintingExperiment:
            self.printed.append(message)
            return self

    return PrintingExperiment


def _experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *flags: object, cls: type = Experiment
) -> Experiment:
    directory = tmp_path / "RUN-1"
    monkeypatch.setattr(sys, "argv", ["train.py", str(directory), *map(str, flags)])
    experiment = cls(str(directory))
    experiment.record_args()
    return experiment


@pytest.fixture
def sleeper():
    process = subprocess.Popen(["sleep", "30"])
    yield process
    process.kill()
    process.wait()


# A real run: a tiny BaseExperiment whose auto_setup takes its directory's writer lock; it
# trains until its stdin is closed.
_RUN = textwrap.dedent("""
    import sys
    from speedrun import BaseExperiment

    class Run(BaseExperiment):
        DEFAULT_DISPATCH = "train"

        def __init__(self):
            super().__init__()
            self.auto_setup(update_git_revision=False)

        def train(self):
            print("training", flush=True)
            sys.stdin.read()

    Run().run()
""")


@pytest.fixture
def live_run(tmp_path: Path):
    directory = tmp_path / "RUN-0"
    process = subprocess.Popen(
        [sys.executable, "-c", _RUN, str(directory)],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line != "training\n":  # pragma: no cover - show why the run did not start
        process.kill()
        raise AssertionError(f"run did not start: {line!r} {process.communicate()}")
    assert is_locked(directory)
    yield directory, process
    if process.poll() is None:
        process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None and not stream.closed:
            stream.close()


def _finish(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()


def test_no_wait_flags_means_no_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = _experiment(tmp_path, monkeypatch, "--config.lr", "0.1")
    assert experiment.wait() is None
    assert capsys.readouterr() == ("", "")


def test_waits_for_a_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    process = subprocess.Popen(["sleep", "0.3"])
    try:
        experiment = _experiment(
            tmp_path, monkeypatch, "--wait.for", process.pid, "--wait.check_interval", "0.05"
        )
        started = time.monotonic()
        assert experiment.wait() is True
        assert time.monotonic() - started >= 0.25
    finally:
        process.wait()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        f"[waiter] Waiting for PID {process.pid} (sleep 0.3). Checking every 0.05s."
    )
    assert lines[1].startswith("[waiter] Done waiting after") and lines[1].endswith(
        "It's showtime!"
    )


def test_waits_for_several_pids_given_as_a_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = subprocess.Popen(["sleep", "0.1"]), subprocess.Popen(["sleep", "0.3"])
    try:
        experiment = _experiment(
            tmp_path,
            monkeypatch,
            "--wait.for",
            f"[{first.pid}, {second.pid}]",
            "--wait.check_interval",
            "0.02",
            "--wait.verbose",
            "False",
        )
        assert experiment.wait() is True
        # Both were waited for: the later one has exited by now (a zombie until reaped below).
        assert psutil.Process(second.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        first.wait()
        second.wait()
    assert capsys.readouterr() == ("", "")


def test_waits_for_a_live_experiment_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    live_run: tuple[Path, subprocess.Popen[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, run = live_run
    experiment = _experiment(
        tmp_path,
        monkeypatch,
        "--wait.for",
        directory,
        "--wait.check_interval",
        "0.05",
        "--wait.timeout",
        "0.2",
    )
    with pytest.raises(WaitTimeout):
        experiment.wait()
    assert f"{directory} (run PID {run.pid})" in capsys.readouterr().err

    experiment = _experiment(
        tmp_path,
        monkeypatch,
        "--wait.for",
        directory,
        "--wait.check_interval",
        "0.05",
        "--wait.timeout",
        "30",
    )
    threading.Timer(0.3, _finish, (run,)).start()
    assert experiment.wait() is True
    assert run.wait(timeout=30) == 0
    assert not is_locked(directory)


def test_queue_behind_a_run_in_the_same_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live_run: tuple[Path, subprocess.Popen[str]]
) -> None:
    # "Resume RUN-0 once the current RUN-0 job is done": wait before auto_setup takes the lock.
    directory, run = live_run
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "train.py",
            str(directory),
            "--wait.for",
            str(directory),
            "--wait.check_interval",
            "0.05",
            "--wait.verbose",
            "no",
        ],
    )
    experiment = Experiment()
    experiment.record_args()
    threading.Timer(0.3, _finish, (run,)).start()
    try:
        assert experiment.wait() is True
        experiment.auto_setup(update_git_revision=False)  # takes the now free lock
        assert is_locked(directory)
        # Waiting for our own, now locked, directory would never end: refused.
        with pytest.raises(ArgumentError, match="this very run"):
            experiment.wait()
    finally:
        experiment._after_run()  # what run() does last: release the lock, restore the signals


def test_waits_for_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = _experiment(tmp_path, monkeypatch, "--wait.memory", "1MiB")
    assert experiment.wait() is True
    assert "Nothing to wait for" in capsys.readouterr().out

    total = psutil.virtual_memory().total
    experiment = _experiment(
        tmp_path,
        monkeypatch,
        "--wait.memory",
        f"{total}B",
        "--wait.timeout",
        "0.1",
        "--wait.check_interval",
        "0.05",
    )
    with pytest.raises(WaitTimeout) as info:
        experiment.wait()
    assert "RAM" in info.value.pending[0]
    assert "(--wait.timeout 0.1s)" in capsys.readouterr().err


def test_prints_through_the_experiments_print(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sleeper: subprocess.Popen[bytes],
) -> None:
    experiment = _experiment(
        tmp_path,
        monkeypatch,
        "--wait.for",
        sleeper.pid,
        "--wait.timeout",
        "0.1",
        "--wait.check_interval",
        "0.05",
        cls=_printing_experiment(),
    )
    with pytest.raises(WaitTimeout):
        experiment.wait()
    assert capsys.readouterr() == ("", "")
    assert len(experiment.printed) == 2
    assert experiment.printed[0].startswith(f"[waiter] Waiting for PID {sleeper.pid}")
    assert experiment.printed[1].startswith("[waiter] Gave up waiting after")


@pytest.mark.parametrize(
    ("flags", "error", "hint"),
    [
        (["--wait.for", "banana"], ArgumentError, "neither a process ID nor an existing directory"),
        (["--wait.for"], ArgumentError, "without a value"),
        (["--wait.for", "123 456"], ArgumentError, "write a list"),
        (
            ["--wait.check_interval", "-5", "--wait.for", "1"],
            ArgumentError,
            "positive number of seconds",
        ),
        (
            ["--wait.check_interval", "soon", "--wait.memory", "1GB"],
            ArgumentError,
            "positive number of seconds",
        ),
        (["--wait.memory", "8 parsecs"], ArgumentError, "Accepted units"),
        (["--wait.memory", "16"], ArgumentError, "needs a unit"),
        (["--wait.timeout", "-1", "--wait.for", "1"], ArgumentError, "0 or more"),
        (["--wait.verbose", "loud", "--wait.for", "1"], ArgumentError, "True or False"),
    ],
)
def test_bad_values_get_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], error: type, hint: str
) -> None:
    experiment = _experiment(tmp_path, monkeypatch, *flags)
    with pytest.raises(error, match=hint) as info:
        experiment.wait()
    assert isinstance(info.value, SpeedrunError)


def test_bad_interval_is_reported_even_without_a_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = _experiment(tmp_path, monkeypatch, "--wait.check_interval", "0")
    with pytest.raises(ArgumentError, match="--wait.check_interval"):
        experiment.wait()


def test_directory_that_is_not_an_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    experiment = _experiment(tmp_path, monkeypatch, "--wait.for", tmp_path / "data")
    with pytest.raises(ExperimentDirectoryError, match="not a speedrun experiment directory"):
        experiment.wait()


def test_mixed_list_of_pid_and_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    finished_run = Path(ensure_experiment_directory(tmp_path / "RUN-0"))
    process = subprocess.Popen(["sleep", "0.2"])
    try:
        experiment = _experiment(
            tmp_path,
            monkeypatch,
            "--wait.for",
            f"[{process.pid}, '{finished_run}']",
            "--wait.check_interval",
            "0.05",
        )
        assert experiment.wait() is True
    finally:
        process.wait()
    first = capsys.readouterr().out.splitlines()[0]
    assert f"PID {process.pid} (sleep 0.2)" in first and f"({finished_run}: not running)" in first


def test_needs_get_arg() -> None:
    with pytest.raises(TypeError, match="wait_for"):
        WaiterMixin().wait()


# -- the command line: exit status, Ctrl-C, preemption -----------------------------------------
_SCRIPT = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in an interactive shell
    from speedrun import BaseExperiment
    from speedrun.mixins.waiter import WaiterMixin

    class Train(BaseExperiment, WaiterMixin):
        DEFAULT_DISPATCH = "train"

        def __init__(self):
            super().__init__()
            self.auto_setup(update_git_revision=False)
            self.wait()

        def train(self):
            print("training", flush=True)

        def clean_up(self):
            print("clean_up", flush=True)

    Train().run()
""")


def _script(tmp_path: Path, *flags: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "RUN-1"), *map(str, flags)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_timeout_exit_status_on_the_command_line(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    process = _script(
        tmp_path,
        "--wait.for",
        sleeper.pid,
        "--wait.timeout",
        "0.2",
        "--wait.check_interval",
        "0.05",
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == WAIT_TIMEOUT_EXIT_CODE == 124
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("[waiter] Gave up waiting after")
    assert f"PID {sleeper.pid} (sleep 30)" in err and "exit status 124" in err
    assert "training" not in out


def test_a_finished_wait_starts_the_run(tmp_path: Path) -> None:
    process = _script(tmp_path, "--wait.for", "[]", "--wait.memory", "1KB")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out.splitlines()[-2:] == ["training", "clean_up"]


def _started(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("[waiter] Waiting for"), (line, process.stderr and process.stderr.read())
    return line


def test_ctrl_c_interrupts_cleanly(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    process = _script(tmp_path, "--wait.for", sleeper.pid, "--wait.check_interval", "60")
    _started(process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGINT  # Python's exit for an uncaught Ctrl-C
    assert err.count("[waiter] Interrupted after") == 1
    assert f"while waiting for PID {sleeper.pid} (sleep 30); not starting." in err
    # The traceback is raised afresh from the waiter: no frames from inside its sleeps, and no
    # "During handling of the above exception" chain.
    assert "sleep(" not in err and "During handling" not in err
    assert err.rstrip().endswith("not starting.")
    assert "training" not in out
    assert sleeper.poll() is None


def test_preemption_signal_ends_the_wait_with_the_requeue_status(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    # After auto_setup, speedrun turns SIGTERM into a "checkpoint at the next step" flag. A
    # waiting run has no next step: it must leave now instead of waiting for SLURM's SIGKILL.
    process = _script(tmp_path, "--wait.for", sleeper.pid, "--wait.check_interval", "60")
    _started(process)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert time.monotonic() - started < 30
    assert process.returncode == PREEMPTION_EXIT_CODE
    assert "SIGTERM" in err and "Traceback" not in err
    assert "training" not in out
