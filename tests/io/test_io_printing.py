"""IOMixin printing: printers, print_to_file, line-at-a-time files, and rewinding on resume."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from speedrun import BaseExperiment, ExperimentDirectoryError
from speedrun.mixins.io import IOMixin


class Experiment(BaseExperiment, IOMixin):
    pass


@pytest.fixture
def exp(tmp_path):
    experiment = Experiment(str(tmp_path / "exp"))
    yield experiment
    experiment.execute_hooks("clean_up")


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


# -- printers ---------------------------------------------------------------------------------


def test_default_printer_is_print_and_prints_to_stdout(exp, capsys):
    assert exp.printer is print
    assert exp.print("hello") is exp
    assert capsys.readouterr().out == "hello\n"


def test_set_printer_callable_receives_the_raw_message(exp, capsys):
    received = []
    exp.set_printer(received.append)
    exp.print({"loss": 0.5})
    assert received == [{"loss": 0.5}]
    assert capsys.readouterr().out == ""
    assert exp.printer == received.append


def test_set_printer_tqdm_and_print_to_tqdm(exp, capsys):
    import tqdm

    exp.set_printer("tqdm")
    assert exp.printer == tqdm.tqdm.write
    exp.print(42)
    exp.set_printer("stdout")
    assert exp.printer is print
    assert exp.print_to_tqdm() is exp
    assert exp.printer == tqdm.tqdm.write
    exp.print("via tqdm")
    assert capsys.readouterr().out == "42\nvia tqdm\n"


def test_printer_argument_overrides_for_one_message(exp, capsys):
    seen = []
    exp.set_printer(seen.append)
    exp.print("a", printer="stdout")
    exp.print("b", printer="tqdm")
    exp.print("c")
    assert capsys.readouterr().out == "a\nb\n"
    assert seen == ["c"]


@pytest.mark.parametrize("bad", ["stderr", 3, None])
def test_bad_printer_is_refused_with_the_accepted_values(exp, bad):
    with pytest.raises(TypeError, match=r"'stdout', 'tqdm' or a callable"):
        exp.set_printer(bad)
    assert exp.printer is print


# -- print_to_file ----------------------------------------------------------------------------


def test_print_to_file_properties(exp):
    assert not exp.is_printing_to_file
    assert exp.printing_to_file_name == "stdout"
    assert exp.print_to_file(fname="train.log") is exp
    assert exp.is_printing_to_file
    assert exp.printing_to_file_name == "train.log"
    exp.print_to_file(False)
    assert not exp.is_printing_to_file


def test_every_message_lands_in_the_file_in_order(exp, capsys):
    exp.print_to_file()
    exp.print("first")
    exp.print(3.5)
    exp.print("unicode: αβγ ✓")
    exp.print("two\nlines")
    exp.print_to_file(False)
    exp.print("screen only")
    assert read(os.path.join(exp.log_directory, "stdout")) == (
        "first\n3.5\nunicode: αβγ ✓\ntwo\nlines\n"
    )
    assert capsys.readouterr().out.endswith("screen only\n")


def test_lines_are_on_disk_immediately_for_tail_f(exp):
    exp.print_to_file()
    exp.set_printer(lambda message: None)
    path = os.path.join(exp.log_directory, "stdout")
    for index in range(3):
        exp.print(f"line {index}")
        # A separate reader sees every complete line while the file is still open.
        assert read(path).splitlines() == [f"line {i}" for i in range(index + 1)]


def test_file_is_appended_never_truncated(tmp_path):
    first = Experiment(str(tmp_path / "exp"))
    first.set_printer(lambda message: None).print_to_file(fname="logs/out.txt")
    first.print("from the first run")
    first.execute_hooks("clean_up")
    second = Experiment(str(tmp_path / "exp"))
    second.set_printer(lambda message: None).print_to_file(fname="logs/out.txt")
    second.print("from the second run")
    second.execute_hooks("clean_up")
    assert read(os.path.join(first.log_directory, "logs", "out.txt")) == (
        "from the first run\nfrom the second run\n"
    )


def test_file_names_must_stay_in_logs(exp):
    with pytest.raises(ValueError, match="print_to_file file name"):
        exp.print_to_file(fname="../escape")
    assert not exp.is_printing_to_file


def test_printing_to_file_without_directory_says_how_to_fix(capsys):
    experiment = Experiment()
    experiment.print_to_file()
    with pytest.raises(ExperimentDirectoryError, match=r"print_to_file\(False\)"):
        experiment.print("lost?")


def test_clean_up_closes_the_file_and_printing_reopens_it(exp):
    exp.set_printer(lambda message: None).print_to_file()
    exp.print("a")
    handles = list(exp._io_files.values())
    exp.execute_hooks("clean_up")
    assert all(handle.closed for handle in handles)
    exp.print("b")
    assert read(os.path.join(exp.log_directory, "stdout")) == "a\nb\n"


# -- checkpoints and resume -------------------------------------------------------------------


def test_load_from_checkpoint_cuts_lines_printed_after_it(exp):
    exp.set_printer(lambda message: None).print_to_file()
    for step in range(3):
        exp.print(f"step {step}")
        exp.next_step()
    exp.checkpoint()
    for step in range(3, 6):
        exp.print(f"step {step}")
        exp.next_step()
    exp.execute_hooks("clean_up")

    resumed = Experiment(exp.experiment_directory)
    resumed.load_from_checkpoint()
    log = os.path.join(exp.log_directory, "stdout")
    assert read(log) == "step 0\nstep 1\nstep 2\n"
    discarded = read(log + ".discarded")
    assert "checkpoint of step 3" in discarded.splitlines()[0]
    assert discarded.splitlines()[1:] == ["step 3", "step 4", "step 5"]
    assert resumed.is_printing_to_file and resumed.step == 3
    resumed.set_printer(lambda message: None)
    resumed.print("step 3")
    assert read(log) == "step 0\nstep 1\nstep 2\nstep 3\n"
    resumed.execute_hooks("clean_up")


def test_a_log_that_does_not_match_the_checkpoint_is_left_alone(exp):
    exp.set_printer(lambda message: None).print_to_file()
    exp.print("original line")
    exp.checkpoint()
    exp.execute_hooks("clean_up")
    log = os.path.join(exp.log_directory, "stdout")
    with open(log, "w", encoding="utf-8") as handle:
        handle.write("someone rewrote this file entirely\n")
    resumed = Experiment(exp.experiment_directory)
    with pytest.warns(UserWarning, match="Not rewinding"):
        resumed.load_from_checkpoint()
    assert read(log) == "someone rewrote this file entirely\n"
    assert not os.path.exists(log + ".discarded")


def test_a_custom_printer_does_not_block_checkpoints(exp):
    exp.set_printer(lambda message: None)  # lambdas cannot be pickled
    exp.checkpoint()
    resumed = Experiment(exp.experiment_directory)
    resumed.load_from_checkpoint()
    assert resumed.printer is print


def test_printer_names_survive_checkpoints(exp):
    exp.set_printer("tqdm").print_to_file(fname="train.log")
    exp.checkpoint()
    resumed = Experiment(exp.experiment_directory)
    resumed.load_from_checkpoint()
    import tqdm

    assert resumed.printer == tqdm.tqdm.write
    assert resumed.printing_to_file_name == "train.log"


TRAIN_SCRIPT = textwrap.dedent(
    """
    import os, sys
    sys.modules["torch"] = None  # keep the test fast: checkpoints with dill, not torch.save
    from speedrun import BaseExperiment, IOMixin

    class Train(BaseExperiment, IOMixin):
        def __init__(self):
            super().__init__()
            self.auto_setup(update_git_revision=False)
            self.print_to_file()

        def train(self):
            while self.step < 10:
                self.print(f"step {self.step}")
                if self.step == int(os.environ.get("CRASH_AT", "-1")):
                    raise RuntimeError("simulated crash")
                self.next_step()
                if self.step % 3 == 0:
                    self.checkpoint()

    Train().run()
    """
)


def test_crash_and_resume_print_every_step_exactly_once(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT, encoding="utf-8")
    directory = tmp_path / "RUN-0"
    env = dict(os.environ, CRASH_AT="7")
    crashed = subprocess.run(
        [sys.executable, str(script), str(directory), "--dispatch", "train"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert crashed.returncode != 0 and "simulated crash" in crashed.stderr
    env["CRASH_AT"] = "-1"
    resumed = subprocess.run(
        [sys.executable, str(script), str(directory), "--dispatch", "train", "--resume"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    log = directory / "Logs" / "stdout"
    assert log.read_text(encoding="utf-8").splitlines() == [f"step {i}" for i in range(10)]
    assert (directory / "Logs" / "stdout.discarded").read_text(encoding="utf-8").splitlines()[
        1:
    ] == ["step 6", "step 7"]


def test_a_checkpoint_before_the_first_message_still_rewinds(tmp_path):
    first = Experiment(str(tmp_path / "exp"))
    first.set_printer(lambda message: None).print_to_file()
    first.print("an earlier run")
    first.execute_hooks("clean_up")

    exp = Experiment(str(tmp_path / "exp"))
    exp.set_printer(lambda message: None).print_to_file()
    exp.checkpoint()  # nothing printed by this run yet
    exp.print("printed after the checkpoint")
    exp.execute_hooks("clean_up")

    resumed = Experiment(exp.experiment_directory)
    resumed.load_from_checkpoint()
    log = os.path.join(exp.log_directory, "stdout")
    assert read(log) == "an earlier run\n"
    assert read(log + ".discarded").splitlines()[1:] == ["printed after the checkpoint"]
