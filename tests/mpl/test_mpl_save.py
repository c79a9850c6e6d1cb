"""MatplotlibMixin.save_figure: files under Plots/, formats, closing, TensorBoard hand-off."""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from speedrun import BaseExperiment, ExperimentDirectoryError
from speedrun.mixins.mpl import MatplotlibMixin

COLOUR = (0x33, 0x66, 0xCC)


class Experiment(BaseExperiment, MatplotlibMixin):
    pass


@pytest.fixture
def exp(tmp_path):
    return Experiment(str(tmp_path / "exp"))


@pytest.fixture
def plt():
    pyplot = pytest.importorskip("matplotlib.pyplot")
    pyplot.switch_backend("agg")  # tests only: the library itself never switches backends
    yield pyplot
    pyplot.close("all")


def filled(colour=COLOUR, figsize=(2.0, 1.0), dpi=40):
    return Figure(figsize=figsize, dpi=dpi, facecolor=np.array(colour) / 255.0)


def test_png_lands_under_plots_with_tag_folders_and_step(exp):
    exp.next_step().next_step().next_step()
    paths = exp.save_figure("curves/loss", filled())
    expected = os.path.join(exp.plot_directory, "curves", "loss_step_3.png")
    assert paths == [expected]
    with Image.open(expected) as image:
        assert image.size == (80, 40)
        pixels = np.asarray(image.convert("RGB"))
    assert (pixels == np.array(COLOUR, np.uint8)).all()
    assert os.listdir(os.path.dirname(expected)) == ["loss_step_3.png"]  # no temp files


def test_saved_png_matches_figure2array(exp):
    figure = Figure(figsize=(1.5, 1.0), dpi=30)
    axes = figure.add_subplot()
    axes.plot([0, 1, 2], [2, 0, 1], color="tab:orange")
    (path,) = exp.save_figure("line", figure)
    with Image.open(path) as image:
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), exp.figure2array(figure))


def test_pdf_and_svg_by_option(exp):
    paths = exp.save_figure("report/fig", filled(), formats=("png", ".PDF", "svg", "pdf"))
    base = os.path.join(exp.plot_directory, "report", "fig_step_0")
    assert paths == [base + ".png", base + ".pdf", base + ".svg"]
    with open(base + ".pdf", "rb") as handle:
        assert handle.read(5) == b"%PDF-"
    assert ElementTree.parse(base + ".svg").getroot().tag.endswith("svg")


def test_savefig_options_are_passed_on(exp):
    (path,) = exp.save_figure("small", filled(), dpi=10)
    with Image.open(path) as image:
        assert image.size == (20, 10)


def test_bad_formats_are_refused_before_writing(exp):
    with pytest.raises(ValueError, match=r"cannot write format 'docx'.*png"):
        exp.save_figure("x", filled(), formats=["png", "docx"])
    with pytest.raises(TypeError, match="formats as strings"):
        exp.save_figure("x", filled(), formats=[3])
    with pytest.raises(ValueError, match="at least one format"):
        exp.save_figure("x", filled(), formats=[])
    assert os.listdir(exp.plot_directory) == []


def test_closes_pyplot_figures_by_default(exp, plt):
    figure, axes = plt.subplots(figsize=(1, 1), dpi=20)
    kept, _ = plt.subplots(figsize=(1, 1), dpi=20)
    axes.plot([1, 2, 3])
    exp.save_figure("closed", figure)
    exp.save_figure("kept", kept, close=False)
    assert plt.get_fignums() == [kept.number]


def test_without_a_figure_saves_the_current_pyplot_figure(exp, plt):
    plt.figure(figsize=(1, 1), dpi=20, facecolor="red")
    (path,) = exp.save_figure("current")
    with Image.open(path) as image:
        assert np.asarray(image.convert("RGB"))[0, 0].tolist() == [255, 0, 0]
    assert plt.get_fignums() == []
    with pytest.raises(ValueError, match=r"there is none.*save_figure\(tag, fig\)"):
        exp.save_figure("nothing")


