"""Reading experiment directories: configs without numpy/torch, config differences."""

import subprocess
import sys

import pytest

from speedrun import ConfigError
from speedrun.cli._format import format_value
from speedrun.cli._inspection import Tagged, diff_configs, load_config


def test_load_config_keeps_arrays_as_tagged_data(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("a: !NumpyArray [[1, 2], [3, 4]]\nb: !TorchTensor 3\nc: !Add [1, 2]\n")
    config = load_config(path)
    assert config == {
        "a": Tagged("!NumpyArray", [[1, 2], [3, 4]]),
        "b": Tagged("!TorchTensor", 3),
        "c": 3,
    }
    assert config["a"].tag == "!NumpyArray" and config["a"].data == [[1, 2], [3, 4]]
    code = (
        "import sys; from speedrun.cli._inspection import load_config; "
        f"load_config({str(path)!r}); print('numpy' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


def test_load_config_errors_name_the_file(tmp_path):
    (tmp_path / "bad.yml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yml:"):
        load_config(tmp_path / "bad.yml")
    (tmp_path / "list.yml").write_text("- 1\n")
    with pytest.raises(ConfigError, match=r"expected a mapping"):
        load_config(tmp_path / "list.yml")
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_config(tmp_path / "missing.yml")


def test_diff_configs_as_slash_paths():
    a = {"a": {"b": [1, 2, {"c": 1}]}, "l": [1, 2], "m": [1, 2, 3], "t": 1, "u": True}
    b = {"a": {"b": [1, 3, {"c": 2}]}, "l": [1, 2, 3], "m": [3, 2], "t": 1.0, "u": 1}
    assert [(c["change"], c["path"], c["old"], c["new"]) for c in diff_configs(a, b)] == [
        ("changed", "a/b/1", 2, 3),
        ("changed", "a/b/2/c", 1, 2),
        ("added", "l/2", None, 3),
        ("changed", "m", [1, 2, 3], [3, 2]),
        ("changed", "t", 1, 1.0),
        ("changed", "u", True, 1),
    ]
    assert diff_configs(a, a) == []
    assert (
        format_value(
            {"s": "0.1", "n": None, "b": [True, "x y"], "arr": Tagged("!NumpyArray", [1, 2])}
        )
        == '{s: "0.1", n: null, b: [true, x y], arr: !NumpyArray [1, 2]}'
    )
