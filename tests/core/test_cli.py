"""The speedrun command on real experiment directories: ls, diff, show, mixins, errors."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from speedrun.cli._main import main

TRAIN = textwrap.dedent("""\
    import sys, time
    sys.modules["torch"] = None  # checkpoints with dill/pickle: each run starts in a blink
    from speedrun import BaseExperiment, register_default_dispatch

    class Train(BaseExperiment):
        def __init__(self):
            super().__init__()
            self.auto_setup()

        @register_default_dispatch
        def train(self):
            while self.step < self.get("training/steps"):
                self.next_step()
                self.checkpoint(force=False)
            if self.get("mode") == "crash":
                raise RuntimeError("diverged")
            if self.get("mode") == "hang":
                print("ready", flush=True)
                time.sleep(600)

    if __name__ == "__main__":
        Train().run()
    """)

BASE = textwrap.dedent("""\
    mode: finish
    training: {steps: 4, lr: 0.1, checkpoint_every: 2, schedule: {name: cosine, warmup: 5}}
    model:
      widths: [64, 64]
      blocks:
        - {kind: conv, size: 3}
        - {kind: pool, size: 2}
      dropout: null
    tags: [baseline]
    """)


def _env():
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS")
    }


def _run(folder, *args, check=True):
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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Experiment directories made by real runs (made once for the whole module)."""
    root = tmp_path_factory.mktemp("cli")
    (root / "train.py").write_text(TRAIN)
    (root / "base.yml").write_text(BASE)
    exp = root / "experiments"
    _run(root, "experiments/RUN-0", "--inherit", "base.yml")
    time.sleep(0.01)
    _run(
        root,
        "experiments/RUN-1",
        "--inherit",
        "experiments/RUN-0",
        "--config.training.lr",
        "0.01",
        "--config.model.widths",
        "[64, 128]",
        "--config.model.blocks",
        "[{'kind': 'conv', 'size': 5}, {'kind': 'pool', 'size': 2}]",
        "--config.tags",
        "['baseline', 'small-lr']",
        "--config.seed",
        "3",
    )
    _run(
        root,
        "experiments/group/RUN-2",
        "--inherit",
        "experiments/RUN-1",
        "--config.mode",
        "crash",
        check=False,
    )
    hang = subprocess.Popen(
        [
            sys.executable,
            "train.py",
            "experiments/group/RUN-3",
            "--inherit",
            "experiments/RUN-0",
            "--config.mode",
            "hang",
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert hang.stdout.readline().strip() == "ready"
    hang.send_signal(signal.SIGKILL)
    hang.wait(timeout=60)
    hang.stdout.close()
    hang.stderr.close()
    resumed = subprocess.Popen(
        [
            sys.executable,
            "train.py",
            "experiments/RUN-4",
            "--inherit",
            "experiments/RUN-0",
            "--config.mode",
            "hang",
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert resumed.stdout.readline().strip() == "ready"
    resumed.kill()
    resumed.wait(timeout=60)
    resumed.stdout.close()
    resumed.stderr.close()
    _run(
        root,
        "experiments/RUN-4",
        "--resume",
        "--config.mode",
        "finish",
        "--config.training.steps",
        6,
    )
    _run(root, "experiments/RUN-5", "--inherit", "experiments/RUN-0")
    # A directory of the original speedrun (no marker, no run record).
    legacy = exp / "legacy"
    for name in ("Configurations", "Logs", "Weights", "Plots"):
        (legacy / name).mkdir(parents=True)
    (legacy / "Configurations" / "train_config.yml").write_text("lr: 0.5\ngit_rev: abc123\n")
    # A broken one: its run record is not JSON.
    broken = exp / "broken"
    _run(root, "experiments/broken", "--inherit", "base.yml")
    (broken / "Configurations" / "run.json").write_text("{truncated")
    (exp / "notes").mkdir()
    (exp / "notes" / "todo.txt").write_text("not an experiment")
    return root


def cli(capsys, *args):
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def at(runs, monkeypatch):
    monkeypatch.chdir(runs)
    return runs


# ------------------------------------------------------------------------------------------- ls


def test_ls_lists_every_run_with_status_step_parent_and_times(at, capsys):
    code, out, err = cli(capsys, "ls", "experiments")
    assert code == 1  # one directory was skipped
    assert err.strip() == (
        "speedrun ls: skipped experiments/broken: "
        "experiments/broken/Configurations/run.json is not valid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1)); expected a speedrun run record. Restore it or delete it "
        "(the run's configuration and checkpoints do not depend on it)"
    )
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "STEP", "PARENT", "GIT", "STARTED", "DURATION"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    # Oldest first; the legacy directory (made last, dated by its config file) at the end.
    assert list(rows) == [
        "experiments/RUN-0",
        "experiments/RUN-1",
        "experiments/group/RUN-2",
        "experiments/group/RUN-3",
        "experiments/RUN-4",
        "experiments/RUN-5",
        "experiments/legacy",
    ]
    assert rows["experiments/RUN-0"][1:5] == ["finished", "4", "base.yml", "-"]
    assert rows["experiments/RUN-1"][1:5] == ["finished", "4", "experiments/RUN-0", "-"]
    assert rows["experiments/group/RUN-2"][1:6] == [
        "crashed",
        "(RuntimeError)",
        "4",
        "experiments/RUN-1",
        "-",
    ]
    assert rows["experiments/group/RUN-3"][1:4] == ["killed", "4", "experiments/RUN-0"]
    assert rows["experiments/group/RUN-3"][-1].startswith("~")  # estimated from its last write
    assert rows["experiments/RUN-4"][1:4] == ["finished", "6", "experiments/RUN-0"]
    assert rows["experiments/legacy"][1:5] == ["unknown", "-", "-", "abc123"]
    assert "notes" not in out


def test_ls_json_is_sorted_by_start_time(at, capsys):
    code, out, _ = cli(
        capsys, "ls", "--json", "experiments/RUN-4", "experiments/group", "experiments/RUN-0"
    )
    assert code == 0
    rows = json.loads(out)
    assert [row["directory"] for row in rows] == [
        "experiments/RUN-0",
        "experiments/group/RUN-2",
        "experiments/group/RUN-3",
        "experiments/RUN-4",
    ]
    starts = [row["started_at"] for row in rows]
    assert starts == sorted(starts)
    run_4 = rows[-1]
    assert (run_4["status"], run_4["step"], run_4["attempts"]) == ("finished", 6, 2)
    assert run_4["parent"] == str(at / "experiments" / "RUN-0")
    assert run_4["duration_estimated"] is True  # the killed first attempt
    assert rows[1]["exception"] == "RuntimeError"
    _, out, _ = cli(capsys, "ls", "--json", "--reverse", "experiments/RUN-4", "experiments/RUN-0")
    assert [row["directory"] for row in json.loads(out)] == [
        "experiments/RUN-4",
        "experiments/RUN-0",
    ]


def test_ls_reports_missing_folders_and_empty_ones(at, capsys):
    code, out, err = cli(capsys, "ls", "nowhere", "experiments/notes")
    assert code == 1 and out == ""  # a missing folder is a problem; an empty one is not
    assert err.splitlines() == [
        "speedrun ls: nowhere does not exist; expected a folder holding experiment directories",
        "speedrun ls: no experiment directories in experiments/notes (searched 3 levels deep)",
    ]
    assert cli(capsys, "ls", "experiments/notes")[0] == 0
    code, out, err = cli(capsys, "ls", "--depth", "1", "experiments")
    assert "group/RUN-2" not in out and "experiments/RUN-0" in out


def test_ls_defaults_to_the_working_folder(at, capsys, monkeypatch):
    monkeypatch.chdir(at / "experiments")
    code, out, err = cli(capsys, "ls")
    assert code == 1 and err.startswith("speedrun ls: skipped broken: ")
    assert "RUN-1" in out.split() and "group/RUN-3" in out.split()


def test_ls_notices_a_live_run(at, capsys):
    process = subprocess.Popen(
        [
            sys.executable,
            "train.py",
            "experiments/RUN-live",
            "--inherit",
            "base.yml",
            "--config.mode",
            "hang",
        ],
        cwd=at,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert process.stdout.readline().strip() == "ready"
        _, out, _ = cli(capsys, "ls", "--json", "experiments/RUN-live")
        (row,) = json.loads(out)
        assert row["status"] == "running" and row["duration_seconds"] >= 0
    finally:
        process.kill()
        process.wait(timeout=60)
        process.stdout.close()
        process.stderr.close()
    _, out, _ = cli(capsys, "ls", "--json", "experiments/RUN-live")
    assert json.loads(out)[0]["status"] == "killed"
    # the runs fixture is shared by the module: leave it as the other tests expect it
    shutil.rmtree(at / "experiments" / "RUN-live")


# ----------------------------------------------------------------------------------------- diff


def test_diff_reports_nested_and_list_changes_as_slash_paths(at, capsys):
    code, out, err = cli(capsys, "diff", "experiments/RUN-0", "experiments/RUN-1")
    assert code == 1 and err == ""
    assert out.splitlines() == [
        "--- experiments/RUN-0",
        "+++ experiments/RUN-1",
        "config (3 changed, 2 added):",
        "  ~ training/lr: 0.1 -> 0.01",
        "  ~ model/widths/1: 64 -> 128",
        "  ~ model/blocks/0/size: 3 -> 5",
        "  + tags/1: small-lr",
        "  + seed: 3",
        "command line (1 changed, 5 added):",
        "  ~ --inherit: base.yml -> experiments/RUN-0",
        "  + --config.training.lr: 0.01",
        "  + --config.model.widths: [64, 128]",
        "  + --config.model.blocks: [{'kind': 'conv', 'size': 5}, {'kind': 'pool', 'size': 2}]",
        "  + --config.tags: ['baseline', 'small-lr']",
        "  + --config.seed: 3",
    ]


def test_diff_of_identical_runs_is_silent_and_exits_0(at, capsys):
    assert cli(capsys, "diff", "experiments/RUN-1", "experiments/RUN-1") == (0, "", "")
    # Same configuration, but inherited differently: only the command line differs.
    code, out, _ = cli(capsys, "diff", "experiments/RUN-0", "experiments/RUN-5")
    assert code == 1
    assert out.splitlines()[2:] == [
        "command line (1 changed):",
        "  ~ --inherit: base.yml -> experiments/RUN-0",
    ]
    assert cli(capsys, "diff", "--config-only", "experiments/RUN-0", "experiments/RUN-5") == (
        0,
        "",
        "",
    )


def test_diff_json_and_yml_files(at, capsys):
    code, out, _ = cli(capsys, "diff", "--json", "base.yml", "experiments/RUN-1")
    assert code == 1
    data = json.loads(out)
    assert data["identical"] is False
    assert {(c["change"], c["path"]) for c in data["config"]} == {
        ("changed", "training/lr"),
        ("changed", "model/widths/1"),
        ("changed", "model/blocks/0/size"),
        ("added", "tags/1"),
        ("added", "seed"),
    }
    assert data["command_line"] == []  # a .yml file has no command line
    assert cli(capsys, "diff", "base.yml", "base.yml")[0] == 0


def test_diff_compares_git_revisions(at, capsys, tmp_path):
    for name, rev, dirty in (("a.yml", "1111111122", False), ("b.yml", "3333333344", True)):
        (tmp_path / name).write_text(f"lr: 0.1\ngit_rev: '{rev}'\ngit_dirty: {dirty}\n")
    code, out, _ = cli(capsys, "diff", tmp_path / "a.yml", tmp_path / "b.yml")
    assert code == 1
    assert out.splitlines()[2:] == [
        "git (2 changed):",
        "  ~ revision: 1111111122 -> 3333333344",
        "  ~ dirty: clean -> dirty",
    ]


# ----------------------------------------------------------------------------------------- show


def test_show_prints_config_lineage_and_provenance(at, capsys):
    code, out, _ = cli(capsys, "show", "experiments/group/RUN-2")
    assert code == 0
    config, keys, lineage, provenance = out.split("\n\n")
    assert (
        config.splitlines()[0]
        == "config (experiments/group/RUN-2/Configurations/train_config.yml):"
    )
    assert "  mode: crash" in config.splitlines()
    assert keys.splitlines()[0].startswith("declared config keys (what the run used")
    assert ["training/checkpoint_every", "2", "config", "null", "BaseExperiment"] in [
        line.split() for line in keys.splitlines()
    ]
    assert [line.split("  (")[0].strip() for line in lineage.splitlines()[1:]] == [
        "experiments/group/RUN-2",
        "<- experiments/RUN-1",
        "<- experiments/RUN-0",
        "<- base.yml",
    ]
    assert "(crashed, git -, started " in lineage.splitlines()[1]
    assert lineage.splitlines()[-1].endswith("(file)")
    fields = dict(
        line.strip().split(None, 1)
        for line in provenance.splitlines()[1:]
        if not line.strip().startswith("final")
    )
    assert fields["status"] == "crashed (RuntimeError: diverged)"
    assert fields["command"] == (
        f"cd {at} && {sys.executable} train.py experiments/group/RUN-2 "
        "--inherit experiments/RUN-1 --config.mode crash"
    )
    assert fields["inherit"].startswith("experiments/RUN-1 (")
    assert fields["checkpoint"] == "latest valid at step 4"
    assert fields["class"] == "__main__.Train"


def test_show_json_and_resumed_attempts(at, capsys):
    code, out, _ = cli(capsys, "show", "--json", "experiments/RUN-4")
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "finished" and data["latest_checkpoint_step"] == 6
    assert data["config"]["training"]["steps"] == 6
    assert [entry["status"] for entry in data["record"]["history"]] == ["killed"]
    assert [entry["path"] for entry in data["lineage"]] == [
        "experiments/RUN-4",
        str(at / "experiments" / "RUN-0"),
        str(at / "base.yml"),
    ]
    code, out, _ = cli(capsys, "show", "experiments/RUN-4")
    assert "attempts    1: killed (" in out and "; 2: finished (" in out


def test_show_of_a_legacy_directory(at, capsys):
    code, out, _ = cli(capsys, "show", "experiments/legacy")
    assert code == 0 and "  lr: 0.5" in out
    assert "  record      none (run not started by auto_setup()" in out
    assert "\ndeclared config keys: not recorded (no run record: " in out


# --------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["show", "experiments/notes"],
            (
                "speedrun show: error: experiments/notes is not a speedrun experiment directory: expected "
                "a folder with a .speedrun marker or Configurations/train_config.yml; pass a run's folder, "
                "e.g. experiments/RUN-0"
            ),
        ),
        (
            ["diff", "experiments/RUN-0", "nowhere"],
            "speedrun diff: error: nowhere: no such experiment directory; check the path",
        ),
        (
            ["show", "train.py"],
            (
                "speedrun show: error: train.py is a file, not an experiment directory; pass the run's "
                "folder (or a .yml configuration file where the command accepts one)"
            ),
        ),
        (
            ["diff", "experiments/RUN-0", "experiments/broken"],
            (
                "speedrun diff: error: experiments/broken/Configurations/run.json is not valid JSON "
                "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); expected "
                "a speedrun run record. Restore it or delete it (the run's configuration and checkpoints "
                "do not depend on it)"
            ),
        ),
    ],
)
def test_errors_are_one_line(at, capsys, args, message):
    code, out, err = cli(capsys, *args)
    assert (code, out) == (2, "")
    assert err == message.format(at=at) + "\n"


def test_unreadable_config_is_one_line(at, capsys, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("lr: [0.1\n")
    code, out, err = cli(capsys, "diff", bad, "base.yml")
    assert (code, out) == (2, "") and len(err.splitlines()) == 1
    assert err.startswith(f"speedrun diff: error: {bad}:2:1: could not parse YAML")


# --------------------------------------------------------------------------------------- mixins


def test_mixins_are_read_from_entry_points_without_importing_them(at):
    from importlib.metadata import entry_points

    code = (
        "import sys; from speedrun.cli._main import main; main(['mixins', '--json']); "
        "print(sorted(m for m in sys.modules if m.startswith('speedrun.mixins')), "
        "file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stderr.strip() == "[]"
    data = json.loads(result.stdout)
    import speedrun

    assert data["distributions"]["speedrun-core"] == speedrun.__version__
    expected = {ep.name: ep.value for ep in entry_points(group="speedrun.mixins")}
    assert {m["name"]: m["entry_point"] for m in data["mixins"]} == expected
    for mixin in data["mixins"]:
        assert data["distributions"][mixin["distribution"]] == mixin["version"]
    named = {m["class"] for m in data["mixins"]} | {m["class"] for m in data["not_installed"]}
    assert {
        "TensorboardMixin",
        "IOMixin",
        "MatplotlibMixin",
        "InfernoMixin",
        "FirelightMixin",
        "WaiterMixin",
    } <= named


def test_console_script_and_module_entry(at):
    result = subprocess.run(
        [sys.executable, "-m", "speedrun", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout.startswith("speedrun-core ")
    script = os.path.join(os.path.dirname(sys.executable), "speedrun")
    if not os.path.exists(script):
        pytest.skip("the speedrun console script is not installed next to this interpreter")
    result = subprocess.run(
        [script, "ls", "experiments/RUN-0"], cwd=at, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "experiments/RUN-0" in result.stdout
    piped = subprocess.run(
        f"{script} ls experiments | head -1",
        shell=True,
        cwd=at,
        capture_output=True,
        text=True,
        check=False,
    )
    assert piped.stdout.startswith("NAME") and "Traceback" not in piped.stderr
