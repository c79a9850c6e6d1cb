"""Arrays and tensors to images for W&B.

Every conversion goes through :func:`image_array` (one function, so that it can follow the image
rules shared by speedrun's other mixins). NumPy is imported inside it; torch is never imported
here: a tensor is recognised by its methods (``detach``/``cpu``/``numpy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ACCEPTED_IMAGES", "image_array"]

#: What :meth:`WandBMixin.as_wandb_image` accepts (used in its error messages).
ACCEPTED_IMAGES = (
    "a torch tensor or NumPy array of shape (H, W) (grayscale), or (C, H, W) with "
    "image_format='chw' / (H, W, C) with image_format='hwc', where C is 1 (grayscale), "
    "3 (RGB) or 4 (RGBA); dtype uint8 (0..255), bool, or float (0..1, values outside are clipped)"
)
_CHANNELS = (1, 3, 4)


def image_array(value: Any, image_format: str = "chw") -> np.ndarray:
    """``value`` as a ``(H, W)`` or ``(H, W, C)`` uint8 array (C in 1, 3, 4; C = 1 is squeezed).

    ``image_format`` says where the channels are in a 3-D input: ``'chw'`` (torch's layout) or
    ``'hwc'`` (NumPy/PIL's). Floats are read as 0..1 (clipped, NaN as 0) and rounded to 0..255.

    Raises
    ------
    TypeError
        Not a tensor or array, or a dtype other than uint8, bool, integer or float.
    ValueError
        An unknown ``image_format``, or a shape that is not one grayscale, RGB or RGBA image.
    """
    import numpy as np

    if not isinstance(image_format, str) or image_format.lower() not in ("chw", "hwc"):
        raise ValueError(f"image_format must be 'chw' (channels first, torch) or 'hwc' (channels "
                         f"last, NumPy), got {image_format!r}")
    layout = image_format.lower()
    if callable(getattr(value, "detach", None)) and callable(getattr(value, "cpu", None)):
        tensor = value.detach().cpu()
        if tensor.is_floating_point() and tensor.element_size() < 4:  # float16, bfloat16
            tensor = tensor.float()
        array = np.asarray(tensor.numpy())
    elif isinstance(value, np.ndarray):
        array = value
    else:
        raise TypeError(f"as_wandb_image expects {ACCEPTED_IMAGES}; got {type(value).__name__}")
    shape = tuple(array.shape)
    if array.ndim == 3:
        channels = shape[0] if layout == "chw" else shape[2]
        if channels not in _CHANNELS:
            other = "hwc" if layout == "chw" else "chw"
            hint = (f"; with image_format={other!r} it would have "
                    f"{shape[2] if layout == 'chw' else shape[0]} channels"
                    if (shape[2] if layout == "chw" else shape[0]) in _CHANNELS else "")
            raise ValueError(f"as_wandb_image: an image of shape {shape} with "
                             f"image_format={layout!r} has {channels} channels; expected 1, 3 or "
                             f"4{hint}. Expected {ACCEPTED_IMAGES}")
        if layout == "chw":
            array = np.transpose(array, (1, 2, 0))
        if array.shape[2] == 1:
            array = array[:, :, 0]
    elif array.ndim != 2:
        raise ValueError(f"as_wandb_image expects one image, got shape {shape}; expected "
                         f"{ACCEPTED_IMAGES}. Log a batch one image at a time (value[0]).")
    if array.dtype == np.uint8:
        converted: np.ndarray = np.ascontiguousarray(array)
        return converted
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        scaled = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        rounded: np.ndarray = np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)
        return rounded
    if np.issubdtype(array.dtype, np.integer):
        clipped: np.ndarray = np.clip(array, 0, 255).astype(np.uint8)
        return clipped
    raise TypeError(f"as_wandb_image expects {ACCEPTED_IMAGES}; got dtype {array.dtype}")
