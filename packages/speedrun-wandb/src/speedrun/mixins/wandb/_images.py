"""Arrays and tensors to images for W&B, by the image rules every speedrun mixin shares.

The conversion is core's :func:`speedrun.ext.to_image_array` (dtypes, value ranges, errors);
this module only maps the original ``image_format='chw'|'hwc'`` argument of ``as_wandb_image``
onto it and hands W&B a 2-D array for grayscale images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from speedrun.ext import to_image_array

if TYPE_CHECKING:
    import numpy as np

__all__ = ["image_array"]


def image_array(value: Any, image_format: str = "chw") -> np.ndarray:
    """``value`` as a ``(H, W)`` or ``(H, W, C)`` uint8 array (C in 3, 4; C = 1 is squeezed).

    ``image_format`` says where the channels are in a 3-D input: ``'chw'`` (torch's layout) or
    ``'hwc'`` (NumPy/PIL's); a 2-D input is one grayscale image either way.

    Raises
    ------
    ValueError
        An unknown ``image_format``.
    speedrun.ext.ImageError
        (a ValueError and a TypeError) for anything that is not one image.
    """
    if not isinstance(image_format, str) or image_format.lower() not in ("chw", "hwc"):
        raise ValueError(
            f"image_format must be 'chw' (channels first, torch) or 'hwc' (channels "
            f"last, NumPy), got {image_format!r}"
        )
    dataformats = "HW" if len(getattr(value, "shape", ())) == 2 else image_format.upper()
    array = to_image_array(value, dataformats, what="as_wandb_image")
    return array[:, :, 0] if array.shape[2] == 1 else array
