"""speedrun.ext.require: the one way speedrun imports an optional library, and its error."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import pytest

from speedrun.ext import require

if TYPE_CHECKING:
    from pathlib import Path


class _MissingTool(ImportError):
    """A caller's own ImportError subclass (core's checkpoint loader has one)."""


def test_a_module_that_is_not_installed_names_the_feature_and_the_fix() -> None:
    with pytest.raises(ImportError) as caught:
        require("speedrun_require_nowhere", feature="The report", install="pip install report")
    assert str(caught.value) == (
        "The report needs speedrun_require_nowhere, which is not installed. Fix: pip install report"
    )
    assert caught.value.name == "speedrun_require_nowhere"
    assert isinstance(caught.value.__cause__, ImportError)  # the original error, chained


def test_a_module_that_fails_to_import_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "speedrun_require_probe"
    package.mkdir()
    (package / "__init__.py").write_text("import speedrun_require_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as caught:
        require("speedrun_require_probe", feature="Probe", install="pip install probe")
    message = str(caught.value)
    assert message.startswith("Probe needs speedrun_require_probe, which failed to import (")
    assert "speedrun_require_absent_dependency" in message
    assert message.endswith(". Fix: pip install probe")


def test_error_type_picks_the_class_of_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require("json", feature="Tool", install="x", error_type=_MissingTool) is json
    monkeypatch.setitem(sys.modules, "speedrun_require_blocked", None)  # as tests block torch
    with pytest.raises(
        _MissingTool,
        match=r"^Tool needs speedrun_require_blocked, which is not installed\. Fix: x$",
    ):
        require("speedrun_require_blocked", feature="Tool", install="x", error_type=_MissingTool)
