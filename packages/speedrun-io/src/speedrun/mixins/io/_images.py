"""Arrays from tensors, and images from arrays: validation, layout and PNG encoding.

NumPy, Pillow and torch are imported inside the functions, never at module import.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from speedrun.ext import atomic_open

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ACCEPTED_IMAGES", "to_array", "to_image_array", "write_png"]

ACCEPTED_IMAGES = (
    "a torch tensor or NumPy array shaped (H, W) for grayscale, or (H, W, C) / (C, H, W) with "
    "C = 1 (grayscale), 3 (RGB) or 4 (RGBA); dtype uint8 (0..255) or float (0.0..1.0)"
)


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as error:  # pragma: no cover - numpy is a dependency of speedrun-io
        raise ImportError(
            "speedrun-io needs NumPy for arrays and images. Fix: pip install speedrun-io "
            "(or pip install numpy)."
        ) from error
    return numpy


def to_array(value: Any) -> np.ndarray:
    """Return ``value`` as a NumPy array.

    Parameters
    ----------
    value
        A torch tensor (detached and moved to the CPU; bfloat16 becomes float32, which NumPy
        can hold) or a NumPy array (returned as is).

    Raises
    ------
    ValueError
        For any other type.
    """
    np = _numpy()
    torch = sys.modules.get("torch")  # a tensor implies torch is imported already
    if torch is not None and torch.is_tensor(value):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.numpy()
    if isinstance(value, np.ndarray):
        return value
    raise ValueError(
        f"Expected a torch tensor or a NumPy array, got {type(value).__module__}."
        f"{type(value).__qualname__}. Convert it first, e.g. numpy.asarray(value)."
    )


def to_image_array(value: Any) -> np.ndarray:
    """Validate an image and return it as uint8, shaped (H, W), (H, W, 3) or (H, W, 4).

    Accepts grayscale, RGB and RGBA; channel-first (C, H, W) or channel-last (H, W, C);
    uint8 or float in [0, 1]. When both layouts fit (e.g. shape (3, 8, 4)) channel-last wins,
    as in the original speedrun.

    Raises
    ------
    ValueError
        Naming what is accepted, for any other shape, dtype or value range.
    """
    np = _numpy()
    try:
        array = to_array(value)
    except ValueError as error:
        raise ValueError(f"print_image accepts {ACCEPTED_IMAGES}. {error}") from None

    if array.ndim == 3:
        if array.shape[-1] in (1, 3, 4):
            pass
        elif array.shape[0] in (1, 3, 4):
            array = np.moveaxis(array, 0, -1)
        else:
            raise ValueError(
                f"print_image accepts {ACCEPTED_IMAGES}; got shape {tuple(array.shape)}, where "
                f"neither the first nor the last axis has 1, 3 or 4 channels."
            )
        if array.shape[-1] == 1:
            array = array[..., 0]
    elif array.ndim != 2:
        hint = " Pick one image of the batch, e.g. value[0]." if array.ndim == 4 else ""
        raise ValueError(
            f"print_image accepts {ACCEPTED_IMAGES}; got {array.ndim} dimensions with shape "
            f"{tuple(array.shape)}.{hint}"
        )
    if 0 in array.shape:
        raise ValueError(f"print_image needs a non-empty image, got shape {tuple(array.shape)}.")

    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(
                f"print_image accepts {ACCEPTED_IMAGES}; the float image contains NaN or "
                f"infinity. Fix the values, e.g. numpy.nan_to_num(value)."
            )
        low, high = float(array.min()), float(array.max())
        tolerance = 1e-6
        if low < -tolerance or high > 1 + tolerance:
            raise ValueError(
                f"print_image accepts {ACCEPTED_IMAGES}; the float image has values in "
                f"[{low:g}, {high:g}]. Rescale to [0, 1] (e.g. (x - x.min()) / (x.max() - "
                f"x.min())), clip it, or pass uint8."
            )
        scaled = np.rint(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0)
        return np.ascontiguousarray(scaled.astype(np.uint8))
    raise ValueError(
        f"print_image accepts {ACCEPTED_IMAGES}; got dtype {array.dtype}. Convert it, e.g. "
        f"value.astype(numpy.uint8) for 0..255 integers or value / 255.0 for floats."
    )


def write_png(path: str, image: np.ndarray) -> None:
    """Encode a uint8 (H, W), (H, W, 3) or (H, W, 4) array as PNG and write it atomically."""
    try:
        from PIL import Image
    except ImportError as error:  # pragma: no cover - Pillow is a dependency of speedrun-io
        raise ImportError(
            "print_image needs Pillow to write PNG files. Fix: pip install speedrun-io "
            "(or pip install Pillow)."
        ) from error
    picture = Image.fromarray(image)
    with atomic_open(path, "wb", durable=False) as handle:
        picture.save(handle, format="PNG")
