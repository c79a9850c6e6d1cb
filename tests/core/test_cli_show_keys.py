"""``speedrun show`` lists the config keys a run's class declared, from its run record."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

from speedrun.cli._main import main

MIXIN = textwrap.dedent("""\
    from speedrun.ext import ConfigKey

    class Target:
        def __repr__(self):
            return "Target('stdout')"

    class EchoMixin:
        CONFIG_KEYS = (
            ConfigKey("echo/every", 10, "Echo every N steps.", kinds=(int,)),
            ConfigKey("echo/prefix", "> ", "What each echo starts with.", kinds=(str,)),
            ConfigKey("echo/shape", (2, 3), "A tuple default.", kinds=(list, tuple)),
            ConfigKey("echo/target", Target(), "Where echoes go."),
        )

    class DepthMixin:
        CONFIG_KEYS = (ConfigKey("depth/levels", 3, "How deep.", kinds=(int,)),)
    """)

TRAIN = textwrap.dedent("""\
    import os
    from speedrun import BaseExperiment, register_default_dispatch
    from echomixin import DepthMixin, EchoMixin

    BASES = (DepthMixin, EchoMixin) if os.environ.get("WITH_DEPTH") else (EchoMixin,)

    class Train(*BASES, BaseExperiment):
        def __init__(self):
            super().__init__()
            self.auto_setup()

        @register_default_dispatch
        def train(self):
            print("every", self.config_value("echo/every"), flush=True)

    if __name__ == "__main__":
        Train().run()
    """)


def _run(folder, *args, extra_env=None):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS")
    }
    env.update(extra_env or {})
    result = subprocess.run(
        [sys.executable, "train.py", *map(str, args)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("showkeys")
    (root / "echomixin.py").write_text(MIXIN)
    (root / "train.py").write_text(TRAIN)
    (root / "base.yml").write_text("echo: {every: 5}\ntraining: {checkpoint_every: 2}\n")
    _run(root, "experiments/RUN-0", "--inherit", "base.yml", "--config.echo.prefix", ">>")
    _run(root, "experiments/RUN-1", "--inherit", "base.yml")
    # The same run as an older speedrun recorded it: no config_keys in the record.
    shutil.copytree(root / "experiments" / "RUN-0", root / "experiments" / "OLD")
    record_file = root / "experiments" / "OLD" / "Configurations" / "run.json"
    record = json.loads(record_file.read_text())
    del record["config_keys"]
    record_file.write_text(json.dumps(record))
    # RUN-1 resumed by a class with one more mixin and a changed value: the latest start counts.
    _run(
        root,
        "experiments/RUN-1",
        "--resume",
        "--config.echo.every",
        "7",
        extra_env={"WITH_DEPTH": "1"},
    )
    # A directory of the original speedrun: no run record at all.
    legacy = root / "experiments" / "legacy" / "Configurations"
    legacy.mkdir(parents=True)
    (legacy / "train_config.yml").write_text("lr: 0.5\n")
    return root


@pytest.fixture
def at(runs, monkeypatch):
    monkeypatch.chdir(runs)
    return runs


def show(capsys, *args):
    code = main(["show", *map(str, args)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def keys_section(out):
    sections = out.split("\n\n")
    return next(section for section in sections if section.startswith("declared config keys"))


def table_rows(section):
    lines = section.splitlines()
    header = lines[1].split()
    assert header == ["KEY", "VALUE", "FROM", "DEFAULT", "READ", "BY"]
    columns = [lines[1].index(name) for name in ("KEY", "VALUE", "FROM", "DEFAULT", "READ BY")]
    rows = {}
    for line in lines[2:]:
        cells = [
            line[start:end].strip()
            for start, end in zip(columns, [*columns[1:], None], strict=True)
        ]
        rows[cells[0]] = cells[1:]
    return rows


def test_the_record_keeps_the_declared_keys_as_plain_data(at):
    record = json.loads((at / "experiments" / "RUN-0" / "Configurations" / "run.json").read_text())
    keys = {row["path"]: row for row in record["config_keys"]}
    assert keys["echo/every"] == {
        "path": "echo/every",
        "default": 10,
        "kinds": "int",
        "owner": "EchoMixin",
        "doc": "Echo every N steps.",
    }
    assert keys["echo/shape"]["default"] == [2, 3]
    assert keys["echo/target"]["default"] == "Target('stdout')"
    assert keys["echo/target"]["default_is_repr"] is True
    assert keys["training/checkpoint_every"]["owner"] == "BaseExperiment"
    assert "depth/levels" not in keys
    assert yaml.safe_load(yaml.safe_dump(record["config_keys"])) == record["config_keys"]


def test_show_lists_each_key_with_the_value_used_and_its_owner(at, capsys):
    out = show(capsys, "experiments/RUN-0")
    config, keys, lineage, provenance = out.split("\n\n")
    assert keys.splitlines()[0].startswith("declared config keys (what the run used")
    rows = table_rows(keys)
    assert rows["echo/every"] == ["5", "config", "10", "EchoMixin"]
    assert rows["echo/prefix"] == ['">>"', "config", '"> "', "EchoMixin"]
    assert rows["echo/shape"] == ["[2, 3]", "default", "[2, 3]", "EchoMixin"]
    assert rows["echo/target"] == ["Target('stdout')", "default", "Target('stdout')", "EchoMixin"]
    assert rows["training/checkpoint_every"] == ["2", "config", "null", "BaseExperiment"]
    assert rows["speedrun/preemption_signals"] == [
        "[SIGTERM, SIGUSR1]",
        "default",
        "[SIGTERM, SIGUSR1]",
        "BaseExperiment",
    ]
    assert list(rows) == sorted(rows)
    assert lineage.startswith("lineage:") and provenance.startswith("provenance:")


def test_show_json_has_the_keys(at, capsys):
    data = json.loads(show(capsys, "--json", "experiments/RUN-0"))
    keys = {row["path"]: row for row in data["config_keys"]}
    assert keys["echo/every"] == {
        "path": "echo/every",
        "value": 5,
        "source": "config",
        "default": 10,
        "default_is_repr": False,
        "owner": "EchoMixin",
        "kinds": "int",
        "doc": "Echo every N steps.",
    }
    assert keys["echo/target"]["source"] == "default"
    assert keys["echo/target"]["value"] == "Target('stdout')"
    assert keys["echo/target"]["default_is_repr"] is True
    assert "depth/levels" not in keys
    assert [row["path"] for row in data["config_keys"]] == [
        row["path"] for row in data["record"]["config_keys"]
    ]


def test_a_resumed_run_shows_the_keys_of_its_latest_start(at, capsys):
    rows = table_rows(keys_section(show(capsys, "experiments/RUN-1")))
    assert rows["depth/levels"] == ["3", "default", "3", "DepthMixin"]
    assert rows["echo/every"] == ["7", "config", "10", "EchoMixin"]
    assert rows["echo/prefix"] == ['"> "', "default", '"> "', "EchoMixin"]
    record = json.loads((at / "experiments" / "RUN-1" / "Configurations" / "run.json").read_text())
    assert record["attempt"] == 2
    assert all("config_keys" not in entry for entry in record["history"])


def test_runs_without_recorded_keys_say_so(at, capsys):
    out = show(capsys, "experiments/OLD")
    assert keys_section(out) == (
        "declared config keys: not recorded (run made with an older speedrun)"
    )
    assert json.loads(show(capsys, "--json", "experiments/OLD"))["config_keys"] is None
    assert keys_section(show(capsys, "experiments/legacy")) == (
        "declared config keys: not recorded (no run record: run not started by auto_setup(), "
        "or by the original speedrun)"
    )
    out = show(capsys, "base.yml")
    assert keys_section(out) == "declared config keys: - (a configuration file, not a run)"
    assert json.loads(show(capsys, "--json", "base.yml"))["config_keys"] is None


def test_odd_recorded_keys_are_refused_or_skipped(at, capsys):
    odd = at / "experiments" / "ODD"
    shutil.copytree(at / "experiments" / "RUN-0", odd)
    record_file = odd / "Configurations" / "run.json"
    record = json.loads(record_file.read_text())
    record["config_keys"] = [{"path": 3}, "x", {"path": "echo/every", "default": 10}]
    record_file.write_text(json.dumps(record))
    rows = table_rows(keys_section(show(capsys, odd)))
    assert rows == {"echo/every": ["5", "config", "10", "?"]}
    record["config_keys"] = {"echo/every": 10}
    record_file.write_text(json.dumps(record))
    assert main(["show", str(odd)]) == 2
    assert "'config_keys' is dict, expected list" in capsys.readouterr().err


def test_show_does_not_import_the_experiment(at):
    code = (
        "import sys; from speedrun.cli._main import main; "
        "code = main(['show', 'experiments/RUN-0']); "
        "print(code, 'echomixin' in sys.modules, 'train' in sys.modules, file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=at, capture_output=True, text=True, timeout=60
    )
    assert result.stderr.split() == ["0", "False", "False"]
    assert "echo/target" in result.stdout and "EchoMixin" in result.stdout
