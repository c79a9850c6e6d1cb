"""IOMixin.to_array and print_image: every accepted layout round-trips through a real PNG."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from speedrun import BaseExperiment, ExperimentDirectoryError
from speedrun.ext import ImageError
from speedrun.mixins.io import IOMixin


class Experiment(IOMixin, BaseExperiment):
    pass


@pytest.fixture
def exp(tmp_path):
    return Experiment(str(tmp_path / "exp"))


def read_png(path):
    with Image.open(path) as image:
        return image.mode, np.asarray(image).copy()


def rng_image(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# -- to_array ---------------------------------------------------------------------------------


def test_to_array_returns_numpy_arrays_unchanged():
    array = np.arange(6).reshape(2, 3)
    assert IOMixin.to_array(array) is array


def test_to_array_converts_torch_tensors_including_grad_and_bfloat16():
    torch = pytest.importorskip("torch")
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3).requires_grad_()
    out = IOMixin.to_array(tensor * 2)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, np.arange(6).reshape(2, 3) * 2)
    half = IOMixin.to_array(torch.tensor([0.5, 1.0], dtype=torch.bfloat16))
    assert half.dtype == np.float32
    np.testing.assert_array_equal(half, [0.5, 1.0])


def test_to_array_refuses_other_types_with_the_fix():
    with pytest.raises(ValueError, match=r"torch tensor or a NumPy array.*builtins\.list"):
        IOMixin.to_array([1, 2, 3])


# -- accepted images --------------------------------------------------------------------------


def test_grayscale_uint8_round_trips(exp):
    image = rng_image((5, 7))
    exp.print_image("gray", image)
    mode, pixels = read_png(os.path.join(exp.plot_directory, "gray_step_0.png"))
    assert mode == "L"
    np.testing.assert_array_equal(pixels, image)


@pytest.mark.parametrize("layout", ["HW1", "1HW"])
def test_single_channel_images_become_grayscale(exp, layout):
    image = rng_image((4, 6))
    value = image[:, :, None] if layout == "HW1" else image[None]
    exp.print_image(f"g{layout}", value)
    mode, pixels = read_png(os.path.join(exp.plot_directory, f"g{layout}_step_0.png"))
    assert mode == "L"
    np.testing.assert_array_equal(pixels, image)


@pytest.mark.parametrize("channels,mode", [(3, "RGB"), (4, "RGBA")])
def test_channel_last_uint8_round_trips(exp, channels, mode):
    image = rng_image((6, 5, channels), seed=channels)
    exp.print_image("hwc", image)
    got_mode, pixels = read_png(os.path.join(exp.plot_directory, "hwc_step_0.png"))
    assert got_mode == mode
    np.testing.assert_array_equal(pixels, image)


@pytest.mark.parametrize("channels,mode", [(3, "RGB"), (4, "RGBA")])
def test_channel_first_uint8_is_transposed(exp, channels, mode):
    image = rng_image((6, 5, channels), seed=10 + channels)
    exp.print_image("chw", np.ascontiguousarray(image.transpose(2, 0, 1)))
    got_mode, pixels = read_png(os.path.join(exp.plot_directory, "chw_step_0.png"))
    assert got_mode == mode
    np.testing.assert_array_equal(pixels, image)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_images_in_unit_range_are_scaled_and_rounded(exp, dtype):
    image = rng_image((4, 4, 3), seed=3)
    exp.print_image("float", (image / 255.0).astype(dtype))
    _, pixels = read_png(os.path.join(exp.plot_directory, "float_step_0.png"))
    tolerance = 1 if dtype == np.float16 else 0  # float16 cannot hold every k/255 exactly
    assert np.abs(pixels.astype(int) - image.astype(int)).max() <= tolerance


def test_known_float_values_map_to_known_bytes(exp):
    value = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    exp.print_image("ramp", value)
    _, pixels = read_png(os.path.join(exp.plot_directory, "ramp_step_0.png"))
    np.testing.assert_array_equal(pixels, [[0, 128, 255]])


def test_torch_tensors_channel_first_float_rgb(exp):
    torch = pytest.importorskip("torch")
    image = rng_image((3, 8, 9), seed=5)  # C, H, W
    tensor = torch.from_numpy(image.astype(np.float32) / 255.0).requires_grad_()
    exp.print_image("torch/rgb", tensor)
    mode, pixels = read_png(os.path.join(exp.plot_directory, "torch", "rgb_step_0.png"))
    assert mode == "RGB"
    np.testing.assert_array_equal(pixels, image.transpose(1, 2, 0))


def test_torch_uint8_grayscale(exp):
    torch = pytest.importorskip("torch")
    image = rng_image((5, 5), seed=6)
    exp.print_image("tgray", torch.from_numpy(image))
    _, pixels = read_png(os.path.join(exp.plot_directory, "tgray_step_0.png"))
    np.testing.assert_array_equal(pixels, image)


def test_tag_folders_and_step_in_file_name(exp):
    exp.next_step().next_step()
    exp.print_image("validation/samples/input", rng_image((2, 2)))
    path = os.path.join(exp.plot_directory, "validation", "samples", "input_step_2.png")
    assert os.path.isfile(path)
    assert sorted(os.listdir(os.path.dirname(path))) == ["input_step_2.png"]  # no temp files


def test_print_image_returns_self(exp):
    assert exp.print_image("x", rng_image((2, 2))) is exp


def test_out_of_range_floats_are_clipped_as_in_log_image(exp):
    # One rule for every writer (speedrun.ext.to_image_array): floats are 0..1, clipped;
    # NaN is black. bool and integers in 0..255 are pixels.
    exp.print_image("clip", np.array([[-1.0, 0.5, 2.0, np.nan]]))
    exp.print_image("mask", np.array([[True, False]]))
    exp.print_image("ints", np.array([[0, 7, 255]], dtype=np.int64))
    assert read_png(os.path.join(exp.plot_directory, "clip_step_0.png"))[1].tolist() == [
        [0, 128, 255, 0]
    ]
    assert read_png(os.path.join(exp.plot_directory, "mask_step_0.png"))[1].tolist() == [[255, 0]]
    assert read_png(os.path.join(exp.plot_directory, "ints_step_0.png"))[1].tolist() == [
        [0, 7, 255]
    ]


def test_ambiguous_shapes_follow_the_one_rule_and_dataformats_decides(exp):
    # (3, 8, 4): the first axis is shorter, so it holds the channels: an 8x4 RGB image, the
    # same as log_image makes of it. dataformats='HWC' reads it as a 3x8 RGBA image.
    value = rng_image((3, 8, 4), seed=9)
    exp.print_image("auto", value)
    exp.print_image("hwc", value, dataformats="HWC")
    mode, pixels = read_png(os.path.join(exp.plot_directory, "auto_step_0.png"))
    assert mode == "RGB" and pixels.shape == (8, 4, 3)
    np.testing.assert_array_equal(pixels, value.transpose(1, 2, 0))
    mode, pixels = read_png(os.path.join(exp.plot_directory, "hwc_step_0.png"))
    assert mode == "RGBA" and pixels.shape == (3, 8, 4)


def test_print_image_uses_the_tag_scope(exp):
    with exp.set_tagscope("val"):
        exp.print_image("input", rng_image((2, 2)))
    assert os.path.isfile(os.path.join(exp.plot_directory, "val", "input_step_0.png"))


# -- refused images ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,pattern",
    [
        (np.zeros((2, 3, 4, 5), np.uint8), r"4 dimensions.*value\[0\]"),
        (np.zeros((8,), np.uint8), r"1 dimensions"),
        (np.zeros((5, 6, 2), np.uint8), r"neither the first nor the last axis"),
        (np.full((4, 4), 256, np.int64), r"integer pixels in 0\.\.255.*\[256, 256\]"),
        (np.zeros((4, 4), np.complex64), r"dtype complex64"),
        (np.zeros((0, 4), np.uint8), r"non-empty"),
        ([[0, 1]], r"torch tensor or NumPy array.*builtins\.list"),
    ],
)
def test_bad_images_name_what_is_accepted(exp, value, pattern):
    with pytest.raises(ImageError, match=pattern) as info:  # a ValueError too
        exp.print_image("bad", value)
    assert isinstance(info.value, ValueError) and "print_image('bad')" in str(info.value)
    if "non-empty" not in pattern and "integer" not in pattern:
        assert "uint8 (0..255)" in str(info.value)
    assert not os.path.exists(os.path.join(exp.plot_directory, "bad_step_0.png"))


@pytest.mark.parametrize("tag", ["", "/abs/path", "../escape", "a/../../b", "a/./b"])
def test_tags_cannot_leave_the_plot_folder(exp, tag):
    with pytest.raises(ValueError, match="image tag"):
        exp.print_image(tag, rng_image((2, 2)))
    assert os.listdir(exp.plot_directory) == []


def test_print_image_without_directory_says_how_to_fix():
    with pytest.raises(ExperimentDirectoryError, match="print_image.*experiment_directory"):
        Experiment().print_image("x", rng_image((2, 2)))