def test_new_figure_is_untracked_and_saveable(exp, plt):
    figure = exp.new_figure(figsize=(1, 1), dpi=20)
    figure.subplots().plot([0, 1])
    assert plt.get_fignums() == []
    (path,) = exp.save_figure("fresh", figure)
    assert os.path.isfile(path)
    assert exp.figure2array(figure).shape == (20, 20, 3)


def test_bad_input_is_refused(exp, tmp_path):
    with pytest.raises(TypeError, match="expects a matplotlib.figure.Figure"):
        exp.save_figure("x", np.zeros((4, 4)))
    for tag in ("", "../out", "/abs"):
        with pytest.raises(ValueError, match="figure tag"):
            exp.save_figure(tag, filled())
    with pytest.raises(ExperimentDirectoryError, match="experiment_directory"):
        Experiment().save_figure("x", filled())
    assert os.listdir(exp.plot_directory) == []


# -- TensorBoard ------------------------------------------------------------------------------


class RecordingLogger:
    """A class with a method named ``log_figure`` that is not TensorboardMixin."""

    def log_figure(self, tag, figure, step=None):
        self.__dict__.setdefault("logged", []).append((tag, figure, step))
        return self


class WithLogFigure(MatplotlibMixin, RecordingLogger, BaseExperiment):
    pass


def test_only_tensorboard_mixin_is_taken_for_tensorboard(tmp_path):
    # Mixins find each other one way (speedrun.ext.has_mixin: isinstance against the public
    # class), not by probing method names: an unrelated log_figure is left alone.
    exp = WithLogFigure(str(tmp_path / "exp"))
    exp.save_figure("curves/acc", filled())
    assert "logged" not in exp.__dict__
    with pytest.raises(ValueError, match="pip install speedrun-tensorboard"):
        exp.save_figure("curves/acc", filled(), tensorboard=True)


def test_tensorboard_true_without_log_figure_says_what_to_install(exp):
    with pytest.raises(ValueError, match="pip install speedrun-tensorboard"):
        exp.save_figure("x", filled(), tensorboard=True)
    assert os.listdir(exp.plot_directory) == []


def test_figures_reach_tensorboard_through_tensorboard_mixin(tmp_path, plt):
    tensorboard = pytest.importorskip("speedrun.mixins.tensorboard")
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )

    class Both(MatplotlibMixin, tensorboard.TensorboardMixin, BaseExperiment):
        pass

    exp = Both(str(tmp_path / "exp"))
    exp.next_step().next_step()
    figure, _ = plt.subplots(figsize=(1, 1), dpi=20, facecolor="red")
    with exp.set_tagscope("val"):  # one scope for the file and the TensorBoard tag
        exp.save_figure("curves/loss", figure)
    assert plt.get_fignums() == []
    exp.execute_hooks("clean_up")  # flushes the event file
    accumulator = event_accumulator.EventAccumulator(
        exp.log_directory, size_guidance={event_accumulator.IMAGES: 0}
    )
    accumulator.Reload()
    (tag,) = [tag for tag in accumulator.Tags()["images"] if tag.endswith("curves/loss")]
    assert tag == "val/curves/loss"
    (event,) = accumulator.Images(tag)
    assert event.step == 2 and (event.width, event.height) == (20, 20)
    with Image.open(io.BytesIO(event.encoded_image_string)) as image:
        assert image.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    assert os.path.isfile(os.path.join(exp.plot_directory, "val", "curves", "loss_step_2.png"))


def test_only_the_main_process_writes(tmp_path, monkeypatch):
    import os

    from speedrun import BaseExperiment
    from speedrun.mixins.mpl import MatplotlibMixin

    class Experiment(BaseExperiment, MatplotlibMixin):
        pass

    experiment = Experiment(tmp_path / "RUN")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    figure = experiment.new_figure()
    figure.subplots().plot([1, 2])
    (path,) = experiment.save_figure("curves/loss", figure)
    assert not os.path.exists(path)
    monkeypatch.setenv("RANK", "0")
    figure = experiment.new_figure()
    figure.subplots().plot([1, 2])
    assert os.path.isfile(experiment.save_figure("curves/loss", figure)[0])
