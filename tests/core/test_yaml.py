"""Tests for speedrun.config._yaml: safe loading with speedrun's tags, dumping, errors."""

from __future__ import annotations

import datetime
import os
import pathlib
import subprocess
import sys
import textwrap
from collections import OrderedDict
from typing import Any

import pytest

try:
    import numpy as np
except ImportError:  # speedrun-core alone: the tests that need numpy skip
    np = None
try:
    import torch
except ImportError:  # speedrun-core alone: the tests that need torch skip
    torch = None
needs_numpy = pytest.mark.skipif(np is None, reason="needs numpy")
needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")
import yaml

from speedrun._errors import ConfigError
from speedrun.config import _yaml
from speedrun.config._yaml import (
    SpeedrunDumper,
    SpeedrunLoader,
    dump_yaml,
    dumps_yaml,
    load_mapping,
    load_yaml,
    loads_yaml,
)

LOADERS = [SpeedrunLoader, _yaml._PureSpeedrunLoader]
DUMPERS = [SpeedrunDumper, _yaml._PureSpeedrunDumper]


def write(tmp_path: pathlib.Path, text: str, name: str = "config.yml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def equal(a: Any, b: Any) -> bool:
    """Deep equality that understands numpy arrays and torch tensors (and their dtypes)."""
    if np is not None and (isinstance(a, np.ndarray) or isinstance(b, np.ndarray)):
        return (
            type(a) is type(b)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b))
        )
    if torch is not None and (isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)):
        return type(a) is type(b) and a.dtype == b.dtype and bool(torch.equal(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(equal, a, b))
    return type(a) is type(b) and a == b


# --------------------------------------------------------------------------- registration


@needs_numpy
def test_pyyaml_global_loaders_and_dumpers_are_untouched() -> None:
    for loader in (yaml.SafeLoader, yaml.FullLoader, yaml.Loader, yaml.UnsafeLoader):
        assert "!Add" not in loader.yaml_constructors
        assert "!NumpyArray" not in loader.yaml_constructors
        assert "!TorchTensor" not in loader.yaml_constructors
    assert "tag:yaml.org,2002:python/" not in yaml.SafeLoader.yaml_multi_constructors
    if yaml.__with_libyaml__:
        assert "!Add" not in yaml.CSafeLoader.yaml_constructors
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load("a: !Add [1, 2]")
    assert yaml.safe_load("lr: 1e-3") == {"lr": "1e-3"}  # PyYAML's resolver is untouched
    for dumper in (yaml.SafeDumper, yaml.Dumper):
        assert np.ndarray not in dumper.yaml_representers
    with pytest.raises(yaml.representer.RepresenterError):
        yaml.safe_dump({"a": np.arange(2)})


def test_c_accelerated_bases_are_used_when_available() -> None:
    if yaml.__with_libyaml__:
        assert issubclass(SpeedrunLoader, yaml.CSafeLoader)
        assert issubclass(SpeedrunDumper, yaml.CSafeDumper)
    else:  # pragma: no cover - libyaml is present in the dev env
        assert issubclass(SpeedrunLoader, yaml.SafeLoader)
    assert issubclass(_yaml._PureSpeedrunLoader, yaml.SafeLoader)
    assert issubclass(_yaml._PureSpeedrunDumper, yaml.SafeDumper)


@needs_torch
@needs_numpy
def test_importing_and_using_the_module_imports_neither_numpy_nor_torch(
    tmp_path: pathlib.Path,
) -> None:
    script = textwrap.dedent(
        """
        import sys
        from speedrun.config._yaml import dumps_yaml, loads_yaml
        data = loads_yaml("a: !Add [1, 2]\\nb: [1, 2.5, x]\\nc: {d: null}\\n")
        assert data == {"a": 3, "b": [1, 2.5, "x"], "c": {"d": None}}, data
        assert loads_yaml(dumps_yaml(data)) == data
        print(sorted(m for m in ("numpy", "torch", "yaml") if m in sys.modules))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert result.stdout.strip() == "['yaml']"


# --------------------------------------------------------------------------- plain YAML


@pytest.mark.parametrize("loader", LOADERS, ids=["c", "pure"])
def test_plain_yaml_loads_like_pyyaml_safe_load(loader: type) -> None:
    text = textwrap.dedent(
        """
        name: run-0
        training: {lr: 0.01, epochs: 10, nesterov: true}
        layers: [64, 128, 256]
        empty: null
        when: 2024-05-01
        anchors:
          base: &base {a: 1, b: 2}
          derived: {<<: *base, b: 3}
        """
    )
    expected = yaml.safe_load(text)
    assert _yaml._load(text, "x.yml", loader) == expected
    assert expected["anchors"]["derived"] == {"a": 1, "b": 3}
    assert expected["when"] == datetime.date(2024, 5, 1)


@pytest.mark.parametrize("loader", LOADERS, ids=["c", "pure"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-3", 1e-3),
        ("5E4", 5e4),
        ("-2e+2", -200.0),
        ("1.5e3", 1500.0),
        ("3.0e-5", 3e-5),
        (".5e1", 5.0),
        ("'1e-3'", "1e-3"),
        ("1e", "1e"),
        ("e5", "e5"),
        ("10", 10),
        ("0.1", 0.1),
    ],
)
def test_exponent_floats_without_a_dot_load_as_floats(
    loader: type, text: str, expected: Any
) -> None:
    assert equal(_yaml._load(f"lr: {text}", "x.yml", loader), {"lr": expected})


def test_empty_documents_give_an_empty_mapping(tmp_path: pathlib.Path) -> None:
    assert loads_yaml("") == {}
    assert loads_yaml("# only a comment\n\n") == {}
    assert load_yaml(write(tmp_path, "")) == {}
    assert load_mapping(write(tmp_path, "# nothing yet\n")) == {}
    assert loads_yaml("null") is None  # an explicit null is not an empty document


# --------------------------------------------------------------------------- arithmetic tags


@pytest.mark.parametrize("loader", LOADERS, ids=["c", "pure"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("!Add [1, 2]", 3),
        ("!Add [1, 2, 3.5]", 6.5),
        ("!Add [7]", 7),
        ("!Mul [2, 3, 4]", 24),
        ("!Mul [0.5, 4]", 2.0),
        ("!Sub [10, 3, 2]", 5),
        ("!Sub [1, 0.25]", 0.75),
        ("!Div [1, 4]", 0.25),
        ("!Div [12, 3, 2]", 2.0),
        ("!Add [1, !Mul [2, 3], !Sub [10, !Div [8, 2]]]", 13.0),
        ("!Mul [1e-3, 2]", 2e-3),
    ],
)
def test_arithmetic_tags(loader: type, text: str, expected: Any) -> None:
    assert equal(_yaml._load(f"value: {text}", "x.yml", loader)["value"], expected)


def test_arithmetic_tags_inside_nested_structures(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        """
        model:
          hidden: !Mul [64, 4]
          sizes: [!Add [1, 1], !Sub [5, 2]]
        training:
          lr: !Div [0.1, 10]
        """,
    )
    assert load_yaml(path) == {
        "model": {"hidden": 256, "sizes": [2, 3]},
        "training": {"lr": pytest.approx(0.01)},
    }


@pytest.mark.parametrize("loader", LOADERS, ids=["c", "pure"])
@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("!Div 3", ["!Div", "sequence of two or more numbers", "!Div [6, 3]", "'3'"]),
        ('!Add ["a", 1]', ["!Add", "one or more numbers", "str 'a'"]),
        ("!Add [true, 1]", ["!Add", "bool True"]),
        ("!Mul [[1, 2], 3]", ["!Mul", "list [1, 2]"]),
        ("!Add {a: 1}", ["!Add", "got a mapping"]),
        ("!Add []", ["!Add", "got 0 element(s)"]),
        ("!Sub [1]", ["!Sub", "two or more", "got 1 element(s)"]),
        ("!Div [1, 0]", ["!Div", "division by zero", "[1, 0]"]),
        ("!Div [1.5, 0.0]", ["!Div", "cannot be computed"]),
        ("!Div [1, 2, 0]", ["!Div", "division by zero"]),
        ("!Div [1" + "0" * 400 + ", 3]", ["!Div", "cannot be computed", "too large"]),
    ],
)
def test_bad_arithmetic_arguments_name_tag_file_line_and_expectation(
    tmp_path: pathlib.Path, loader: type, value: str, fragments: list[str]
) -> None:
    text = f"name: run\nhyper:\n  x: {value}\n"
    with pytest.raises(ConfigError) as caught:
        _yaml._load(text, str(tmp_path / "config.yml"), loader)
    message = str(caught.value)
    assert f"{tmp_path / 'config.yml'}:3:6:" in message
    for fragment in fragments:
        assert fragment in message


def test_bad_arithmetic_in_a_real_file_names_the_file(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "a: 1\nb: !Div [1, 0]\n")
    with pytest.raises(ConfigError, match=r"config\.yml:2:4: !Div .*division by zero"):
        load_yaml(path)


# --------------------------------------------------------------------------- array tags


@needs_torch
@needs_numpy
@pytest.mark.parametrize("loader", LOADERS, ids=["c", "pure"])
def test_numpy_array_and_torch_tensor_tags(loader: type) -> None:
    text = textwrap.dedent(
        """
        mean: !NumpyArray [0.485, 0.456, 0.406]
        grid: !NumpyArray [[1, 2], [3, 4]]
        scalar: !NumpyArray 3
        weights: !TorchTensor [[1.0, 2.0], [3.0, 4.0]]
        labels: !TorchTensor [1, 2, 3]
        computed: !NumpyArray [!Add [1, 1], !Mul [2, 2]]
        """
    )
    data = _yaml._load(text, "x.yml", loader)
    assert equal(data["mean"], np.array([0.485, 0.456, 0.406]))
    assert equal(data["grid"], np.array([[1, 2], [3, 4]]))
    assert equal(data["scalar"], np.array(3))
    assert equal(data["weights"], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert equal(data["labels"], torch.tensor([1, 2, 3]))
    assert equal(data["computed"], np.array([2, 4]))


@needs_numpy
def test_arithmetic_accepts_arrays_built_by_tags() -> None:
    data = loads_yaml("x: !Mul [!NumpyArray [1, 2], 3]")
    assert equal(data["x"], np.array([3, 6]))


@needs_torch
@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ("!NumpyArray [[1], [1, 2]]", ["!NumpyArray", "rectangular", "[[1], [1, 2]]"]),
        ("!NumpyArray {a: 1}", ["!NumpyArray", "got a mapping"]),
        ("!TorchTensor ['x', 'y']", ["!TorchTensor", "torch refuses"]),
        ("!TorchTensor [[1], [1, 2]]", ["!TorchTensor", "rectangular"]),
    ],
)
def test_bad_array_arguments(tmp_path: pathlib.Path, value: str, fragments: list[str]) -> None:
    path = write(tmp_path, f"a: 1\nx: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    assert f"{path}:2:4:" in str(caught.value)
    for fragment in fragments:
        assert fragment in str(caught.value)


@needs_torch
@needs_numpy
@pytest.mark.parametrize(("module", "tag"), [("numpy", "!NumpyArray"), ("torch", "!TorchTensor")])
def test_missing_array_library_names_the_pip_install(
    monkeypatch: pytest.MonkeyPatch, module: str, tag: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` raise ImportError
    with pytest.raises(ImportError) as caught:
        loads_yaml(f"x: {tag} [1, 2]", source="cfg.yml")
    assert str(caught.value) == (
        f"cfg.yml:1:4: {tag} needs {module}, which is not installed. Fix: pip install {module}"
    )
    assert loads_yaml("x: !Add [1, 2]") == {"x": 3}  # other tags don't need the library


# --------------------------------------------------------------------------- refused tags


PYTHON_TAGS = [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/apply:subprocess.check_call [["touch", "{marker}"]]',
    "!<tag:yaml.org,2002:python/object/apply:os.system> ['touch {marker}']",
    '!!python/object/new:subprocess.Popen [["touch", "{marker}"]]',
    "!!python/name:os.system",
    "!!python/tuple [1, 2]",
]


@pytest.mark.parametrize("loader", LOADERS, ids=["c", "pure"])
@pytest.mark.parametrize("tag", PYTHON_TAGS)
def test_python_tags_are_refused_and_nothing_runs(
    tmp_path: pathlib.Path, loader: type, tag: str
) -> None:
    marker = tmp_path / "pwned"
    path = write(tmp_path, "")
    path.write_text(
        "name: innocent\nnested:\n  list:\n    - 1\n    - " + tag.format(marker=marker) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        _yaml._load(path.read_bytes(), str(path), loader)
    message = str(caught.value)
    assert f"{path}:5:7:" in message
    assert "speedrun configs may only use plain YAML and the tags" in message
    assert "!Add" in message and "!TorchTensor" in message
    assert not marker.exists()


def test_python_tag_refused_through_load_yaml_and_as_a_key(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    path = write(tmp_path, f'? !!python/object/apply:os.system ["touch {marker}"]\n: value\n')
    with pytest.raises(
        ConfigError, match=r"config\.yml:1:3: refused the tag '!!python/object/apply"
    ):
        load_yaml(path)
    assert not marker.exists()


def test_python_tag_refused_when_using_the_loader_class_directly(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ConfigError, match="plain YAML"):
        yaml.load(f'x: !!python/object/apply:os.system ["touch {marker}"]', Loader=SpeedrunLoader)
    assert not marker.exists()


def test_unknown_tags_are_refused_with_the_accepted_list(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "a:\n  b: !Addd [1, 2]\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    message = str(caught.value)
    assert f"{path}:2:6: unknown tag '!Addd'" in message
    assert "!Add, !Mul, !Sub, !Div, !NumpyArray, !TorchTensor" in message


# --------------------------------------------------------------------------- file errors


def test_missing_file_names_the_path_and_the_fix(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "Configurations" / "train_config.yml"
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    message = str(caught.value)
    assert str(path) in message
    assert "does not exist" in message
    assert "check the path" in message
    assert "Configurations/train_config.yml" in message
    with pytest.raises(ConfigError, match="does not exist"):
        load_mapping(path)


def test_a_folder_instead_of_a_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="found a folder"):
        load_yaml(tmp_path)


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("a: 1\nb: c: d\n", "2:5", "mapping values are not allowed"),
        ("a:\n\t- 1\n", "2:1", "cannot start any token"),
        ("a: [1, 2\nb: 3\n", None, "','"),
        ("a: 1\n---\nb: 2\n", "2:1", "expected a single document"),
        ("a: 'unterminated\n", None, "quoted scalar"),
        ("a: *nothing\n", "1:4", "undefined alias"),
    ],
)
def test_malformed_yaml_gives_file_line_column_problem_and_hint(
    tmp_path: pathlib.Path, text: str, position: str | None, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    message = str(caught.value)
    if position is not None:
        assert f"{path}:{position}: could not parse YAML" in message
    else:
        assert f"{path}:" in message and "could not parse YAML" in message
    assert problem in message
    assert "hint:" in message


def test_malformed_yaml_shows_the_offending_line(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "model:\n  depth: 3\n  width: a: b\n")
    with pytest.raises(ConfigError) as caught:
        load_yaml(path)
    assert "    width: a: b\n" in str(caught.value)
    assert "\n" + " " * (4 + 10) + "^\n" in str(caught.value)  # caret under the 2nd colon


def test_undecodable_file_is_a_config_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "config.yml"
    path.write_bytes(b"a: \xff\xfe\xfa\n")
    with pytest.raises(ConfigError, match="config.yml"):
        load_yaml(path)


def test_loads_yaml_uses_the_source_name() -> None:
    with pytest.raises(ConfigError, match=r"^<string>:1:4: "):
        loads_yaml("a: !Div 3")
    with pytest.raises(ConfigError, match=r"^macro\.yml:1:4: "):
        loads_yaml("a: !Div 3", source="macro.yml")


# --------------------------------------------------------------------------- load_mapping


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ("- 1\n- 2\n", "got a list ([1, 2])"),
        ("just a string\n", "got a str ('just a string')"),
        ("42\n", "got a int (42)"),
        ("null\n", "got null"),
    ],
)
def test_load_mapping_refuses_non_mappings(tmp_path: pathlib.Path, text: str, got: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    assert f"expected a mapping at the top of {path}, {got}" in str(caught.value)
    load_yaml(path)  # load_yaml itself accepts any top level


def test_load_mapping_returns_the_mapping(tmp_path: pathlib.Path) -> None:
    assert load_mapping(write(tmp_path, "a: 1\nb: [2]\n")) == {"a": 1, "b": [2]}


# --------------------------------------------------------------------------- dumping


class ConfigDict(dict):  # type: ignore[type-arg]  # mirrors a user's untyped dict subclass
    """Stands for the dict subclass the core keeps its configuration in."""


@needs_torch
@needs_numpy
@pytest.mark.parametrize("dumper", DUMPERS, ids=["c", "pure"])
def test_dumper_writes_plain_yaml_for_subclasses_tuples_and_arrays(dumper: type) -> None:
    data = ConfigDict(
        zeta=1,
        alpha=ConfigDict(beta=(1, 2), gamma=OrderedDict(b=2, a=1)),
        mean=np.array([0.5, 0.25]),
        weights=torch.tensor([[1.0, 2.0]]),
    )
    text = yaml.dump(data, Dumper=dumper, default_flow_style=False, sort_keys=False)
    assert text == textwrap.dedent(
        """\
        zeta: 1
        alpha:
          beta:
          - 1
          - 2
          gamma:
            b: 2
            a: 1
        mean: !NumpyArray [0.5, 0.25]
        weights: !TorchTensor [[1.0, 2.0]]
        """
    )
    assert "python" not in text


def test_dumps_yaml_keeps_key_order_and_block_style() -> None:
    text = dumps_yaml({"z": {"y": [1, 2]}, "a": "é", "m": None})
    assert text == "z:\n  y:\n  - 1\n  - 2\na: é\nm: null\n"


def test_dumps_yaml_writes_shared_objects_without_anchors() -> None:
    shared = {"lr": 0.1}
    text = dumps_yaml({"a": shared, "b": shared})
    assert "&" not in text and "*" not in text
    assert loads_yaml(text) == {"a": {"lr": 0.1}, "b": {"lr": 0.1}}


@needs_numpy
def test_dumps_yaml_converts_numpy_scalars_and_paths() -> None:
    data = {
        "f32": np.float32(0.5),
        "f64": np.float64(0.25),
        "i64": np.int64(3),
        "flag": np.bool_(True),
        "path": pathlib.PurePosixPath("/data/x"),
    }
    assert loads_yaml(dumps_yaml(data)) == {
        "f32": 0.5,
        "f64": 0.25,
        "i64": 3,
        "flag": True,
        "path": "/data/x",
    }
    assert type(loads_yaml(dumps_yaml(data))["i64"]) is int


@needs_torch
@needs_numpy
def test_dumper_recognises_arrays_by_module_and_name_not_by_name_alone() -> None:
    # The dumper checks type(x).__module__ and __name__ (so it never imports numpy or torch);
    # a class that merely shares the name is not mistaken for an array.
    class ndarray:
        pass

    with pytest.raises(ConfigError):
        dumps_yaml({"x": ndarray()})


def test_dumps_yaml_names_the_path_of_an_unrepresentable_value() -> None:
    with pytest.raises(ConfigError) as caught:
        dumps_yaml({"model": {"layers": [1, object()]}})
    message = str(caught.value)
    assert "'model/layers/1'" in message
    assert "builtins.object" in message
    assert "expected plain data" in message


def test_dumps_yaml_refuses_cycles_cleanly() -> None:
    data: dict[str, Any] = {"a": 1}
    data["self"] = data
    with pytest.raises(ConfigError, match="reference cycle"):
        dumps_yaml(data)


ROUND_TRIPS: list[Any] = [
    {},
    {"a": 1, "b": 2.5, "c": "text", "d": None, "e": True, "f": [1, [2, [3]]]},
    {"lr": 1e-3, "tiny": 1e-30, "big": 1e20, "inf": float("inf"), "neg": -0.0},
    {"strings": ["1e-3", "true", "null", "~", "12", "0x1F", "yes", "", " padded ", "a: b", "#x"]},
    {"multi": "line one\nline two\n", "unicode": "λ → ∞", "date": datetime.date(2024, 1, 2)},
    {"tags": "!Add [1, 2]", "python": "!!python/object:os.system"},
    {
        1: "int key",
        2.5: "float key",
        None: "null key",
        False: "bool key",
    },  # True would collide with 1,
]
if np is not None:
    ROUND_TRIPS += [
        {"mean": np.array([0.485, 0.456, 0.406]), "grid": np.arange(6).reshape(2, 3)},
        {"zero_d": np.array(7), "zero_d_float": np.array(2.5), "empty": np.array([])},
        {"bools": np.array([True, False]), "strs": np.array(["a", "b"]), "s0": np.array("3")},
    ]
if torch is not None:
    ROUND_TRIPS += [
        {"t": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "ints": torch.tensor([1, 2, 3])},
        {"t0": torch.tensor(2.5), "tb": torch.tensor([True, False])},
    ]
if np is not None and torch is not None:
    ROUND_TRIPS.append(
        {"nested": {"deep": {"deeper": [{"x": np.array([1, 2])}, {"y": torch.tensor([3.0])}]}}}
    )


@pytest.mark.parametrize("loader", LOADERS, ids=["load-c", "load-pure"])
@pytest.mark.parametrize("dumper", DUMPERS, ids=["dump-c", "dump-pure"])
@pytest.mark.parametrize("data", ROUND_TRIPS)
def test_round_trip(loader: type, dumper: type, data: Any) -> None:
    text = yaml.dump(
        data, Dumper=dumper, default_flow_style=False, sort_keys=False, allow_unicode=True
    )
    assert equal(_yaml._load(text, "x.yml", loader), data), text


def test_round_trip_converts_tuples_and_dict_subclasses_to_plain_types() -> None:
    data = ConfigDict(a=(1, (2, 3)), b=ConfigDict(c=[(4,)]))
    loaded = loads_yaml(dumps_yaml(data))
    assert loaded == {"a": [1, [2, 3]], "b": {"c": [[4]]}}
    assert type(loaded) is dict and type(loaded["b"]) is dict


@needs_torch
@needs_numpy
def test_c_and_pure_dumpers_agree() -> None:
    data = {
        "name": "run",
        "model": ConfigDict(sizes=(1, 2), scale=1e-3, mean=np.array([[1, 2]]), t=torch.tensor(1.5)),
        "long": list(range(30)),
        "text": "a string with: a colon",
    }
    texts = {
        yaml.dump(data, Dumper=dumper, default_flow_style=False, sort_keys=False)
        for dumper in DUMPERS
    }
    assert len(texts) == 1, texts


# --------------------------------------------------------------------------- dump_yaml


@needs_numpy
def test_dump_yaml_writes_atomically_and_reads_back(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "train_config.yml"
    data = {"training": {"lr": 0.01, "mean": np.array([1.0, 2.0])}, "name": "run"}
    dump_yaml(data, path)
    assert equal(load_yaml(path), data)
    assert os.listdir(tmp_path) == ["train_config.yml"]  # no temp files left behind
    dump_yaml({"name": "second"}, str(path))
    assert load_yaml(path) == {"name": "second"}


def test_dump_yaml_keeps_the_old_file_when_the_data_cannot_be_written(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "train_config.yml"
    dump_yaml({"lr": 0.1}, path)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="'bad'"):
        dump_yaml({"lr": 0.2, "bad": object()}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["train_config.yml"]


def test_dump_yaml_into_a_missing_folder_names_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "Configurations" / "train_config.yml"
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        dump_yaml({"a": 1}, path)
    assert not (tmp_path / "Configurations").exists()


@needs_torch
def test_dumper_handles_tensor_subclasses_and_tensors_requiring_grad() -> None:
    data = {
        "param": torch.nn.Parameter(torch.tensor([1.0, 2.0])),
        "grad": torch.tensor([3.0], requires_grad=True),
        "half": torch.tensor([0.5], dtype=torch.float16),
    }
    text = dumps_yaml(data)
    assert text == (
        "param: !TorchTensor [1.0, 2.0]\ngrad: !TorchTensor [3.0]\nhalf: !TorchTensor [0.5]\n"
    )
    loaded = loads_yaml(text)
    assert torch.equal(loaded["param"], torch.tensor([1.0, 2.0]))
    assert torch.equal(loaded["grad"], torch.tensor([3.0]))
