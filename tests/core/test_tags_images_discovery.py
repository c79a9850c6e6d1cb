"""speedrun.ext's shared pieces for mixins: one tag scope, one image engine and Plots/ rule,
one way for mixins to find each other."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

try:
    import numpy as np
except ImportError:  # speedrun-core alone: the image tests skip
    np = None

from speedrun import BaseExperiment, ExperimentDirectoryError
from speedrun.ext import ImageError, TagScopeMixin, has_mixin, plot_file, to_image_array

needs_numpy = pytest.mark.skipif(np is None, reason="needs numpy")


class Scoped(TagScopeMixin, BaseExperiment):
    pass


# -- tag scope ---------------------------------------------------------------------------------
def test_scopes_nest_join_with_slashes_and_are_restored_on_errors(tmp_path):
    experiment = Scoped(str(tmp_path / "exp"))
    assert experiment.tagscope == "" and experiment.get_full_tag("loss") == "loss"
    with experiment.set_tagscope("train"):
        with experiment.set_tagscope("/model/"):
            assert experiment.get_full_tag("loss") == "train/model/loss"
        with pytest.raises(RuntimeError), experiment.set_tagscope("inner"):
            raise RuntimeError
        assert experiment.tagscope == "train"
    assert experiment.tagscope == ""
    with experiment.set_tagscope(name="val"):  # the original's keyword
        assert experiment.get_full_tag("x") == "val/x"
    with (
        pytest.raises(TypeError, match=r"set_tagscope expects a string.*int 3"),
        experiment.set_tagscope(3),
    ):
        pass


def test_two_mixins_inheriting_the_scope_share_one_state(tmp_path):
    class A(TagScopeMixin):
        pass

    class B(TagScopeMixin):
        pass

    class Both(A, B, BaseExperiment):
        pass

    experiment = Both(str(tmp_path / "exp"))
    with A.set_tagscope(experiment, "val"):
        assert B.get_full_tag(experiment, "x") == "val/x"
    assert B.get_full_tag(experiment, "x") == "x"


def test_the_scope_is_not_checkpointed(tmp_path):
    experiment = Scoped(str(tmp_path / "exp"))
    with experiment.set_tagscope("train"):
        experiment.checkpoint()
    restored = Scoped(str(tmp_path / "exp"))
    restored.load_from_checkpoint()
    assert restored.tagscope == "" and "_speedrun_tagscope" not in vars(restored)


# -- mixins finding each other -----------------------------------------------------------------
def test_has_mixin_is_isinstance_without_imports(tmp_path):
    assert has_mixin(Scoped(), "speedrun.ext:TagScopeMixin")
    assert not has_mixin(BaseExperiment(), "speedrun.ext:TagScopeMixin")
    assert not has_mixin(Scoped(), "speedrun.mixins.not_installed_xyz:Mixin")
    assert "speedrun.mixins.not_installed_xyz" not in sys.modules
    with pytest.raises(ValueError, match="'package.module:ClassName'"):
        has_mixin(Scoped(), "TensorboardMixin")


# -- Plots/ rule -------------------------------------------------------------------------------
def test_plot_file_is_the_one_plots_rule(tmp_path):
    path = plot_file(str(tmp_path / "Plots"), "val/pred", 3, "png")
    assert path == str(tmp_path / "Plots" / "val" / "pred_step_3.png")
    assert os.path.isdir(tmp_path / "Plots" / "val")
    assert plot_file(str(tmp_path), "curve", 0, ".pdf").endswith("curve_step_0.pdf")
    with pytest.raises(ValueError, match="save_figure tag"):
        plot_file(str(tmp_path), "../out", 0, "png", what="save_figure")
    with pytest.raises(ExperimentDirectoryError, match="print_image writes into"):
        plot_file(None, "x", 0, "png", what="print_image")


# -- images ------------------------------------------------------------------------------------


@needs_numpy
@pytest.mark.parametrize(
    "shape, dataformats, expected",
    [
        ((5, 7), None, (5, 7, 1)),
        ((3, 5, 7), None, (5, 7, 3)),  # only the first axis can be channels
        ((5, 7, 4), None, (5, 7, 4)),  # only the last
        ((3, 8, 4), None, (8, 4, 3)),  # both: the shorter axis holds the channels
        ((4, 6, 3), None, (4, 6, 3)),
        ((4, 6, 1), None, (4, 6, 1)),
        ((3, 5, 3), None, (5, 3, 3)),  # a tie reads CHW
        ((3, 8, 4), "HWC", (3, 8, 4)),
        ((3, 8, 4), "chw", (8, 4, 3)),
        ((5, 7), "HW", (5, 7, 1)),
    ],
)
def test_layouts(shape, dataformats, expected):
    image = to_image_array(np.zeros(shape, dtype=np.uint8), dataformats)
    assert image.shape == expected and image.dtype == np.uint8 and image.flags.c_contiguous


@needs_numpy
def test_values_of_every_dtype():
    floats = np.array([[-1.0, 0.0, 0.5, 1.0, 2.0, np.nan, np.inf, -np.inf]])
    assert to_image_array(floats)[0, :, 0].tolist() == [0, 0, 128, 255, 255, 0, 255, 0]
    assert to_image_array(floats.astype(np.float16))[0, 2, 0] == 128
    assert to_image_array(np.array([[True, False]]))[0, :, 0].tolist() == [255, 0]
    assert to_image_array(np.array([[0, 200]], dtype=np.int32))[0, :, 0].tolist() == [0, 200]


@needs_numpy
def test_torch_tensors_are_detached_and_half_precision_widened():
    torch = pytest.importorskip("torch")
    tensor = torch.full((3, 2, 2), 0.5, dtype=torch.bfloat16, requires_grad=True) * 1
    image = to_image_array(tensor)
    assert image.shape == (2, 2, 3) and (image == 128).all()


@needs_numpy
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: [[0, 1]], r"got builtins\.list\. Fix: convert it first"),
        (lambda: np.zeros((2, 3, 4, 5)), r"got 4 dimensions.*value\[0\]"),
        (lambda: np.zeros(4), r"got 1 dimensions"),
        (lambda: np.zeros((5, 6, 2)), r"neither the first nor the last axis"),
        (lambda: np.zeros((0, 4)), r"non-empty"),
        (lambda: np.full((2, 2), -1), r"integer pixels in 0\.\.255, got values in \[-1, -1\]"),
        (lambda: np.zeros((2, 2), dtype=complex), r"dtype complex128"),
        (lambda: np.zeros((2, 2)), r"dataformats 'HW', 'CHW', 'HWC' or None"),
    ],
)
def test_one_error_type_says_what_is_accepted(make, message):
    dataformats = "NCHW" if "dataformats" in message else None
    with pytest.raises(ImageError, match=message) as info:
        to_image_array(make(), dataformats, what="log_image('x')")
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert str(info.value).startswith("log_image('x')")


@needs_numpy
def test_dataformats_must_fit_the_shape():
    with pytest.raises(
        ImageError, match=r"dataformats='CHW' needs a 3-D image, got shape \(4, 4\)"
    ):
        to_image_array(np.zeros((4, 4)), "CHW")


@needs_numpy
def test_png_round_trip(tmp_path):
    from PIL import Image

    from speedrun.ext import write_png

    rgba = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_png(tmp_path / "a.png", to_image_array(rgba, "HWC"))
    write_png(tmp_path / "g.png", to_image_array(rgba[..., 0]))
    with Image.open(tmp_path / "a.png") as image:
        assert image.mode == "RGBA" and np.array_equal(np.asarray(image), rgba)
    with Image.open(tmp_path / "g.png") as image:
        assert image.mode == "L" and np.array_equal(np.asarray(image), rgba[..., 0])


def test_importing_speedrun_ext_imports_neither_numpy_nor_pillow():
    code = (
        "import sys, speedrun, speedrun.ext; "
        "print([m for m in ('numpy', 'PIL', 'torch') if m in sys.modules])"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
