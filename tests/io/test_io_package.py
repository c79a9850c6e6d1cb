"""speedrun-io as a distribution: entry point, legacy import, lazy imports, YAML dumps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest

from speedrun import BaseExperiment, ExperimentDirectoryError
from speedrun.ext import load_yaml
from speedrun.mixins.io import IOMixin


def test_entry_point_and_legacy_import_give_the_same_class():
    (entry,) = [ep for ep in entry_points(group="speedrun.mixins") if ep.name == "io"]
    assert entry.load() is IOMixin
    from speedrun import IOMixin as legacy

    assert legacy is IOMixin


def test_importing_the_mixin_imports_no_heavy_library():
    code = (
        "import json, sys\n"
        "from speedrun.mixins.io import IOMixin\n"
        "from speedrun import IOMixin as legacy\n"
        "assert legacy is IOMixin\n"
        "heavy = ('tqdm', 'numpy', 'PIL', 'torch')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(result.stdout) == []


def test_public_api():
    import speedrun.mixins.io as package

    assert package.__all__ == ["IOMixin", "Printer"]
    for name in (
        "print",
        "print_to_file",
        "is_printing_to_file",
        "printing_to_file_name",
        "printer",
        "set_printer",
        "print_to_tqdm",
        "to_array",
        "print_image",
        "progress",
        "progress_bars",
        "log_progress",
        "yaml_dump_directory",
        "dump_yaml",
    ):
        assert hasattr(IOMixin, name), name


class Experiment(BaseExperiment, IOMixin):
    pass


def test_dump_yaml_writes_readable_yaml(tmp_path):
    exp = Experiment(str(tmp_path / "exp"))
    payload = {"loss": np.float32(0.5), "epoch": 3, "names": ["a", "b"], "w": np.arange(3)}
    assert exp.dump_yaml("metrics/val", payload) is exp
    path = os.path.join(exp.log_directory, "YAMLDumps", "metrics", "val.yml")
    loaded = load_yaml(path)
    assert loaded["loss"] == 0.5 and loaded["epoch"] == 3 and loaded["names"] == ["a", "b"]
    np.testing.assert_array_equal(loaded["w"], [0, 1, 2])
    assert exp.yaml_dump_directory == os.path.join(exp.log_directory, "YAMLDumps")


def test_dump_yaml_refuses_bad_tags_and_missing_directories(tmp_path):
    exp = Experiment(str(tmp_path / "exp"))
    with pytest.raises(ValueError, match="YAML dump tag"):
        exp.dump_yaml("../outside", {})
    with pytest.raises(ExperimentDirectoryError, match="experiment_directory"):
        Experiment().dump_yaml("x", {})
