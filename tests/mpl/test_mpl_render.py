"""MatplotlibMixin.figure2array: pixel content, layouts, scalings, any canvas, no backend switch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from speedrun.mixins.mpl import MatplotlibMixin

COLOUR = (0x33, 0x66, 0xCC)


@pytest.fixture
def mixin():
    return MatplotlibMixin()  # figure2array needs no experiment directory


def filled(colour=COLOUR, figsize=(2.0, 1.0), dpi=40):
    return Figure(figsize=figsize, dpi=dpi, facecolor=np.array(colour) / 255.0)


def two_colour_figure():
    """Top half red, bottom half blue, 20 x 30 pixels."""
    figure = Figure(figsize=(1.5, 1.0), dpi=20, facecolor="blue")
    figure.add_artist(Rectangle((0, 0.5), 1, 0.5, transform=figure.transFigure, color="red", lw=0))
    return figure


def test_known_colour_channel_last_uint8(mixin):
    array = mixin.figure2array(filled())
    assert array.shape == (40, 80, 3) and array.dtype == np.uint8
    assert (array == np.array(COLOUR, np.uint8)).all()


@pytest.mark.parametrize("scaling", [None, "0-255"])
def test_known_colour_channel_first_uint8(mixin, scaling):
    array = mixin.figure2array(filled(), channel_first=True, scaling=scaling)
    assert array.shape == (3, 40, 80) and array.dtype == np.uint8
    for channel, value in enumerate(COLOUR):
        assert (array[channel] == value).all()


@pytest.mark.parametrize("channel_first", [False, True])
def test_known_colour_scaled_to_unit_range(mixin, channel_first):
    array = mixin.figure2array(filled(), channel_first=channel_first, scaling="0-1")
    assert array.dtype == np.float32
    expected = np.array(COLOUR, np.float32) / 255.0
    pixels = np.moveaxis(array, 0, -1) if channel_first else array
    np.testing.assert_allclose(pixels, np.broadcast_to(expected, pixels.shape), atol=1e-7)
    assert array.min() >= 0.0 and array.max() <= 1.0


def test_orientation_and_layouts_agree(mixin):
    figure = two_colour_figure()
    hwc = mixin.figure2array(figure)
    assert hwc.shape == (20, 30, 3)
    assert (hwc[:10] == [255, 0, 0]).all()  # the top row is the top of the figure
    assert (hwc[10:] == [0, 0, 255]).all()
    chw = mixin.figure2array(figure, channel_first=True)
    np.testing.assert_array_equal(chw, np.moveaxis(hwc, -1, 0))
    assert chw.flags["C_CONTIGUOUS"] and hwc.flags["C_CONTIGUOUS"]


def test_result_is_a_copy_that_later_draws_do_not_change(mixin):
    figure = filled()
    first = mixin.figure2array(figure)
    figure.set_facecolor("white")
    second = mixin.figure2array(figure)
    assert (first == np.array(COLOUR, np.uint8)).all()
    assert (second == 255).all()
    first[0, 0] = 0  # a writable array of its own
    np.testing.assert_array_equal(mixin.figure2array(figure)[0, 0], [255, 255, 255])


def test_pyplot_figures_on_their_own_agg_canvas(mixin):
    plt = pytest.importorskip("matplotlib.pyplot")
    plt.switch_backend("agg")  # tests only: the library itself never switches backends
    figure, axes = plt.subplots(figsize=(1, 1), dpi=30, facecolor="red")
    canvas = figure.canvas
    try:
        array = mixin.figure2array(figure)
        assert array.shape == (30, 30, 3)
        assert (array[0, 0] == [255, 0, 0]).all()
        assert figure.canvas is canvas
    finally:
        plt.close(figure)


def test_a_figure_on_another_canvas_gets_its_canvas_back(mixin):
    figure = filled()
    svg_canvas = FigureCanvasSVG(figure)
    array = mixin.figure2array(figure)
    assert (array == np.array(COLOUR, np.uint8)).all()
    assert figure.canvas is svg_canvas


def test_rendering_is_repeatable(mixin):
    figure = two_colour_figure()
    np.testing.assert_array_equal(mixin.figure2array(figure), mixin.figure2array(figure))


@pytest.mark.parametrize("scaling", ["0-1.0", "255", 1, "unit"])
def test_bad_scaling_names_the_accepted_values(mixin, scaling):
    with pytest.raises(ValueError, match=r"None, '0-255' or '0-1'"):
        mixin.figure2array(filled(), scaling=scaling)


def test_non_figures_are_refused_with_a_hint(mixin):
    figure = filled()
    axes = figure.add_subplot()
    with pytest.raises(TypeError, match=r"expects a matplotlib.figure.Figure.*ax\.figure"):
        mixin.figure2array(axes)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        mixin.figure2array(np.zeros((2, 2)))


def test_no_matplotlib_at_import_and_no_backend_switch():
    code = (
        "import json, sys\n"
        "from speedrun.mixins.mpl import MatplotlibMixin\n"
        "loaded = 'matplotlib' in sys.modules\n"
        "from matplotlib.figure import Figure\n"
        "array = MatplotlibMixin().figure2array(Figure(figsize=(1, 1), dpi=10, facecolor='red'))\n"
        "import matplotlib\n"
        "print(json.dumps([loaded, matplotlib.get_backend(auto_select=False),\n"
        "                  'matplotlib.pyplot' in sys.modules, array[0, 0].tolist()]))\n"
    )
    env = dict(os.environ, MPLBACKEND="svg")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [False, "svg", False, [255, 0, 0]]
