"""speedrun.ext, the extension API that mixin distributions build on."""

from __future__ import annotations

import subprocess
import sys

import pytest

import speedrun
import speedrun.ext as ext
from speedrun import register_hook


def test_every_public_name_is_documented() -> None:
    undocumented = [
        name
        for name in ext.__all__
        if callable(getattr(ext, name)) and not getattr(ext, name).__doc__
    ]
    assert undocumented == []
    assert sorted(ext.__all__) == sorted(set(ext.__all__))


def test_the_errors_are_speedruns_own() -> None:
    for name in (
        "ArgumentError",
        "CheckpointError",
        "ConfigError",
        "DispatchError",
        "ExperimentDirectoryError",
        "LockError",
        "SpeedrunError",
    ):
        assert getattr(ext, name) is getattr(speedrun, name)


def test_require_returns_the_module() -> None:
    assert ext.require("json", feature="x", install="pip install x").__name__ == "json"


def test_require_names_the_feature_and_the_fix() -> None:
    with pytest.raises(
        ImportError,
        match=r"^TensorboardMixin needs no_such_module_xyz, which is "
        r"not installed\. Fix: pip install speedrun-tensorboard$",
    ):
        ext.require(
            "no_such_module_xyz",
            feature="TensorboardMixin",
            install="pip install speedrun-tensorboard",
        )


def test_an_unknown_hook_key_fails_when_the_class_is_created() -> None:
    with pytest.raises(
        ValueError,
        match=r"Unknown hook key 'cleanup': expected one of "
        r"clean_up, post_load, pre_checkpoint, pre_dispatch",
    ):

        class Experiment(speedrun.BaseExperiment):
            def close(self) -> None:
                pass

            register_hook(close, "cleanup")


def test_hook_keys_are_the_ones_speedrun_calls() -> None:
    assert ext.HOOK_KEYS == {ext.PRE_DISPATCH, ext.CLEAN_UP, ext.POST_LOAD, ext.PRE_CHECKPOINT}


def test_python_dash_m_speedrun_is_the_speedrun_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "speedrun", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert speedrun.__version__ in result.stdout


def test_importing_ext_imports_no_heavy_library() -> None:
    code = (
        "import sys, speedrun.ext; "
        "print(sorted(m for m in ('torch', 'numpy', 'tensorboardX', 'matplotlib') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_pre_checkpoint_hooks_run_before_each_save(tmp_path) -> None:
    from speedrun.ext import PRE_CHECKPOINT, list_checkpoints

    class Experiment(speedrun.BaseExperiment):
        def __init__(self) -> None:
            super().__init__(tmp_path / "RUN")
            self.seen: list[tuple[int, int]] = []

        def flush(self) -> None:  # what is on disk when the hook runs
            self.seen.append((self.step, len(list_checkpoints(self.checkpoint_directory))))

        register_hook(flush, PRE_CHECKPOINT)

    experiment = Experiment()
    experiment.set("training/checkpoint_every", 2)
    for _ in range(4):
        experiment.next_step().checkpoint(force=False)
    assert experiment.seen == [(2, 0), (4, 1)]
