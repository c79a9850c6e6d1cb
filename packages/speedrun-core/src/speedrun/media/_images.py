"""Images: one conversion engine and one ``Plots/`` writer for every speedrun mixin.

``log_image`` (TensorBoard), ``print_image`` (IO), Firelight's grids and the W&B mixin turn
what users pass into pixels with :func:`to_image_array`; ``print_image``, ``save_figure`` and
``save_image_grid`` name their files with :func:`plot_file`. NumPy and Pillow are imported on
first use, never with ``import speedrun``.

The rules (the same for every writer)
-------------------------------------
Types
    A torch tensor (detached, moved to the CPU; float16 and bfloat16 widened) or a NumPy array.
Shapes
    ``(H, W)`` grayscale, ``(C, H, W)`` or ``(H, W, C)`` with C = 1 (grayscale), 3 (RGB) or
    4 (RGBA). ``dataformats='HW' | 'CHW' | 'HWC'`` says which. Without it, a 3-D shape is read
    as ``CHW`` when only its first axis has 1, 3 or 4 entries and as ``HWC`` when only its last
    one has. When both have (an image 1, 3 or 4 pixels high), the axis with fewer entries holds
    the channels, and a tie reads ``CHW`` (torch's and tensorboardX's layout, the original
    ``log_image``'s): ``(3, 8, 4)`` is an 8x4 RGB image, ``(4, 6, 3)`` a 4x6 RGB image and
    ``(3, 5, 3)`` a 5x3 RGB image, in every writer. ``dataformats=`` decides otherwise.
Values
    uint8 as is (0..255); bool as 0 and 255; other integer types must hold 0..255; floats are
    0.0..1.0, and values outside are clipped (NaN and -inf become 0, +inf 1), as tensorboardX and
    the original ``log_image`` did.
Errors
    :class:`ImageError` (a ``ValueError`` and a ``TypeError``, so code written for either
    mixin's old errors keeps catching it), whose message says what is accepted, what was
    received and the fix.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TYPE_CHECKING, Any, cast

from .._errors import ExperimentDirectoryError, SpeedrunError
from .._require import require
from ..directory._fs import atomic_write_bytes
from ..directory._paths import tagged_file

if TYPE_CHECKING:
    import numpy as np
    from numpy import ndarray

__all__ = [
    "ACCEPTED_IMAGES",
    "DATAFORMATS",
    "ImageError",
    "encode_png",
    "plot_file",
    "to_image_array",
    "write_png",
]

#: What the image functions accept, for error messages and documentation.
ACCEPTED_IMAGES = (
    "a torch tensor or NumPy array shaped (H, W), (C, H, W) or (H, W, C) with C = 1, 3 or 4 "
    "channels; uint8 (0..255), bool, integers in 0..255, or floats in 0..1 (clipped)"
)
#: The layouts ``dataformats=`` accepts.
DATAFORMATS = ("HW", "CHW", "HWC")
_CHANNELS = (1, 3, 4)


class ImageError(SpeedrunError, ValueError, TypeError):
    """An image has a type, shape, dtype or layout that speedrun cannot turn into pixels."""


def _numpy() -> Any:
    return require("numpy", feature="speedrun's images", install="pip install numpy")


def _as_numpy(value: Any, what: str) -> np.ndarray:
    np = _numpy()
    torch = sys.modules.get("torch")  # a tensor implies torch is imported already
    if torch is not None and torch.is_tensor(value):
        tensor = value.detach().cpu()
        if tensor.is_floating_point() and tensor.element_size() < 4:  # float16, bfloat16
            tensor = tensor.float()
        return cast("ndarray", tensor.numpy())
    if isinstance(value, np.ndarray):
        return cast("ndarray", value)
    raise ImageError(
        f"{what} expects {ACCEPTED_IMAGES}; got {type(value).__module__}."
        f"{type(value).__qualname__}. Fix: convert it first, e.g. numpy.asarray(value)."
    )


def _layout(shape: tuple[int, ...], dataformats: str | None, what: str) -> str:
    if dataformats is not None:
        layout = dataformats.upper() if isinstance(dataformats, str) else None
        if layout not in DATAFORMATS:
            raise ImageError(
                f"{what} expects dataformats 'HW', 'CHW', 'HWC' or None (detect), got "
                f"{dataformats!r}. Fix: dataformats='CHW' for (C, H, W) arrays."
            )
        if len(layout) != len(shape):
            raise ImageError(
                f"{what}: dataformats={dataformats!r} needs a {len(layout)}-D image, got shape "
                f"{shape}. Fix: pass the layout the array has, or dataformats=None to detect it."
            )
        return layout
    if len(shape) == 2:
        return "HW"
    if len(shape) == 3:
        first, last = shape[0] in _CHANNELS, shape[-1] in _CHANNELS
        if first and last:  # ambiguous: the shorter axis holds the channels; a tie reads CHW
            return "HWC" if shape[-1] < shape[0] else "CHW"
        if first:
            return "CHW"
        if last:
            return "HWC"
        raise ImageError(
            f"{what} expects {ACCEPTED_IMAGES}; got shape {shape}, where neither the first nor "
            f"the last axis has 1, 3 or 4 channels. Fix: log one channel (value[0]) or a grid."
        )
    hint = " Fix: pick one image of the batch, e.g. value[0]." if len(shape) == 4 else ""
    raise ImageError(
        f"{what} expects {ACCEPTED_IMAGES}; got {len(shape)} dimensions, shape {shape}.{hint}"
    )


def to_image_array(
    value: Any, dataformats: str | None = None, *, what: str = "image"
) -> np.ndarray:
    """Convert ``value`` to a new C-contiguous uint8 array shaped ``(H, W, C)``, C in 1, 3, 4.

    Parameters
    ----------
    value
        A torch tensor or NumPy array (see the module's rules for shapes and values).
    dataformats
        ``'HW'``, ``'CHW'`` or ``'HWC'``; ``None`` detects the layout (see the module's rules).
    what
        Who is asking, for error messages (e.g. ``"log_image('val/x')"``).

    Raises
    ------
    ImageError
        For any other type, shape, dtype or ``dataformats``.
    """
    np = _numpy()
    array = _as_numpy(value, what)
    shape = tuple(int(size) for size in array.shape)
    layout = _layout(shape, dataformats, what)
    if layout == "HW":
        array = array[:, :, None]
    elif layout == "CHW":
        array = np.moveaxis(array, 0, -1)
    height, width, channels = array.shape
    if channels not in _CHANNELS:
        raise ImageError(
            f"{what} expects {ACCEPTED_IMAGES}; got shape {shape} read as {layout}, "
            f"which has {channels} channels. Fix: pass dataformats= with the "
            f"layout the array has."
        )
    if height == 0 or width == 0:
        raise ImageError(f"{what} needs a non-empty image, got shape {shape}.")
    if array.dtype == np.uint8:
        return cast("ndarray", np.ascontiguousarray(array))
    if array.dtype == np.bool_:
        return cast("ndarray", np.ascontiguousarray(array.astype(np.uint8) * np.uint8(255)))
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ImageError(
                f"{what} expects integer pixels in 0..255, got values in [{low}, {high}] "
                f"(dtype {array.dtype}). Fix: rescale to 0..255, or pass floats in 0..1."
            )
        return cast("ndarray", np.ascontiguousarray(array.astype(np.uint8)))
    if np.issubdtype(array.dtype, np.floating):
        scaled = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return cast(
            "ndarray",
            np.ascontiguousarray((np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)),
        )
    raise ImageError(
        f"{what} expects {ACCEPTED_IMAGES}; got dtype {array.dtype}. Fix: convert "
        f"it, e.g. value.astype(numpy.float32) / value.max()."
    )


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W, C)`` uint8 array from :func:`to_image_array` (needs Pillow)."""
    pil = require(
        "PIL.Image",
        feature="writing PNG images",
        install="pip install Pillow (speedrun-io and speedrun-tensorboard bring it)",
    )
    pixels = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
    buffer = io.BytesIO()
    pil.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write :func:`encode_png` of ``image`` to ``path`` atomically (never a partial file)."""
    atomic_write_bytes(os.fspath(path), encode_png(image), durable=False)


def plot_file(
    plot_directory: str | None, tag: str, step: int, extension: str, *, what: str = "plot"
) -> str:
    """The one ``Plots/`` naming rule: ``Plots/<tag folders>/<name>_step_<step>.<extension>``.

    ``plot_file("exp/Plots", "val/pred", 3, "png")`` returns ``exp/Plots/val/pred_step_3.png``
    and creates ``exp/Plots/val``. ``print_image``, ``save_figure`` and ``save_image_grid`` all
    name their files this way (with the experiment's tag scope applied to ``tag`` first).

    Raises
    ------
    ExperimentDirectoryError
        ``plot_directory`` is ``None`` (the experiment has no directory yet).
    ValueError
        ``tag`` is empty, absolute or leaves the folder (``..``).
    """
    if plot_directory is None:
        raise ExperimentDirectoryError(
            f"{what} writes into the experiment's Plots/ folder, but the experiment has no "
            f"directory. Fix: pass one on the command line (python train.py experiments/RUN-0) "
            f"or set experiment.experiment_directory first."
        )
    return tagged_file(
        plot_directory, tag, suffix=f"_step_{step}.{extension.lstrip('.')}", what=f"{what} tag"
    )
