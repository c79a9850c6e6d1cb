"""A new user's first hour (issue 12), through the command line: real processes running a small
train.py, as a user would type them."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml

from speedrun import BaseExperiment, ConfigError
from speedrun.experiment._runinfo import read_run_record

PARTS = textwrap.dedent("""\
    class Optimizer:  # stands in for torch.optim: keeps the learning rate it was built with
        def __init__(self, lr):
            self.lr = lr
    """)

TRAIN = textwrap.dedent("""\
    import sys, time
    sys.modules["torch"] = None  # checkpoints with pickle: each run starts in a blink
    from parts import Optimizer
    from speedrun import BaseExperiment, register_default_dispatch, register_hook

    class TinyRegression(BaseExperiment):
        COMMAND_LINE_FLAGS = ("width",)

        def __init__(self):
            super().__init__()
            self.auto_setup()
            self.optimizer = Optimizer(self.get("training/lr"))
            self.weight = 0.0
            self.note = self.get_arg("note", None)  # read here: not an unknown flag
            if self.get("open_socket", False):  # neither pickle nor dill can save it
                import socket
                self.connection = socket.socket()

        def reapply(self):  # the README's recipe: the config wins over the checkpoint
            if self.get("reapply", False):
                self.optimizer.lr = self.get("training/lr")
        register_hook(reapply, "post_load")

        @register_default_dispatch
        def train(self):
            while self.step < self.get("steps"):
                self.weight += self.optimizer.lr
                self.next_step()
                self.checkpoint(force=False)
                if self.get("hang", False) and self.step == 3:
                    print("ready", flush=True)
                    while True:  # until a signal: preemption is checked in next_step()
                        time.sleep(0.02)
                        self.next_step()
            print(f"trained to step {self.step} with lr {self.optimizer.lr}")

        def evaluate(self):
            print(f"evaluated step {self.step} with lr {self.optimizer.lr}")

    if __name__ == "__main__":
        TinyRegression().run()
    """)

SUBCLASS = textwrap.dedent("""\
    from train import TinyRegression

    class Evaluation(TinyRegression):
        def evaluate(self):
            print(f"subclass evaluated step {self.step}")

    if __name__ == "__main__":
        Evaluation().run()
    """)

OTHER = textwrap.dedent("""\
    import sys
    sys.modules["torch"] = None
    import parts  # noqa: F401 - the run's state holds parts' objects (safe loading imports nothing)
    from speedrun import BaseExperiment

    class Other(BaseExperiment):
        DEFAULT_DISPATCH = "evaluate"

        def __init__(self):
            super().__init__()
            self.auto_setup()

        def evaluate(self):
            print(f"other evaluated step {self.step} weight {self.weight:.2f}")

    if __name__ == "__main__":
        Other().run()
    """)

ANALYSIS = textwrap.dedent("""\
    import sys
    sys.modules["torch"] = None
    import parts  # noqa: F401 - the run's state holds parts' objects (safe loading imports nothing)
    from speedrun import BaseExperiment, ExperimentDirectoryError

    class Analysis(BaseExperiment):
        pass

    run = Analysis.open(sys.argv[1])
    print(f"opened step {run.step} lr {run.get('training/lr')} optimizer {run.optimizer.lr}")
    try:
        run.checkpoint()
    except ExperimentDirectoryError as error:
        print("checkpoint refused:", "read-only" in str(error))
    """)

FORGOT = textwrap.dedent("""\
    from speedrun import BaseExperiment

    class Forgot(BaseExperiment):
        def __init__(self):
            self.auto_setup()

    Forgot().run()
    """)

NO_DEFAULT = textwrap.dedent("""\
    import sys
    sys.modules["torch"] = None
    from speedrun import BaseExperiment

    class Manual(BaseExperiment):  # no default dispatch: trained with --dispatch fit
        def __init__(self):
            super().__init__()
            self.auto_setup()

        def fit(self):
            while self.step < self.get("steps"):
                self.next_step()
                self.checkpoint(force=False)

        def evaluate(self):
            print(f"evaluated step {self.step}")

    if __name__ == "__main__":
        Manual().run()
    """)

BASE = (
    "steps: 60\nreapply: false\nhang: false\nopen_socket: false\n"
    "training: {lr: 0.01, checkpoint_every: 50}\n"
)


def _env(**extra):
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "RANK",
            "WORLD_SIZE",
            "LOCAL_RANK",
            "SLURM_PROCID",
            "SLURM_NTASKS",
            "SPEEDRUN_TRACEBACK",
        )
    }
    env.update(extra)
    return env


@pytest.fixture
def project(tmp_path):
    for name, text in (
        ("parts.py", PARTS),
        ("train.py", TRAIN),
        ("sub.py", SUBCLASS),
        ("other.py", OTHER),
        ("analysis.py", ANALYSIS),
        ("forgot.py", FORGOT),
        ("manual.py", NO_DEFAULT),
        ("base.yml", BASE),
    ):
        (tmp_path / name).write_text(text)
    return tmp_path


def run(folder, *args, script="train.py", check=True, **env):
    result = subprocess.run(
        [sys.executable, script, *map(str, args)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(**env),
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def speedrun(folder, *args):
    return subprocess.run(
        [sys.executable, "-m", "speedrun", *map(str, args)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )


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


def steps(folder, name):
    return sorted(
        int(f.split("_")[-1].split(".")[0])
        for f in os.listdir(folder / name / "Weights")
        if f.startswith("checkpoint_")
    )


def config_of(folder, name):
    return yaml.safe_load((folder / name / "Configurations" / "train_config.yml").read_text())


# -- 2: overrides at --resume ---------------------------------------------------------------------
def test_resume_overrides_are_listed_recorded_and_can_be_reapplied(project):
    run(project, "H", "--inherit", "base.yml")
    resumed = run(project, "H", "--resume", "--config.steps", 70, "--config.training.lr", 0.5)
    assert resumed.stderr.count("--resume from step 60 with 2 changed config value(s)") == 1
    assert "training/lr = 0.5" in resumed.stderr
    assert "the post_load hook(s) reapply run after loading" in resumed.stderr
    assert "trained to step 70 with lr 0.01" in resumed.stdout  # the restored optimizer's
    record = read_run_record(project / "H")
    assert record["resume_overrides"] == {"steps": 70, "training/lr": 0.5}
    assert record["history"][0]["status"] == "finished"
    shown = speedrun(project, "show", "H").stdout
    assert "on resume" in shown and "training/lr=0.5" in shown
    again = run(project, "H", "--resume", "--config.steps", 80, "--config.reapply", True)
    assert "trained to step 80 with lr 0.5" in again.stdout  # the post_load hook re-applied it
    assert read_run_record(project / "H")["resume_overrides"] == {"steps": 80, "reapply": True}


# -- 3: typos and unknown flags --------------------------------------------------------------------
@pytest.mark.parametrize(
    "flags, meant",
    [
        (["--conifg.training.lr", "0.1"], "--config.training.lr"),
        (["--resmue"], "--resume"),
        (["--inheirt", "base.yml"], "--inherit"),
        (["--Purge"], "--purge"),
    ],
)
def test_flags_close_to_speedruns_are_errors(project, flags, meant):
    result = run(project, "T", "--inherit", "base.yml", *flags, check=False)
    assert result.returncode == 1
    assert f"did you mean {meant}?" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "T").exists()


def test_unknown_flags_are_reported_once_and_declared_or_read_ones_not(project):
    result = run(project, "U", "--inherit", "base.yml", "--lr", 0.5, "--width", 3, "--note", "hi")
    assert result.stderr.count("ignored --lr:") == 1
    assert "--width" not in result.stderr and "--note" not in result.stderr
    assert "COMMAND_LINE_FLAGS" in result.stderr


# -- 5: the last steps are saved -------------------------------------------------------------------
def test_final_checkpoint_when_training_returns(project):
    run(project, "F", "--inherit", "base.yml")
    assert steps(project, "F") == [50, 60]
    listing = speedrun(project, "ls", "F").stdout.splitlines()
    assert listing[1].split()[:3] == ["F", "finished", "60"]
    evaluated = run(project, "F", "--resume", "--dispatch", "evaluate")
    assert "evaluated step 60" in evaluated.stdout
    run(project, "G", "--inherit", "base.yml", "--config.training.checkpoint_at_end", False)
    assert steps(project, "G") == [50]


# -- 6: evaluating a finished run leaves it as it was ----------------------------------------------
def test_evaluations_are_recorded_apart(project):
    run(project, "E", "--inherit", "base.yml")
    before = read_run_record(project / "E")
    config = (project / "E" / "Configurations" / "train_config.yml").read_text()
    run(project, "E", "--resume", "--dispatch", "evaluate", "--config.training.lr", 0.3)
    failed = run(project, "E", "--resume", "--dispatch", "evalute", check=False)
    assert failed.returncode == 1 and "cannot dispatch 'evalute'" in failed.stderr
    record = read_run_record(project / "E")
    assert record["status"] == "finished" and record["attempt"] == 1
    assert record["command"] == before["command"]
    assert (project / "E" / "Configurations" / "train_config.yml").read_text() == config
    first, second = record["evaluations"]
    assert (first["method"], first["status"], first["final_step"]) == ("evaluate", "finished", 60)
    assert first["overrides"] == {"training/lr": 0.3}
    assert (second["method"], second["status"]) == ("evalute", "crashed")
    assert speedrun(project, "ls", "E").stdout.splitlines()[1].split()[1] == "finished"
    assert "evaluated" in speedrun(project, "show", "E").stdout


def test_the_training_dispatch_of_a_class_without_default_is_the_runs_own(project):
    run(project, "M", "--inherit", "base.yml", "--dispatch", "fit", script="manual.py")
    assert steps(project, "M") == [50, 60]  # the final checkpoint too
    run(project, "M", "--resume", "--dispatch", "fit", "--config.steps", 70, script="manual.py")
    record = read_run_record(project / "M")
    assert record["attempt"] == 2 and record["evaluations"] == []
    assert steps(project, "M") == [50, 60, 70]
    assert (
        "evaluated step 70"
        in run(project, "M", "--resume", "--dispatch", "evaluate", script="manual.py").stdout
    )
    record = read_run_record(project / "M")
    assert record["attempt"] == 2 and [e["method"] for e in record["evaluations"]] == ["evaluate"]


# -- 7: other classes, and reading a run without touching it ---------------------------------------
def test_a_subclass_resumes_and_any_class_loads_on_purpose(project):
    run(project, "C", "--inherit", "base.yml")
    assert (
        "subclass evaluated step 60"
        in run(project, "C", "--resume", "--dispatch", "evaluate", script="sub.py").stdout
    )
    refused = run(project, "C", "--resume", script="other.py", check=False)
    assert refused.returncode == 1
    assert "--any-class" in refused.stderr and "strict_class=False" in refused.stderr
    loaded = run(project, "C", "--resume", "--any-class", script="other.py")
    assert "other evaluated step 60 weight 0.60" in loaded.stdout


def test_open_reads_a_run_without_lock_or_writes_and_preemption_says_why(project):
    process = start(
        project,
        "O",
        "--inherit",
        "base.yml",
        "--config.steps",
        1000,
        "--config.hang",
        True,
        "--config.training.checkpoint_every",
        2,
    )
    try:

        def snapshot():
            return sorted(
                (
                    os.path.relpath(os.path.join(root, name), project / "O"),
                    os.stat(os.path.join(root, name)).st_mtime_ns,
                )
                for root, _, files in os.walk(project / "O")
                for name in files
            )

        before = snapshot()
        opened = run(project, "O", script="analysis.py")  # the writer holds the lock
        assert "opened step 2 lr 0.01 optimizer 0.01" in opened.stdout
        assert "checkpoint refused: True" in opened.stdout
        assert snapshot() == before
        held = run(project, "O", "--resume", check=False)  # a second writer: a user error
        assert held.returncode == 1 and held.stderr.startswith("speedrun: error:")
        assert "Traceback" not in held.stderr and "LockError" in held.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 75
    lines = [line for line in stderr.splitlines() if line.startswith("speedrun:")]
    assert len(lines) == 1 and "preempted by SIGTERM" in lines[0]
    assert "checkpoint saved" in lines[0] and "--resume" in lines[0]


# -- 8: a failed set-up leaves nothing behind ------------------------------------------------------
def test_failed_setups_create_nothing(project):
    nope = run(project, "NOPE", "--resume", check=False)
    assert nope.returncode == 1 and "nothing to resume at NOPE: no such folder" in nope.stderr
    run(project, "RUN-0", "--inherit", "base.yml")
    typo = run(project, "RUN-O", "--resume", check=False)
    assert "Did you mean RUN-0?" in typo.stderr
    missing = run(project, "X", "--inherit", "experiments/MISSING", check=False)
    assert missing.returncode == 1 and "MISSING" in missing.stderr
    strict = run(
        project, "Y", "--inherit", "base.yml", "--strict", "--config.nokey", 1, check=False
    )
    assert strict.returncode == 1 and "--strict" in strict.stderr
    for name in ("NOPE", "RUN-O", "X", "Y"):
        assert not (project / name).exists(), name
    rows = speedrun(project, "ls").stdout.splitlines()
    assert [row.split()[0] for row in rows[1:]] == ["RUN-0"]


# -- 9: errors a newcomer can act on ---------------------------------------------------------------
def test_user_errors_print_the_message_and_how_to_see_the_traceback(project):
    result = run(project, "NOPE", "--resume", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("speedrun: error: nothing to resume")
    assert "SPEEDRUN_TRACEBACK=1" in result.stderr and "train.py:" in result.stderr
    full = run(project, "NOPE", "--resume", check=False, SPEEDRUN_TRACEBACK="1")
    assert full.returncode == 1 and "Traceback" in full.stderr
    forgot = run(project, "Z", script="forgot.py", check=False)
    assert forgot.returncode == 1 and "super().__init__()" in forgot.stderr
    assert "_world_size" not in forgot.stderr.splitlines()[-1]


def test_get_before_the_config_is_read_is_an_error():
    with pytest.raises(ConfigError, match="before the configuration was read"):
        BaseExperiment().get("training/lr")
    assert BaseExperiment().get("training/lr", 0.1) == 0.1  # a default is an answer
    programmatic = BaseExperiment().set("training/lr", 0.1)  # no auto_setup: still works
    assert programmatic.get("training/lr") == 0.1 and programmatic.get("model") is None
    assigned = BaseExperiment()
    assigned._config = {"a": 1}  # the original's way
    assert assigned.get("b") is None


# -- 10: Ctrl-C ------------------------------------------------------------------------------------
def test_ctrl_c_is_recorded_as_interrupted(project):
    process = start(
        project,
        "I",
        "--inherit",
        "base.yml",
        "--config.steps",
        1000,
        "--config.hang",
        True,
        "--config.training.checkpoint_every",
        2,
    )
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode in (130, -signal.SIGINT), stderr  # Python re-raises SIGINT
    assert "interrupted at step" in stderr and "last checkpoint is from step 2" in stderr
    record = read_run_record(project / "I")
    assert record["status"] == "interrupted" and record["exit_code"] == 130
    assert speedrun(project, "ls", "I").stdout.splitlines()[1].split()[1] == "interrupted"


# -- 11: speedrun ls / show / diff -----------------------------------------------------------------
def test_ls_columns_with_wide_names_and_long_statuses(project):
    run(project, "実験", "--inherit", "base.yml")
    run(project, "plain", "--inherit", "base.yml", "--config.steps", 3)
    record_path = project / "plain" / "Configurations" / "run.json"
    record = json.loads(record_path.read_text())
    record.update(
        status="crashed", exception="some.very.long.module.path.AnExceptionNameThatIsLong"
    )
    record_path.write_text(json.dumps(record))
    lines = speedrun(project, "ls").stdout.splitlines()
    import unicodedata

    def columns(text, column):  # display column where the text of `column` starts
        prefix = text[: text.index(column)]
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in prefix)

    assert (
        columns(lines[0], "STATUS") == columns(lines[1], "finished") == columns(lines[2], "crashed")
    )
    assert "some.very" not in lines[2] and "…" in lines[2]
    assert columns(lines[0], "STEP") == columns(lines[1], "60 ") == columns(lines[2], "3 ")


def test_show_gives_a_killed_runs_last_step_and_the_total_running_time(project):
    process = start(
        project,
        "K",
        "--inherit",
        "base.yml",
        "--config.steps",
        1000,
        "--config.hang",
        True,
        "--config.training.checkpoint_every",
        2,
    )
    process.kill()
    process.communicate(timeout=60)
    shown = speedrun(project, "show", "K").stdout
    assert "killed" in shown
    assert "final step  2 (latest valid checkpoint" in shown
    run(project, "K", "--resume", "--config.hang", False, "--config.steps", 4)
    shown = speedrun(project, "show", "K").stdout
    assert "over 2 attempts" in shown


def test_huge_override_values_are_shortened(project):
    huge = repr(list(range(2000)))
    result = run(project, "B", "--inherit", "base.yml", "--config.big", huge)
    line = next(line for line in result.stderr.splitlines() if "big: new key" in line)
    assert len(line) < 200 and "characters" in line
    run(project, "A", "--inherit", "base.yml")
    diff = speedrun(project, "diff", "A", "B").stdout
    assert max(len(line) for line in diff.splitlines()) < 250 and "--json shows all" in diff


# -- 12: unpicklable attributes fail at once -------------------------------------------------------
def test_an_unpicklable_attribute_is_reported_at_the_first_checkpoint_call(project):
    result = run(project, "P", "--inherit", "base.yml", "--config.open_socket", True, check=False)
    assert result.returncode == 1
    assert "'connection'" in result.stderr
    assert "register_unpickleable('connection')" in result.stderr
    assert steps(project, "P") == []
    assert read_run_record(project / "P")["final_step"] == 1  # not after 50 steps


def test_a_forgotten_super_init_is_named_in_process():
    from speedrun.experiment._state import NotInitialisedError

    class Forgot(BaseExperiment):
        def __init__(self):
            pass

    for call in (lambda e: e.auto_setup(), lambda e: e.get("a"), lambda e: e.run()):
        with pytest.raises(NotInitialisedError, match=r"super\(\).__init__\(\)"):
            call(Forgot())

    class Broken(BaseExperiment):
        @property
        def width(self):
            return self.missing_attribute  # its own AttributeError must stay visible

    with pytest.raises(AttributeError, match="missing_attribute"):
        _ = Broken().width
