"""speedrun-io in a multi-process run: only the main process writes files."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("speedrun.mixins.io")
np = pytest.importorskip("numpy")
pytest.importorskip("PIL")

from speedrun import BaseExperiment
from speedrun.mixins.io import IOMixin


class Experiment(BaseExperiment, IOMixin):
    pass


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "rank, written",
    [
        ("0", ["Logs/YAMLDumps/metrics.yml", "Logs/stdout", "Plots/sample_step_0.png"]),
        ("1", []),
    ],
)
def test_only_the_main_process_writes(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rank: str,
    written: list[str],
) -> None:
    directory = tmp_path / "RUN"
    BaseExperiment(directory)  # rank 0 created the directory
    before = set(_files(directory))
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    experiment = Experiment(directory)
    experiment.print_to_file(True)
    experiment.print("hello")
    experiment.print_image("sample", np.zeros((4, 4), dtype=np.uint8))
    experiment.dump_yaml("metrics", {"loss": 0.5})
    assert capsys.readouterr().out == "hello\n"  # every rank still prints to its screen
    assert sorted(set(_files(directory)) - before) == written
    with pytest.raises(ValueError):  # bad input is still reported on every rank
        experiment.print_image("bad", np.zeros((5, 5, 5)))
    experiment.execute_hooks("clean_up")


def test_a_non_main_rank_never_rewinds_the_main_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "RUN"
    main = Experiment(directory)
    main.print_to_file(True)
    main.print("line 1")
    main.next_step().checkpoint()
    main.print("line 2")  # printed after the checkpoint
    main.execute_hooks("clean_up")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    other = Experiment(directory)
    with pytest.warns(UserWarning, match="without its own random state"):
        other.load_from_checkpoint()  # post_load: the main process's file stays as it is
    assert (directory / "Logs" / "stdout").read_text() == "line 1\nline 2\n"
