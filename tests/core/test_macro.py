"""Tests for speedrun.config._macro: merging macro files into a configuration."""

from __future__ import annotations

import copy
import pathlib
import textwrap
from typing import Any

import pytest

from speedrun._errors import ConfigError
from speedrun.config._macro import WAKE_KEY, merge_macro, read_macro_files
from speedrun.config._yaml import load_mapping


def write(folder: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def wake_keys(value: Any, path: str = "") -> list[str]:
    """Every place a __speedrun__ key survives, at any depth."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == WAKE_KEY:
                found.append(path or "/")
            found += wake_keys(item, f"{path}/{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found += wake_keys(item, f"{path}/{index}")
    return found


def merged(config: dict[str, Any], macro: dict[str, Any]) -> dict[str, Any]:
    """Merge and check the invariants every merge keeps."""
    original = copy.deepcopy(macro)
    result = merge_macro(config, macro)
    assert result is config
    assert macro == original, "the macro was modified"
    assert wake_keys(result) == []
    return result


# --------------------------------------------------------------------------- plain merging


def test_mappings_merge_key_by_key_and_other_values_replace() -> None:
    config = {
        "model": {"depth": 3, "width": 64, "act": {"name": "relu", "inplace": True}},
        "training": {"lr": 0.1, "epochs": 10},
        "tags": ["a", "b"],
        "seed": 0,
    }
    macro = {
        "model": {"width": 128, "act": {"name": "gelu"}, "dropout": 0.1},
        "tags": ["c"],
        "seed": 1,
        "new": {"x": 1},
    }
    assert merged(config, macro) == {
        "model": {
            "depth": 3,
            "width": 128,
            "act": {"name": "gelu", "inplace": True},
            "dropout": 0.1,
        },
        "training": {"lr": 0.1, "epochs": 10},
        "tags": ["c"],
        "seed": 1,
        "new": {"x": 1},
    }


def test_type_changes_replace() -> None:
    config = {"a": {"x": 1}, "b": 5, "c": [1, 2], "d": {"y": 2}}
    macro = {"a": 3, "b": {"z": 1}, "c": {"k": "v"}, "d": None}
    assert merged(config, macro) == {"a": 3, "b": {"z": 1}, "c": {"k": "v"}, "d": None}


def test_empty_macro_changes_nothing() -> None:
    config = {"a": {"b": 1}}
    assert merged(config, {}) == {"a": {"b": 1}}


def test_result_shares_nothing_with_the_macro() -> None:
    macro = {"a": {"b": [1, {"c": 2}]}, "d": [[1], [2]], "e": {"f": {"g": 1}}}
    config: dict[str, Any] = {"e": {"f": {"h": 2}}}
    merged(config, macro)
    config["a"]["b"][1]["c"] = 99
    config["d"][0].append(5)
    config["e"]["f"]["g"] = 7
    assert macro == {"a": {"b": [1, {"c": 2}]}, "d": [[1], [2]], "e": {"f": {"g": 1}}}


def test_the_macro_is_never_mutated_even_with_commands() -> None:
    macro = {
        "opt": {WAKE_KEY: "purge", "name": "SGD", "nested": {WAKE_KEY: "purge", "x": 1}},
        "callbacks": [{WAKE_KEY: "append"}, "EarlyStopping", {"k": [{WAKE_KEY: "append"}, 1]}],
    }
    merged({"opt": {"name": "Adam"}, "callbacks": ["A"]}, macro)  # `merged` checks the macro


def test_merge_macro_refuses_a_non_mapping_macro() -> None:
    with pytest.raises(ConfigError, match="expected a macro mapping.*got list"):
        merge_macro({}, [1, 2])  # type: ignore[arg-type]  # a list on purpose


# --------------------------------------------------------------------------- purge


@pytest.mark.parametrize("command", ["purge", "__purge__", " purge ", "purge;", "__purge__; purge"])
def test_purge_replaces_the_mapping_wholesale(command: str) -> None:
    config = {"optimizer": {"name": "Adam", "betas": [0.9, 0.99], "eps": 1e-8}, "keep": 1}
    macro = {"optimizer": {WAKE_KEY: command, "name": "SGD", "momentum": 0.9}}
    assert merged(config, macro) == {"optimizer": {"name": "SGD", "momentum": 0.9}, "keep": 1}


def test_purge_without_other_keys_empties_the_mapping() -> None:
    config = {"augment": {"flip": True, "crop": 32}}
    assert merged(config, {"augment": {WAKE_KEY: "purge"}}) == {"augment": {}}


def test_purge_deep_inside_a_merge() -> None:
    config = {"model": {"depth": 3, "head": {"kind": "linear", "bias": True}}}
    macro = {"model": {"head": {WAKE_KEY: "purge", "kind": "mlp", "hidden": [64]}}}
    assert merged(config, macro) == {"model": {"depth": 3, "head": {"kind": "mlp", "hidden": [64]}}}


def test_purge_of_a_missing_key_just_inserts() -> None:
    assert merged({}, {"a": {WAKE_KEY: "purge", "b": 1}}) == {"a": {"b": 1}}


def test_purge_at_the_top_level_replaces_everything_in_place() -> None:
    config = {"a": 1, "b": {"c": 2}}
    result = merged(config, {WAKE_KEY: "purge", "b": {"d": 3}})
    assert result == {"b": {"d": 3}}


def test_a_mapping_without_purge_merges_and_loses_its_wake_key() -> None:
    config = {"a": {"x": 1}}
    assert merged(config, {"a": {WAKE_KEY: "", "y": 2}}) == {"a": {"x": 1, "y": 2}}


def test_inner_purge_inside_a_purged_mapping_is_removed() -> None:
    config = {"a": {"old": 1}}
    macro = {"a": {WAKE_KEY: "purge", "b": {WAKE_KEY: "purge", "c": 1}}}
    assert merged(config, macro) == {"a": {"b": {"c": 1}}}


# --------------------------------------------------------------------------- append


@pytest.mark.parametrize("command", ["append", "__append__", " append ;"])
def test_append_extends_the_configs_list(command: str) -> None:
    config = {"callbacks": ["Checkpoint", "Logger"]}
    macro = {"callbacks": [{WAKE_KEY: command}, "EarlyStopping", {"name": "LR", "gamma": 0.1}]}
    assert merged(config, macro) == {
        "callbacks": ["Checkpoint", "Logger", "EarlyStopping", {"name": "LR", "gamma": 0.1}]
    }


def test_the_append_marker_may_stand_anywhere_in_the_list() -> None:
    config = {"x": [1]}
    assert merged(config, {"x": [2, 3, {WAKE_KEY: "append"}]}) == {"x": [1, 2, 3]}


def test_append_without_a_list_in_the_config_replaces() -> None:
    assert merged({}, {"x": [{WAKE_KEY: "append"}, 1]}) == {"x": [1]}
    assert merged({"x": 5}, {"x": [{WAKE_KEY: "append"}, 1]}) == {"x": [1]}
    assert merged({"x": {"a": 1}}, {"x": [{WAKE_KEY: "append"}, 1]}) == {"x": [1]}


def test_a_list_without_the_marker_replaces() -> None:
    assert merged({"x": [1, 2]}, {"x": [3]}) == {"x": [3]}
    assert merged({"x": [1, 2]}, {"x": []}) == {"x": []}


def test_append_inside_nested_mappings() -> None:
    config = {"data": {"transforms": ["ToTensor"], "size": 32}}
    macro = {"data": {"transforms": [{WAKE_KEY: "append"}, "Normalize"]}}
    assert merged(config, macro) == {"data": {"transforms": ["ToTensor", "Normalize"], "size": 32}}


def test_append_gives_the_config_a_new_list_object() -> None:
    # The core's config observes assignments (it clears a lookup memo), so append assigns.
    class Watching(dict):  # type: ignore[type-arg]  # mirrors a user's untyped dict subclass
        assigned: list[Any] = []

        def __setitem__(self, key: Any, value: Any) -> None:
            self.assigned.append(key)
            super().__setitem__(key, value)

    config = Watching(x=[1])
    merge_macro(config, {"x": [{WAKE_KEY: "append"}, 2]})
    assert config == {"x": [1, 2]} and Watching.assigned == ["x"]


def test_markers_in_lists_are_removed_at_any_depth() -> None:
    config = {"a": [1]}
    macro = {
        "a": [{WAKE_KEY: "append"}, [{WAKE_KEY: "append"}, 2], {"b": [{WAKE_KEY: "append"}, 3]}],
        "c": {"d": [[{WAKE_KEY: "append"}]]},
    }
    assert merged(config, macro) == {"a": [1, [2], {"b": [3]}], "c": {"d": [[]]}}


def test_wake_keys_are_removed_from_mappings_inside_lists() -> None:
    macro = {"layers": [{WAKE_KEY: "purge", "kind": "conv"}, {"kind": "pool"}]}
    assert merged({}, macro) == {"layers": [{"kind": "conv"}, {"kind": "pool"}]}


# --------------------------------------------------------------------------- command errors


@pytest.mark.parametrize(
    ("macro", "path", "accepted"),
    [
        ({"model": {"head": {WAKE_KEY: "purgee"}}}, "'model/head'", "'purge', '__purge__'"),
        ({"opt": {WAKE_KEY: "purge; apend"}}, "'opt'", "'purge', '__purge__'"),
        ({"a": {WAKE_KEY: "append"}}, "'a'", "'purge', '__purge__'"),
        ({"cb": ["x", {WAKE_KEY: "apend"}]}, "'cb/1'", "'append', '__append__'"),
        ({"cb": [{WAKE_KEY: "purge"}]}, "'cb/0'", "'append', '__append__'"),
        ({WAKE_KEY: "nope"}, "'(top level)'", "'purge', '__purge__'"),
        ({"a": [{"b": {WAKE_KEY: "pruge"}}]}, "'a/0/b'", "'purge', '__purge__'"),
        ({"new": {"deep": {WAKE_KEY: "x"}}}, "'new/deep'", "'purge'"),
        ({"model": {"head": {"b": 2}}, "opt": {WAKE_KEY: "prge"}}, "'opt'", "'purge'"),
    ],
)
def test_unknown_commands_name_the_key_path_and_the_accepted_commands(
    macro: dict[str, Any], path: str, accepted: str
) -> None:
    config = {"model": {"head": {"a": 1}}, "opt": {}, "a": {}, "cb": []}
    before = copy.deepcopy(config)
    with pytest.raises(ConfigError) as caught:
        merge_macro(config, macro)
    message = str(caught.value)
    assert f"macro key {path}" in message
    assert "unknown __speedrun__ command" in message
    assert accepted in message
    assert config == before  # validated before anything is merged


def test_a_non_string_command_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"macro key 'a'.*expects a string.*got list"):
        merge_macro({}, {"a": {WAKE_KEY: ["purge"]}})


def test_the_append_marker_must_be_its_own_element() -> None:
    with pytest.raises(ConfigError, match=r"macro key 'x/0'.*element of its own"):
        merge_macro({"x": [1]}, {"x": [{WAKE_KEY: "append", "y": 2}]})


# --------------------------------------------------------------------------- files


def test_read_macro_files_in_order_and_apply(tmp_path: pathlib.Path) -> None:
    config_path = write(
        tmp_path,
        "Configurations/train_config.yml",
        """
        model: {depth: 3, width: 64}
        optimizer: {name: Adam, lr: 0.001, betas: [0.9, 0.999]}
        callbacks: [Checkpoint]
        """,
    )
    first = write(
        tmp_path,
        "macros/small.yml",
        """
        model: {width: 32}
        optimizer:
          __speedrun__: purge
          name: SGD
          lr: !Div [0.1, 10]
        """,
    )
    second = write(
        tmp_path,
        "macros/debug.yml",
        """
        model: {width: 16}
        callbacks:
          - __speedrun__: append
          - Profiler
        """,
    )
    macros = read_macro_files(f"{first}:{second}")
    assert [path for path, _ in macros] == [str(first), str(second)]
    config = load_mapping(config_path)
    for _, macro in macros:
        merge_macro(config, macro)
    assert config == {
        "model": {"depth": 3, "width": 16},
        "optimizer": {"name": "SGD", "lr": pytest.approx(0.01)},
        "callbacks": ["Checkpoint", "Profiler"],
    }


def test_read_macro_files_relative_paths_and_empty_segments(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "a.yml", "x: 1\n")
    write(tmp_path, "b.yml", "")
    monkeypatch.chdir(tmp_path)
    assert read_macro_files("a.yml::b.yml:") == [("a.yml", {"x": 1}), ("b.yml", {})]


def test_read_macro_files_expands_the_home_folder_in_every_path(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path, "a.yml", "x: 1\n")
    write(tmp_path, "b.yml", "y: 2\n")
    macros = read_macro_files("~/a.yml:~/b.yml")
    assert macros == [(str(tmp_path / "a.yml"), {"x": 1}), (str(tmp_path / "b.yml"), {"y": 2})]


def test_read_macro_files_names_the_missing_file(tmp_path: pathlib.Path) -> None:
    present = write(tmp_path, "a.yml", "x: 1\n")
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError) as caught:
        read_macro_files(f"{present}:{missing}")
    message = str(caught.value)
    assert f"macro file {str(missing)!r}" in message
    assert "does not exist" in message and "check the path" in message


def test_read_macro_files_refuses_a_folder(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="found a folder"):
        read_macro_files(str(tmp_path))


@pytest.mark.parametrize("spec", ["", ":", " : "])
def test_read_macro_files_needs_at_least_one_path(spec: str) -> None:
    with pytest.raises(ConfigError, match="expected at least one macro file"):
        read_macro_files(spec)


def test_read_macro_files_refuses_a_non_mapping_macro(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "list.yml", "- a\n- b\n")
    with pytest.raises(ConfigError, match=f"expected a mapping at the top of {path}, got a list"):
        read_macro_files(str(path))


def test_read_macro_files_reports_malformed_yaml_with_its_location(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, "bad.yml", "a: 1\nb: c: d\n")
    with pytest.raises(ConfigError, match=f"{path}:2:5: could not parse YAML"):
        read_macro_files(str(path))


def test_read_macro_files_refuses_python_tags(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    path = write(tmp_path, "evil.yml", f'a: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="plain YAML"):
        read_macro_files(str(path))
    assert not marker.exists()


def test_read_macro_files_refuses_a_non_string_spec() -> None:
    with pytest.raises(ConfigError, match="colon-separated string"):
        read_macro_files(["a.yml"])  # type: ignore[arg-type]  # a list on purpose
