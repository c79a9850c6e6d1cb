"""Converting what users log (torch tensors, NumPy arrays, numbers) into what TensorBoard stores.

NumPy is imported inside the functions; torch is never imported here: a tensor is recognised by
its methods (``detach``/``numel``), so logging plain numbers or arrays never pulls torch in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ACCEPTED_IMAGES", "as_float", "image_to_hwc_uint8", "to_numpy"]

#: Human-readable description of what ``log_image`` accepts (used in its error messages).
ACCEPTED_IMAGES = (
    "a torch tensor or NumPy array of shape (H, W) (grayscale), (C, H, W) or (H, W, C) with "
    "C = 1 (grayscale), 3 (RGB) or 4 (RGBA), dtype uint8 (0..255) or float (0..1; values "
    "outside are clipped)"
)
_CHANNELS = (1, 3, 4)


def _is_tensor(value: Any) -> bool:
    return callable(getattr(value, "detach", None)) and callable(getattr(value, "numel", None))


def as_float(value: Any, tag: str) -> float:
    """``value`` as a Python float: numbers, 1-element tensors and arrays, NumPy scalars.

    Raises
    ------
    TypeError
        For strings, containers and tensors/arrays with more than one element.
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(
            f"log_scalar({tag!r}) expects a number, got the {type(value).__name__} {value!r}; "
            f"convert it with float(...) or log it with log_text"
        )
    if _is_tensor(value):
        if value.numel() != 1:
            raise TypeError(
                f"log_scalar({tag!r}) expects a single number, got a tensor of shape "
                f"{tuple(value.shape)}; log a reduction (loss.mean()) or use log_histogram"
            )
        return float(value.detach().reshape(()).item())
    size = getattr(value, "size", None)
    if isinstance(size, int) and callable(getattr(value, "item", None)):  # NumPy array/scalar
        if size != 1:
            raise TypeError(
                f"log_scalar({tag!r}) expects a single number, got an array of shape "
                f"{getattr(value, 'shape', '?')}; log a reduction (array.mean()) or use "
                f"log_histogram"
            )
        item = value.reshape(()).item() if hasattr(value, "reshape") else value.item()
        return float(item)
    try:
        return float(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"log_scalar({tag!r}) expects a number (int, float, NumPy scalar, 1-element tensor "
            f"or array), got {type(value).__name__} {value!r}"
        ) from error


def to_numpy(value: Any, what: str) -> np.ndarray:
    """A NumPy array from a tensor (detached, on the CPU, half precisions widened) or array-like."""
    import numpy as np

    if _is_tensor(value):
        tensor = value.detach().cpu()
        if tensor.is_floating_point() and tensor.element_size() < 4:  # float16, bfloat16
            tensor = tensor.float()
        converted: np.ndarray = tensor.numpy()
        return converted
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what} expects a tensor or array, got {type(value).__name__}") from error


def _layout(shape: tuple[int, ...], dataformats: str | None) -> str:
    if dataformats is not None:
        if not isinstance(dataformats, str) or dataformats.upper() not in ("HW", "CHW", "HWC"):
            raise ValueError(f"dataformats must be 'HW', 'CHW', 'HWC' or None (detect), got "
                             f"{dataformats!r}")
        layout = dataformats.upper()
        if len(layout) != len(shape):
            raise ValueError(f"dataformats={dataformats!r} does not fit an image of shape "
                             f"{shape}; expected {len(layout)} dimensions")
        return layout
    if len(shape) == 2:
        return "HW"
    if len(shape) == 3:
        if shape[0] in _CHANNELS:
            return "CHW"
        if shape[-1] in _CHANNELS:
            return "HWC"
    return ""


def image_to_hwc_uint8(value: Any, tag: str, dataformats: str | None = None) -> np.ndarray:
    """Validate an image and convert it to a ``(H, W, C)`` uint8 array (C in 1, 3, 4).

    Layout detection (``dataformats=None``): 2-D is grayscale ``HW``; 3-D is ``CHW`` when the
    first axis has 1, 3 or 4 entries, else ``HWC`` when the last one has. Floats are taken as
    0..1 (clipped, NaN as 0) and rounded to 0..255.

    Raises
    ------
    TypeError
        Not a tensor/array, or a dtype other than uint8/float.
    ValueError
        A shape that is not a single grayscale, RGB or RGBA image.
    """
    import numpy as np

    if not (_is_tensor(value) or isinstance(value, np.ndarray)):
        raise TypeError(f"log_image({tag!r}) expects {ACCEPTED_IMAGES}; got "
                        f"{type(value).__name__}")
    array = to_numpy(value, f"log_image({tag!r})")
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        hint = (" (for a boolean mask, log mask.astype(np.uint8) * 255 or mask.float())"
                if array.dtype == np.bool_ else "")
        raise TypeError(f"log_image({tag!r}) expects {ACCEPTED_IMAGES}; got dtype "
                        f"{array.dtype}{hint}")
    layout = _layout(tuple(array.shape), dataformats)
    if not layout:
        raise ValueError(f"log_image({tag!r}) expects {ACCEPTED_IMAGES}; got shape "
                         f"{tuple(array.shape)}. Log a batch image by image or as one grid "
                         f"(torchvision.utils.make_grid).")
    if layout == "HW":
        array = array[:, :, None]
    elif layout == "CHW":
        array = np.moveaxis(array, 0, -1)
    height, width, channels = array.shape
    if channels not in _CHANNELS or height == 0 or width == 0:
        raise ValueError(f"log_image({tag!r}) expects {ACCEPTED_IMAGES}; got shape "
                         f"{tuple(value.shape)} read as {layout} ({channels} channels)")
    if array.dtype != np.uint8:
        scaled = np.nan_to_num(array.astype(np.float32, copy=False), nan=0.0, posinf=1.0,
                               neginf=0.0)
        array = (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(array)
