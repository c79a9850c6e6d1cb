"""save_figure in a long run: 500 pyplot figures, and memory stays flat."""

from __future__ import annotations

import gc

import pytest
from matplotlib.lines import Line2D

from speedrun import BaseExperiment
from speedrun.mixins.mpl import MatplotlibMixin


class Experiment(BaseExperiment, MatplotlibMixin):
    pass


def test_500_pyplot_figures_leave_no_figure_and_no_memory_behind(tmp_path):
    psutil = pytest.importorskip("psutil")
    plt = pytest.importorskip("matplotlib.pyplot")
    plt.switch_backend("agg")  # tests only: the library itself never switches backends
    plt.close("all")
    exp = Experiment(str(tmp_path / "exp"))
    process = psutil.Process()

    def draw_and_save(index: int) -> None:
        # 200 x 200 pixels: a figure pyplot kept alive would hold ~0.3 MB (canvas, renderer).
        figure = plt.figure(figsize=(2, 2), dpi=100)
        figure.add_artist(Line2D([0, 1], [0, (index % 10) / 10], transform=figure.transFigure))
        exp.save_figure("curves/loss", figure)
        exp.next_step()

    for index in range(30):  # warm-up: font cache, allocator pools
        draw_and_save(index)
    gc.collect()
    before = process.memory_info().rss
    for index in range(500):
        draw_and_save(index)
    gc.collect()
    grown = process.memory_info().rss - before

    assert plt.get_fignums() == []
    # Without closing, these 500 figures grow the process by ~150 MB (see
    # benchmarks/bench_mpl_memory.py); closed, the growth is noise.
    assert grown < 30 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MB"
    assert len(list((tmp_path / "exp" / "Plots" / "curves").iterdir())) == 530
